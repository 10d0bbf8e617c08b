"""GradientSHAP against closed forms and its expectation."""

import numpy as np
import pytest

from keras_interp import attribution
from tests.conftest import linear
from tests.conftest import mlp
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def test_linear_model_single_baseline_is_exact():
    model, w, _ = linear(seed=0, in_shape=(5,), classes=4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5)).astype("float32")
    base = rng.normal(size=5).astype("float32")
    a = attribution.gradient_shap(
        model, x, 2, baselines=base, num_samples=4, stdev=0.0, seed=0
    )
    np.testing.assert_allclose(to_numpy(a), (x - base) * w[:, 2], rtol=1e-5, atol=1e-6)


def test_completeness_holds_in_expectation():
    """With one baseline and no noise, E_alpha[sum a] = f(x) - f(b) exactly,
    so the Monte-Carlo mean converges to it."""
    model, logits = mlp(seed=0, in_shape=(6,), classes=3)
    x = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    a = attribution.gradient_shap(model, x, 1, num_samples=4000, stdev=0.0, seed=0)
    expected = logits(x)[:, 1] - logits(np.zeros_like(x))[:, 1]
    gap = np.abs(expected).max()
    np.testing.assert_allclose(to_numpy(a).sum(1), expected, atol=0.03 * gap)


def test_baselines_are_drawn_from_the_references():
    """Linear model: a = w * (x - mean of drawn references) -> w * (x - E b)."""
    model, w, _ = linear(seed=0, in_shape=(5,), classes=4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5)).astype("float32")
    refs = np.stack([np.zeros(5), np.ones(5)]).astype("float32")
    a = attribution.gradient_shap(
        model, x, 0, baselines=refs, num_samples=4000, stdev=0.0, seed=0
    )
    np.testing.assert_allclose(to_numpy(a), (x - 0.5) * w[:, 0], atol=0.04 * np.abs(w).max())


def test_bad_baselines_are_rejected():
    model, _, _ = linear(seed=0)
    with pytest.raises(ValueError, match="Received: baselines.shape=\\(3, 4\\)"):
        attribution.gradient_shap(
            model, np.zeros((2, 5), "float32"), baselines=np.zeros((3, 4), "float32")
        )
