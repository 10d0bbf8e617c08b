"""JacobianNorm's estimate against the exact Frobenius norm of a tanh MLP."""

import keras
import numpy as np
import pytest

from keras_interp import regularizers
from tests.conftest import mlp
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def exact_half_frobenius(model, x):
    """Batch mean of (1/2)||J||_F^2, J = W2^T diag(1 - h^2) W1^T, in float64."""
    w1, b1, w2, _ = [w.astype("float64") for w in model.get_weights()]
    h = np.tanh(x.reshape(len(x), -1).astype("float64") @ w1 + b1)
    # J[b, c, d] = sum_j w2[j, c] (1 - h[b, j]^2) w1[d, j]: all C rows.
    jac = np.einsum("jc,bj,dj->bcd", w2, 1 - h**2, w1)
    return 0.5 * np.mean(np.sum(jac**2, axis=(1, 2)))


def estimate(model, x, projections, seed):
    return float(
        to_numpy(regularizers.jacobian_norm_estimate(model, x, projections, seed=seed))
    )


def test_estimate_converges_to_the_exact_frobenius_norm():
    model, _ = mlp(0, in_shape=(6,), hidden=16, classes=5)
    x = np.random.default_rng(1).normal(size=(8, 6)).astype("float32")
    exact = exact_half_frobenius(model, x)
    errors = {
        n: np.mean([abs(estimate(model, x, n, seed) / exact - 1) for seed in range(3)])
        for n in (1, 16, 1024)
    }
    assert errors[1024] < 0.02
    assert errors[1024] < errors[16] < errors[1]


def test_same_seed_same_estimate():
    model, _ = mlp(4)
    x = np.random.default_rng(5).normal(size=(4, 6)).astype("float32")
    assert estimate(model, x, 2, 7) == estimate(model, x, 2, 7)
    assert estimate(model, x, 2, 7) != estimate(model, x, 2, 8)


def test_a_final_softmax_is_bypassed():
    logits_model, _ = mlp(6)
    softmax_model, _ = mlp(6, last_activation="softmax")
    x = np.random.default_rng(7).normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(
        estimate(softmax_model, x, 3, 0), estimate(logits_model, x, 3, 0), rtol=1e-6
    )


def test_config_and_bad_arguments():
    reg = regularizers.JacobianNorm(0.5, num_projections=3)
    assert regularizers.JacobianNorm.from_config(reg.get_config()).get_config() == reg.get_config()
    with pytest.raises(ValueError, match="Received: num_projections=0"):
        regularizers.JacobianNorm(1.0, num_projections=0)
    with pytest.raises(ValueError, match="Received: weight=-1.0"):
        regularizers.JacobianNorm(-1.0)
    assert keras.saving.get_registered_object("keras_interp>JacobianNorm") is regularizers.JacobianNorm
