"""Faithfulness metrics against literal per-feature loops on a NumPy twin of the model."""

import keras
import numpy as np
import pytest
import scipy.stats

from keras_interp import _sampling
from keras_interp import metrics
from keras_interp.metrics import faithfulness
from tests.conftest import mlp
from tests.conftest import to_numpy

pytestmark = pytest.mark.backends_in_ci


def setup(seed=0, n=3, shape=(5, 5, 2)):
    model, logits = mlp(seed, in_shape=shape, hidden=16, classes=4)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n,) + shape).astype("float32")
    y = rng.integers(0, 4, n)
    return model, logits, x, y, rng


def replaced(x, a_shape, features):
    """x with the given attribution features set to x's minimum (literal)."""
    out = x.copy()
    grid = out.reshape(a_shape + (-1,)) if len(a_shape) < x.ndim else out.reshape(a_shape + (1,))
    flat = grid.reshape(-1, grid.shape[-1])
    flat[features] = x.min()
    return flat.reshape(x.shape)


def literal_estimate(logits, x, y, a, step):
    scores = []
    for xi, yi, ai in zip(x, y, a):
        order = np.argsort(-ai.reshape(-1), kind="stable")
        clean = logits(xi[None])[0, yi]
        deltas, sums = [], []
        for t in range(0, len(order), step):
            group = order[t : t + step]
            deltas.append(clean - logits(replaced(xi, ai.shape, group)[None])[0, yi])
            sums.append(ai.reshape(-1)[group].sum())
        scores.append(scipy.stats.pearsonr(sums, deltas)[0])
    return np.array(scores)


@pytest.mark.parametrize("step", [1, 3])
@pytest.mark.parametrize("channels", [True, False], ids=["like_x", "no_channel_axis"])
def test_faithfulness_estimate_equals_the_literal_loop(step, channels):
    model, logits, x, y, rng = setup(1)
    a = rng.normal(size=x.shape if channels else x.shape[:-1]).astype("float32")
    ours = metrics.faithfulness_estimate(model, x, y, a, features_in_step=step, batch_size=7, verbose=0)
    np.testing.assert_allclose(ours, literal_estimate(logits, x, y, a, step), rtol=1e-4, atol=1e-5)


def test_faithfulness_correlation_equals_the_literal_loop_on_the_same_subsets():
    model, logits, x, y, rng = setup(2, n=4)
    a = rng.normal(size=x.shape).astype("float32")
    features, runs, size = a[0].size, 12, 9
    # The subsets the metric draws for seed 5, replayed in one big chunk.
    masks = np.zeros((runs, len(x), features), bool)
    draw = faithfulness._subset_draw(features, size, seed=5)
    for s, e, drawn in _sampling.sample_chunks(len(x), runs, 10_000, draw):
        masks[s, e] = to_numpy(drawn["mask"])
    assert (masks.sum(-1) == size).all()

    expected = []
    for i, (xi, yi, ai) in enumerate(zip(x, y, a)):
        clean = logits(xi[None])[0, yi]
        deltas, sums = [], []
        for r in range(runs):
            subset = np.flatnonzero(masks[r, i])
            deltas.append(clean - logits(replaced(xi, ai.shape, subset)[None])[0, yi])
            sums.append(ai.reshape(-1)[subset].sum())
        expected.append(scipy.stats.pearsonr(sums, deltas)[0])

    ours = metrics.faithfulness_correlation(
        model, x, y, a, num_runs=runs, subset_size=size, batch_size=5, seed=5, verbose=0
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_subset_larger_than_the_input_is_capped():
    model, _, x, y, rng = setup(3)
    a = rng.normal(size=x.shape).astype("float32")
    # 224 > 50 features: every run replaces everything, so the correlation
    # is undefined (NaN), as in Quantus.
    with np.errstate(invalid="ignore"):
        scores = metrics.faithfulness_correlation(model, x, y, a, num_runs=5, seed=0, verbose=0)
    assert np.isnan(scores).all()


def test_an_attribution_that_is_the_logit_drop_is_perfectly_faithful():
    # For a linear model, replacing feature f moves the logit by
    # w_f (x_f - min x): use exactly that as the attribution.
    _, _, x, y, _ = setup(4)
    linear = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Flatten(), keras.layers.Dense(4)])
    w = np.random.default_rng(4).normal(size=(x[0].size, 4)).astype("float32")
    linear.set_weights([w, np.zeros(4, "float32")])
    flat = x.reshape(len(x), -1)
    a = (w[:, y].T * (flat - flat.min(1, keepdims=True))).reshape(x.shape)
    estimate = metrics.faithfulness_estimate(linear, x, y, a, verbose=0)
    correlation = metrics.faithfulness_correlation(linear, x, y, a, num_runs=20, subset_size=10, seed=0, verbose=0)
    np.testing.assert_allclose(estimate, 1.0, atol=1e-5)
    np.testing.assert_allclose(correlation, 1.0, atol=1e-5)


def test_bad_arguments():
    model, _, x, y, _ = setup()
    with pytest.raises(ValueError, match="shaped like `x`.*Received: attributions.shape=\\(3, 4\\)"):
        metrics.faithfulness_estimate(model, x, y, np.zeros((3, 4), "float32"))
    with pytest.raises(ValueError, match="Received: features_in_step=0"):
        metrics.faithfulness_estimate(model, x, y, x, features_in_step=0)
    with pytest.raises(ValueError, match="Received: num_runs=0"):
        metrics.faithfulness_correlation(model, x, y, x, num_runs=0)
    assert metrics.faithfulness_estimate.higher_is_better is True


@pytest.mark.skipif(keras.config.backend() != "torch", reason="a torch tensor NumPy cannot read")
def test_attributions_that_numpy_cannot_read():
    """A torch tensor that requires grad, like one on a GPU, has no NumPy
    view; the metrics take it as it is (found on a GPU: `np.asarray` was
    called on every attribution tensor) and score it like its values."""
    import torch

    model = mlp(0)[0]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6)).astype("float32")
    a = rng.normal(size=(4, 6)).astype("float32")
    held = torch.tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError):
        np.asarray(held)
    expected = metrics.faithfulness_estimate(model, x, [0, 1, 0, 1], a, verbose=0)
    got = metrics.faithfulness_estimate(model, x, [0, 1, 0, 1], held, verbose=0)
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=1e-6)
