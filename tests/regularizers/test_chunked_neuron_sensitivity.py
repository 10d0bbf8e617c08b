"""NeuronSensitivity in chunks (`chunk_size`): equal to one pass, batch norm per pass.

Marked `backends_in_ci`: TensorFlow in `make test`, JAX and PyTorch in
`make test-backends` (JAX compiles each chunked step for seconds).
"""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import _seeds
from keras_interp import regularizers
from tests.conftest import small_cnn
from tests.conftest import to_numpy
from tests.test_model import CE
from tests.test_model import batch
from tests.test_model import wrap

pytestmark = pytest.mark.backends_in_ci


def train_two_steps(model, reg, x, y):
    wrapped = ki.RegularizedModel(model, [reg], seed=5)
    wrapped.compile(keras.optimizers.SGD(0.1), CE)
    logs = [wrapped.train_on_batch(x, y, return_dict=True) for _ in range(2)]
    return logs, model.get_weights()


@pytest.mark.parametrize("chunk_size", [1, 2, 5])
def test_nsloss_in_chunks_equals_one_pass(chunk_size):
    # N = 5 in chunks of 2 leaves a last chunk of 1 copy. A large weight
    # makes the term's gradient visible in the weights (checked below), so
    # equal weights mean the rematerialised backward pass is right.
    x, y = batch(6)
    ns = dict(weight=20.0, epsilon=0.3, num_perturbations=5)
    one_logs, one = train_two_steps(small_cnn(6), regularizers.NeuronSensitivity(**ns), x, y)
    logs, weights = train_two_steps(
        small_cnn(6), regularizers.NeuronSensitivity(**ns, chunk_size=chunk_size), x, y
    )
    for a, b in zip(one_logs, logs):
        np.testing.assert_allclose(b["neuron_sensitivity"], a["neuron_sensitivity"], rtol=1e-5)
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
    for a, b in zip(one, weights):
        np.testing.assert_allclose(b, a, atol=2e-5)
    _, cross_entropy_only = train_two_steps(
        small_cnn(6), regularizers.NeuronSensitivity(**dict(ns, weight=0.0)), x, y
    )
    assert max(np.abs(a - b).max() for a, b in zip(one, cross_entropy_only)) > 1e-2


def test_nsloss_trains_models_of_other_shapes_in_one_process():
    # The compiled loss is shared by every NeuronSensitivity; a second model
    # with other activation shapes must not meet the first one's trace.
    for size in (10, 14):
        model = keras.Sequential(
            [keras.Input((size, size, 2)), keras.layers.Conv2D(3, 3), keras.layers.Flatten(), keras.layers.Dense(4)]
        )
        x = np.random.default_rng(size).uniform(size=(4, size, size, 2)).astype("float32")
        logs = wrap(model, [regularizers.NeuronSensitivity(1.0, 0.3, num_perturbations=2)]).train_on_batch(
            x, np.arange(4) % 4, return_dict=True
        )
        assert np.isfinite(logs["neuron_sensitivity"]) and logs["neuron_sensitivity"] > 0


def batch_norm_net(seed):
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, name="dense")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.5, name="bn")(h)
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.Activation("tanh")(h))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def test_nsloss_in_chunks_with_batch_norm_runs_each_pass_on_its_own_statistics():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(10, 6)).astype("float32"), rng.integers(0, 3, 10)
    model = batch_norm_net(7)
    reg = regularizers.NeuronSensitivity(1.0, 0.5, num_perturbations=3, layers=["bn"], chunk_size=2)
    logs = wrap(model, [reg]).train_on_batch(x, y, return_dict=True)

    # By hand: the same draws (seed 5), the clean batch and the chunks of
    # copies 0-1 and 2 each through the training-mode net on their own.
    twin = batch_norm_net(7)
    probe = keras.Model(twin.inputs, twin.get_layer("bn").output)
    copies = to_numpy(ki.layers.SpherePerturbation(3, 0.5, seed=_seeds.mix(5, 0, 0))(x, training=True))
    clean = to_numpy(probe(x, training=True))
    chunks = [to_numpy(probe(copies[:20], training=True)), to_numpy(probe(copies[20:], training=True))]
    perturbed = np.concatenate(chunks).reshape(3, 10, 8)
    term = float(to_numpy(regularizers.neuron_sensitivity_loss([clean], [perturbed], 0.5)))
    np.testing.assert_allclose(logs["neuron_sensitivity"], term, rtol=1e-5)

    # The moving statistics are those of a plain training step on the clean batch.
    plain = batch_norm_net(7)
    plain.compile(keras.optimizers.SGD(0.0), CE)
    plain.train_on_batch(x, y)
    for a, b in zip(plain.get_layer("bn").non_trainable_weights, model.get_layer("bn").non_trainable_weights):
        np.testing.assert_allclose(to_numpy(b), to_numpy(a), rtol=1e-5)
