"""smooth() as a wrapper, and SmoothGrad against a closed form."""

import keras
import numpy as np
import pytest
from scipy.stats import norm

from keras_interp import attribution
from tests.conftest import linear
from tests.conftest import mlp
from tests.conftest import to_numpy

pytestmark = pytest.mark.backends_in_ci


@pytest.mark.parametrize(
    "method, hyper",
    [
        (attribution.vanilla_gradient, {}),
        (attribution.integrated_gradients, {"steps": 20}),
        (attribution.input_x_gradient, {}),
    ],
)
def test_smooth_with_zero_noise_equals_the_method(method, hyper):
    model, _ = mlp(seed=0, in_shape=(6,))
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    smoothed = attribution.smooth(method, num_samples=3, noise=0.0)
    np.testing.assert_allclose(
        to_numpy(smoothed(model, x, **hyper, seed=0)),
        to_numpy(method(model, x, **hyper)),
        rtol=1e-5,
        atol=1e-7,
    )


def test_smoothgrad_of_relu_is_the_gaussian_cdf():
    """f(x) = sum(relu(x)): E[d f(x + n)/dx] = Phi(x / sigma) per feature."""
    inputs = keras.Input((8,))
    total = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(
        keras.layers.ReLU()(inputs)
    )
    model = keras.Model(inputs, total)
    x = np.linspace(-0.3, 0.3, 16, dtype="float32").reshape(2, 8)
    sigma = 0.2
    a = attribution.smoothgrad(model, x, 0, num_samples=4000, noise=sigma, seed=0)
    # Monte-Carlo standard error is at most 0.5 / sqrt(4000) = 0.008.
    np.testing.assert_allclose(to_numpy(a), norm.cdf(x / sigma), atol=0.03)


def test_smoothgrad_of_linear_model_is_its_weight_row():
    model, w, _ = linear(seed=0, in_shape=(5,), classes=4)
    x = np.random.default_rng(1).normal(size=(3, 5)).astype("float32")
    a = attribution.smoothgrad(model, x, 1, num_samples=7, noise=1.0, seed=0)
    np.testing.assert_allclose(to_numpy(a), np.broadcast_to(w[:, 1], x.shape), rtol=1e-5)


def test_target_is_resolved_on_the_clean_input():
    model, _ = mlp(seed=0, in_shape=(6,))
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    predicted = np.argmax(to_numpy(model(x)), axis=1)
    # Noise this large flips predictions; the class explained must not move.
    a = attribution.smoothgrad(model, x, num_samples=10, noise=5.0, seed=3)
    b = attribution.smoothgrad(model, x, predicted, num_samples=10, noise=5.0, seed=3)
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6)


def test_same_seed_same_result_other_seed_other_result():
    model, _ = mlp(seed=0, in_shape=(6,))
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    a, b, c = (
        to_numpy(attribution.smoothgrad(model, x, num_samples=5, seed=s))
        for s in (7, 7, 8)
    )
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="Received: num_samples=0"):
        attribution.smooth(attribution.vanilla_gradient, num_samples=0)
    with pytest.raises(ValueError, match="Received: noise=-1.0"):
        attribution.smooth(attribution.vanilla_gradient, noise=-1)


@pytest.mark.parametrize("method", [None, "vanilla_gradient", 3])
def test_a_method_that_is_not_callable_is_rejected(method):
    with pytest.raises(TypeError, match=rf"`method`.*Received: method={method!r}"):
        attribution.smooth(method)


def test_seeds_are_checked():
    model, _ = mlp(seed=0, in_shape=(6,))
    x = np.zeros((2, 6), "float32")
    with pytest.raises(TypeError, match=r"Received: seed=0\.5"):
        attribution.smoothgrad(model, x, num_samples=2, seed=0.5)
    with pytest.raises(ValueError, match="Received: seed=-3"):
        attribution.smoothgrad(model, x, num_samples=2, seed=-3)
