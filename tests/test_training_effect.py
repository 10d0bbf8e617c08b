"""What the regularisers are for: training with them moves what they measure."""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import regularizers

pytestmark = pytest.mark.tensorflow_only

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def mnist():
    keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = ki.data.load("mnist5k")
    standard = ki.models.small_cnn()
    standard.compile(keras.optimizers.Adam(1e-3), CE)
    standard.fit(x[:1500], y[:1500], batch_size=64, epochs=2, verbose=0)
    return (x[:1500], y[:1500]), (x_test[:500], y_test[:500]), standard


def copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def held_out(model, x, y, reg):
    measure = ki.RegularizedModel(model, [reg], seed=0, evaluate_regularizers=True)
    measure.compile(loss=CE)
    return measure.evaluate(x, y, batch_size=100, verbose=0, return_dict=True)[reg.name]


def continue_training(model, x, y, regs=()):
    wrapped = ki.RegularizedModel(model, list(regs), seed=0) if regs else model
    wrapped.compile(keras.optimizers.Adam(1e-3), CE)
    wrapped.fit(x, y, batch_size=64, epochs=2, verbose=0)
    return model


@pytest.mark.parametrize(
    "reg",
    [regularizers.NeuronSensitivity(5.0, epsilon=1.0), regularizers.JacobianNorm(0.5)],
    ids=lambda r: r.name,
)
def test_regularised_training_lowers_its_term_on_held_out_data(mnist, reg):
    (x, y), (x_test, y_test), standard = mnist
    plain = continue_training(copy(standard), x, y)
    regularised = continue_training(copy(standard), x, y, [reg])
    measured = type(reg).from_config({**reg.get_config(), "weight": 1.0})
    before = held_out(plain, x_test, y_test, measured)
    after = held_out(regularised, x_test, y_test, measured)
    assert after < 0.8 * before, (before, after)
    accuracy = np.mean(np.argmax(regularised.predict(x_test, verbose=0), 1) == y_test)
    assert accuracy > 0.8
