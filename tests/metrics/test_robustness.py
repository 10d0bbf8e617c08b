"""Sensitivity metrics: closed forms on linear models, invariances, seeds."""

import functools

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import metrics
from tests.conftest import linear
from tests.conftest import small_cnn

pytestmark = pytest.mark.backends_in_ci

SENSITIVITY = [metrics.max_sensitivity, metrics.avg_sensitivity, metrics.local_lipschitz_estimate]


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 10, 10, 2)).astype("float32"), rng.integers(0, 4, n)


@pytest.mark.parametrize("metric", SENSITIVITY, ids=lambda m: m.__name__)
def test_zero_noise_scores_zero(metric):
    x, y = images()
    noise = {"std": 0.0} if metric is metrics.local_lipschitz_estimate else {"radius": 0.0}
    scores = metric(small_cnn(0), x, y, "vanilla_gradient", num_samples=3, seed=0, verbose=0, **noise)
    # Not bit-exact: the clean and noisy rows are explained in batches of
    # different sizes, which changes float rounding in the convolutions.
    np.testing.assert_allclose(scores, 0.0, atol=1e-5)


@pytest.mark.parametrize("metric", SENSITIVITY, ids=lambda m: m.__name__)
def test_vanilla_gradient_of_a_linear_model_never_moves(metric):
    model, _, _ = linear(1, in_shape=(10, 10, 2), classes=4)
    x, y = images()
    scores = metric(model, x, y, "vanilla_gradient", num_samples=5, seed=0, verbose=0)
    np.testing.assert_allclose(scores, 0.0, atol=1e-6)


def test_input_x_gradient_of_a_linear_model_follows_the_closed_form():
    # a(x) = x * w_y, so a(x') - a(x) = u * w_y with u ~ U(-r, r): the
    # ratio concentrates at r / sqrt(3) * ||w_y|| / ||x * w_y|| (200 dims).
    model, w, _ = linear(2, in_shape=(10, 10, 2), classes=4)
    x, y = images(seed=2)
    w_y = w[:, y].T  # [B, 200]
    flat = x.reshape(len(x), -1)
    expected = 0.2 / np.sqrt(3) * np.linalg.norm(w_y, axis=1) / np.linalg.norm(flat * w_y, axis=1)
    avg = metrics.avg_sensitivity(model, x, y, "input_x_gradient", num_samples=200, seed=0, verbose=0)
    np.testing.assert_allclose(avg, expected, rtol=0.02)
    top = metrics.max_sensitivity(model, x, y, "input_x_gradient", num_samples=200, seed=0, verbose=0)
    bound = 0.2 * np.linalg.norm(w_y, axis=1) / np.linalg.norm(flat * w_y, axis=1)
    assert np.all(top >= avg) and np.all(top <= bound)
    # Unnormalised Lipschitz ratio ||n * w_y|| / ||n||: at most max |w_y|,
    # concentrating at the RMS of w_y.
    lle = metrics.local_lipschitz_estimate(
        model, x, y, "input_x_gradient", normalise=None, num_samples=50, seed=0, verbose=0
    )
    rms = np.sqrt(np.mean(w_y**2, axis=1))
    assert np.all(lle <= np.abs(w_y).max(axis=1)) and np.all(lle >= rms * 0.95)


@pytest.mark.parametrize("metric", SENSITIVITY, ids=lambda m: m.__name__)
def test_batched_equals_unbatched_and_seeded(metric):
    x, y = images(5, seed=3)
    model = small_cnn(3)
    explain = functools.partial(ki.attribution.integrated_gradients, steps=4)
    run = functools.partial(metric, model, x, y, explain, num_samples=4, verbose=0)
    one_row = run(batch_size=1, seed=7)
    all_rows = run(batch_size=20, seed=7)
    np.testing.assert_allclose(one_row, all_rows, rtol=1e-5)
    assert not np.allclose(all_rows, run(batch_size=20, seed=8))


def test_lipschitz_normalisation_matches_a_literal_computation():
    # Noise of std 0 on all but a known row would be needed to replay the
    # draws; instead check the normalisation on a map that scales with x:
    # input_x_gradient of a linear model is x * w_y, whose batch-wide max
    # moves with the noise, so "batch" and "example" differ from None.
    model, _, _ = linear(4, in_shape=(10, 10, 2), classes=4)
    x, y = images(seed=4)
    kwargs = dict(num_samples=3, seed=0, verbose=0)
    raw = metrics.local_lipschitz_estimate(model, x, y, "input_x_gradient", normalise=None, **kwargs)
    per_example = metrics.local_lipschitz_estimate(model, x, y, "input_x_gradient", normalise="example", **kwargs)
    batch = metrics.local_lipschitz_estimate(model, x, y, "input_x_gradient", **kwargs)
    assert not np.allclose(raw, per_example) and not np.allclose(batch, per_example)


@pytest.mark.parametrize("metric", SENSITIVITY, ids=lambda m: m.__name__)
def test_noise_relative_to_the_range_does_not_depend_on_the_units(metric):
    # The same digits in [0, 1] and as 0-255 pixels, through models that see
    # the same thing: relative radii give the same scores, absolute ones not.
    x, y = images()
    # Ranges that differ per example, so the scaling has to be per example.
    x = x * np.linspace(0.5, 1.0, len(x), dtype="float32")[:, None, None, None]
    unit = small_cnn(0)
    pixels = keras.Sequential([keras.Input((10, 10, 2)), keras.layers.Rescaling(1.0 / 255)])
    for layer in unit.layers:
        pixels.add(layer)

    def score(model, inputs, **kwargs):
        return metric(model, inputs, y, "vanilla_gradient", num_samples=4, seed=0, verbose=0, **kwargs)

    relative = score(unit, x, relative_to_range=True)
    np.testing.assert_allclose(score(pixels, 255 * x, relative_to_range=True), relative, rtol=1e-3, atol=1e-6)
    assert not np.allclose(relative, 0.0)
    absolute = score(unit, x)
    assert not np.allclose(score(pixels, 255 * x), absolute, rtol=0.1)
    # On [0, 1] inputs the radius becomes a fraction of a smaller range.
    assert not np.allclose(relative, absolute)


def test_bad_arguments():
    x, y = images()
    model = small_cnn(0)
    with pytest.raises(ValueError, match="Received: num_samples=0"):
        metrics.max_sensitivity(model, x, y, "vanilla_gradient", num_samples=0)
    with pytest.raises(ValueError, match="one int class index per example"):
        metrics.avg_sensitivity(model, x, y[:2], "vanilla_gradient")
    with pytest.raises(TypeError, match="Received: explain=3"):
        metrics.max_sensitivity(model, x, y, 3)
    with pytest.raises(ValueError, match="Received: normalise='max'"):
        metrics.local_lipschitz_estimate(model, x, y, "vanilla_gradient", normalise="max")
    assert metrics.max_sensitivity.higher_is_better is False
