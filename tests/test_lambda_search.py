"""select_lambda follows NsLoss paper §4.4 step by step."""

import math

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import regularizers
from tests.conftest import mlp

pytestmark = pytest.mark.multibackend

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class SquaredLogits(regularizers.Regularizer):
    """A deterministic term: mean squared logit norm."""

    name = "squared_logits"

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, batch):
        return keras.ops.mean(keras.ops.sum(batch.y_pred**2, axis=-1))

    def get_config(self):
        return {"weight": self.weight}


class TrueClassMargin(regularizers.Regularizer):
    """Rewards wrong answers without bound: a large weight ruins the cross-entropy."""

    name = "true_class_margin"

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, batch):
        y = keras.ops.one_hot(keras.ops.cast(batch.y, "int32"), batch.y_pred.shape[-1])
        true_logit = keras.ops.sum(batch.y_pred * y, axis=-1)
        return keras.ops.mean(true_logit - keras.ops.mean(batch.y_pred, axis=-1))

    def get_config(self):
        return {"weight": self.weight}


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (4, 6))
    y = rng.integers(0, 4, 256)
    x = (centres[y] + rng.normal(size=(256, 6))).astype("float32")
    model, _ = mlp(0, in_shape=(6,), hidden=16, classes=4)
    model.compile(keras.optimizers.Adam(0.01), CE)
    model.fit(x, y, batch_size=32, epochs=20, verbose=0)
    return model, (x[:192], y[:192]), (x[192:], y[192:])


def check_search(table, chosen):
    """Candidates are lambda_0, then geometric midpoints of the bracket."""
    lambda_0 = table[0]["lambda_0"]
    low, high = lambda_0 / 10, lambda_0 * 10
    candidate = lambda_0
    for row in table[1:]:
        assert math.isclose(row["lambda"], candidate, rel_tol=1e-9)
        assert row["too_high"] == (row["cross_entropy"] >= math.log2(4))
        if row["too_high"]:
            high = candidate
        else:
            low = candidate
        candidate = math.sqrt(low * high)
    accepted = [row["lambda"] for row in table[1:] if not row["too_high"]]
    assert chosen == (max(accepted) if accepted else lambda_0 / 10)


def test_lambda_0_is_log2_classes_over_the_standard_models_term(trained):
    model, train, validation = trained
    weights = [w.copy() for w in model.get_weights()]
    chosen, table = ki.select_lambda(
        model, train, SquaredLogits(1.0), validation_data=validation,
        batch_size=32, num_batches=10, max_trials=3, seed=0, verbose=0,
    )
    # 10 batches of 32 cover both sets: the term is each set's mean.
    logits = [model.predict(x, verbose=0) for x, _ in (train, validation)]
    term_0 = np.mean([np.mean(np.sum(z.astype("float64") ** 2, axis=-1)) for z in logits])
    np.testing.assert_allclose(table[0]["term_0"], term_0, rtol=1e-5)
    np.testing.assert_allclose(table[0]["lambda_0"], math.log2(4) / term_0, rtol=1e-5)
    assert len(table) == 4
    check_search(table, chosen)
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the standard model is untouched


def test_a_weight_that_ruins_the_cross_entropy_is_too_high(trained):
    model, train, _ = trained
    keras.utils.set_random_seed(1)
    chosen, table = ki.select_lambda(
        model, train, TrueClassMargin(1.0), optimizer=keras.optimizers.SGD(0.5),
        batch_size=32, max_trials=4, seed=0, verbose=0,
    )
    assert any(row["too_high"] for row in table[1:]), table
    check_search(table, chosen)
    assert chosen < table[0]["lambda_0"] * 10


def test_bad_arguments(trained):
    model, train, _ = trained
    with pytest.raises(ValueError, match="weight of an added loss term"):
        ki.select_lambda(model, train, regularizers.AdversarialTraining(0.1))
    with pytest.raises(TypeError, match="pair of arrays"):
        ki.select_lambda(model, train[0], SquaredLogits(1.0))
    with pytest.raises(TypeError, match=r"Received: seed=0\.5"):
        ki.select_lambda(model, train, SquaredLogits(1.0), seed=0.5)
