"""SpherePerturbation: points on the sphere, seeded, identity at inference.
Softplus(beta): the stable closed form, its derivative, its gap to ReLU."""

import keras
import numpy as np
import pytest

from keras_interp import backend
from keras_interp import layers
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def test_perturbations_lie_on_the_sphere():
    x = np.random.default_rng(0).uniform(size=(4, 6, 6, 3)).astype("float32")
    out = to_numpy(layers.SpherePerturbation(5, 0.3, seed=0)(x, training=True))
    assert out.shape == (20, 6, 6, 3)
    diff = out.reshape(5, 4, -1) - x.reshape(1, 4, -1)
    np.testing.assert_allclose(np.linalg.norm(diff, axis=-1), 0.3, rtol=1e-5)
    # Directions differ between copies and samples (not one shared offset).
    directions = diff.reshape(20, -1) / 0.3
    cosines = directions @ directions.T
    assert np.abs(cosines[~np.eye(20, dtype=bool)]).max() < 0.9


def test_identity_at_inference_and_seeded():
    x = np.random.default_rng(0).uniform(size=(3, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(layers.SpherePerturbation(2, 0.1)(x)), x)
    a = to_numpy(layers.SpherePerturbation(2, 0.1, seed=4)(x, training=True))
    b = to_numpy(layers.SpherePerturbation(2, 0.1, seed=4)(x, training=True))
    np.testing.assert_array_equal(a, b)


def test_config_round_trip():
    layer = layers.SpherePerturbation(3, 0.2, seed=1, name="sphere")
    clone = layers.SpherePerturbation.from_config(layer.get_config())
    assert (clone.num_perturbations, clone.epsilon, clone.seed, clone.name) == (3, 0.2, 1, "sphere")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_perturbations": 0, "epsilon": 0.1}, "Received: num_perturbations=0"),
        ({"num_perturbations": 2, "epsilon": 0.0}, "Received: epsilon=0.0"),
        ({"num_perturbations": 2, "epsilon": -1}, "Received: epsilon=-1.0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.SpherePerturbation(**kwargs)


# Large |beta * x| on both sides: a naive log(1 + exp(beta x)) overflows.
SOFTPLUS_X = np.concatenate(
    [np.linspace(-3, 3, 61), [-1e3, -60.0, -20.0, 20.0, 60.0, 1e3]]
).astype("float32").reshape(1, -1)


def _softplus64(x, beta):
    """softplus(beta x) / beta in float64, in the overflow-free form
    max(z, 0) + log1p(exp(-|z|)) with z = beta x."""
    z = beta * np.asarray(x, "float64")
    return (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / beta


@pytest.mark.parametrize("beta", [0.5, 1.0, 10.0, 100.0])
def test_softplus_matches_closed_form_and_stays_near_relu(beta):
    out = to_numpy(layers.Softplus(beta)(SOFTPLUS_X))
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    expected = _softplus64(SOFTPLUS_X, beta)
    np.testing.assert_allclose(out, expected, rtol=2e-6, atol=1e-7)
    # 0 <= softplus_beta(x) - relu(x) <= log(2) / beta, the largest gap at 0.
    gap = out.astype("float64") - np.maximum(SOFTPLUS_X, 0)
    assert gap.min() >= -1e-6 * np.abs(SOFTPLUS_X).max()
    assert gap.max() <= np.log(2) / beta * (1 + 1e-6)
    np.testing.assert_allclose(gap[SOFTPLUS_X == 0], np.log(2) / beta, rtol=1e-6)


@pytest.mark.parametrize("beta", [1.0, 10.0])
def test_softplus_derivatives_are_the_sigmoid_and_its_slope(beta):
    x = np.linspace(-2, 2, 41, dtype="float32").reshape(1, -1)
    layer = layers.Softplus(beta)
    first = backend.grad(layer, create_graph=True)
    second = backend.grad(first)
    s = 1 / (1 + np.exp(-beta * x.astype("float64")))
    np.testing.assert_allclose(to_numpy(first(x)), s, rtol=1e-5, atol=1e-7)
    # Non-zero curvature, beta s (1 - s): what ReLU (zero a.e.) lacks. The
    # float32 autodiff forms 1 - s by cancellation, hence atol ~ beta * eps.
    np.testing.assert_allclose(
        to_numpy(second(x)), beta * s * (1 - s), rtol=1e-4, atol=1e-6 * beta
    )


def test_softplus_config_round_trip_and_serialisation():
    layer = layers.Softplus(beta=7.5, name="smooth")
    clone = layers.Softplus.from_config(layer.get_config())
    assert (clone.beta, clone.name) == (7.5, "smooth")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is layers.Softplus and restored.beta == 7.5
    x = SOFTPLUS_X[:, :61]
    np.testing.assert_allclose(to_numpy(restored(x)), _softplus64(x, 7.5), rtol=2e-6, atol=1e-7)


def test_softplus_default_beta_is_one():
    assert layers.Softplus().beta == 1.0
    x = SOFTPLUS_X[:, :61]
    expected = np.logaddexp(0, x.astype("float64"))
    np.testing.assert_allclose(to_numpy(layers.Softplus()(x)), expected, rtol=2e-6)


@pytest.mark.parametrize("beta", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_softplus_rejects_non_positive_beta(beta):
    with pytest.raises(ValueError, match="Received: beta="):
        layers.Softplus(beta)
