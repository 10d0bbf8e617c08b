"""Integrated Gradients against closed forms and against tf-explain."""

import keras
import numpy as np
import pytest

from keras_interp import attribution
from tests.conftest import linear
from tests.conftest import mlp
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


@pytest.mark.parametrize(
    "method", ["riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right"]
)
def test_completeness_on_closed_form_model(method):
    """sum(IG) = f(x) - f(baseline), with f computed in NumPy from the weights."""
    model, logits = mlp(seed=0, in_shape=(4, 3), hidden=16, classes=3)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4, 3)).astype("float32")
    baseline = rng.normal(scale=0.5, size=(4, 3)).astype("float32")
    target = np.array([0, 1, 2, 0, 1])
    a = attribution.integrated_gradients(
        model, x, target, baseline=baseline, steps=300, method=method
    )
    rows = np.arange(5)
    expected = logits(x)[rows, target] - logits(baseline[None])[0, target]
    assert np.min(np.abs(expected)) > 0.05  # a 1% check needs a gap to measure
    np.testing.assert_allclose(to_numpy(a).reshape(5, -1).sum(1), expected, rtol=1e-2)


def test_completeness_through_probabilities():
    model, logits = mlp(seed=2, in_shape=(6,), classes=3, last_activation="softmax")
    x = np.random.default_rng(3).normal(size=(4, 6)).astype("float32")

    def prob(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    a = attribution.integrated_gradients(model, x, 1, steps=300, output="probabilities")
    expected = prob(logits(x))[:, 1] - prob(logits(np.zeros_like(x)))[:, 1]
    np.testing.assert_allclose(to_numpy(a).sum(1), expected, rtol=1e-2, atol=1e-4)


def test_linear_model_is_exact_at_any_step_count():
    model, w, _ = linear(seed=0, in_shape=(5,), classes=4)
    x = np.random.default_rng(1).normal(size=(3, 5)).astype("float32")
    a = attribution.integrated_gradients(model, x, 3, steps=2, baseline=0.5)
    np.testing.assert_allclose(to_numpy(a), (x - 0.5) * w[:, 3], rtol=1e-5)


def test_per_example_baseline():
    model, w, _ = linear(seed=0, in_shape=(5,), classes=4)
    rng = np.random.default_rng(1)
    x, base = rng.normal(size=(2, 3, 5)).astype("float32")
    a = attribution.integrated_gradients(model, x, 0, baseline=base, steps=3)
    np.testing.assert_allclose(to_numpy(a), (x - base) * w[:, 0], rtol=1e-5, atol=1e-6)


def test_bad_hyperparameters_are_rejected():
    model, _, _ = linear(seed=0)
    x = np.zeros((2, 5), "float32")
    with pytest.raises(ValueError, match="Received: steps=0"):
        attribution.integrated_gradients(model, x, steps=0)
    with pytest.raises(ValueError, match="Received: steps=1"):
        attribution.integrated_gradients(model, x, steps=1)
    with pytest.raises(ValueError, match="Received: method='simpson'"):
        attribution.integrated_gradients(model, x, method="simpson")
    with pytest.raises(ValueError, match="Received: baseline.shape=\\(4,\\)"):
        attribution.integrated_gradients(model, x, baseline=np.zeros(4, "float32"))


@pytest.mark.tensorflow_only
def test_matches_tf_explain_integrated_gradients():
    """tf-explain's raw helper returns the mean gradient over
    linspace(0, 1, n) from a zero baseline; times x it is IG with equal
    weights on n points including both ends. Our trapezoid rule weighs the
    ends by half, so the two agree up to O(1/n) discretisation."""
    tf_explain_ig = pytest.importorskip("tf_explain.core.integrated_gradients")
    from tests.conftest import small_cnn

    model = small_cnn(seed=0)
    x = np.random.default_rng(0).uniform(size=(3, 10, 10, 2)).astype("float32")
    n, target = 400, 2
    helper = tf_explain_ig.IntegratedGradients
    path = helper.generate_interpolations(x, n)
    mean_grads = helper.get_integrated_gradients(path, model, target, n).numpy()
    theirs = x * mean_grads
    ours = to_numpy(attribution.integrated_gradients(model, x, target, steps=n))
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours, theirs, atol=5e-3 * scale)
    # Their n points with both ends at full weight are exactly our
    # trapezoid rule plus half an end-point gradient each: check that
    # identity to float precision, which pins down the path and the target.
    ends = to_numpy(attribution.vanilla_gradient(model, np.concatenate([0 * x, x]), target))
    correction = x * (ends[:3] + ends[3:]) / 2
    np.testing.assert_allclose(
        theirs, ((n - 1) * ours + correction) / n, atol=1e-5 * scale
    )
