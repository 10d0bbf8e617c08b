"""Faithfulness of explanations: do high attributions mark features the model uses?

Faithfulness correlation (Bhatt et al. 2020) and faithfulness estimate
(Alvarez-Melis and Jaakkola 2018), with Quantus 0.6.0's defaults, as the
NsLoss paper evaluates them (§5.2). Both replace groups of features by a
baseline, score every perturbed copy with the model, and correlate the
drop of the target logit with the attributions of the replaced features.
All perturbed copies are built as tensors and scored `batch_size` rows at
a time.
"""

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import _sampling
from keras_interp import backend
from keras_interp.attribution._scores import num_classes
from keras_interp.attribution._scores import score_model
from keras_interp.metrics import _base

DEFAULT_BATCH_SIZE = 256


def _setup(model, x, y, attributions, batch_size):
    _checks.model(model)
    x = _checks.floating_input(x, model=model)
    a = _base.warn_constant(
        _base.attributions_batch(attributions), "faithfulness", "its correlation is NaN (no variance)"
    )
    # A map without the channel axis replaces all channels of a pixel.
    if tuple(a.shape) != tuple(x.shape) and not (
        len(a.shape) == len(x.shape) - 1 and tuple(a.shape) == tuple(x.shape[:-1])
    ):
        raise ValueError(
            "`attributions` must be shaped like `x`, or like `x` without its "
            f"channel axis. Received: attributions.shape={tuple(a.shape)} for "
            f"x.shape={tuple(x.shape)}"
        )
    y = _base.labels(y, x.shape[0], num_classes(model, x))
    batch_size = _checks.positive_int(batch_size or DEFAULT_BATCH_SIZE, "batch_size")
    logits = score_model(model, "logits")
    feature_shape = tuple(a.shape[1:])
    perturbed_logit = _perturbed_logit_function(model, logits, feature_shape)
    return x, _base.flat(a), y, logits, perturbed_logit, batch_size


def _target_logit(logits, rows, y):
    return keras.ops.take_along_axis(
        logits(rows), keras.ops.convert_to_tensor(y[:, None], "int32"), axis=1
    )[:, 0]


def _replaced(rows, mask, feature_shape):
    """`rows` with the masked features set to each row's minimum.

    `mask` is `[rows, F]` over the attribution's features; a map without a
    channel axis masks every channel of a pixel. The baseline is Quantus'
    "black": the minimum over the example's whole input.
    """
    axes = tuple(range(1, len(rows.shape)))
    black = keras.ops.min(rows, axis=axes, keepdims=True)
    mask = keras.ops.reshape(mask, (-1,) + tuple(feature_shape))
    if len(feature_shape) == len(rows.shape) - 2:
        mask = mask[..., None]
    return keras.ops.where(mask, black, rows)


def _pearson(a, b):
    """Pearson correlation of each row of two [B, T] float64 arrays (NaN if constant)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def _perturbed_logit_function(model, logits, feature_shape):
    """Compiled `(rows, mask, y_rows) -> target logit` of the rows with masked features replaced."""

    def perturbed_logit(rows, mask, y_rows):
        replaced = _replaced(rows, mask, feature_shape)
        return keras.ops.take_along_axis(logits(replaced), y_rows[:, None], axis=1)[:, 0]

    return backend.compiled(perturbed_logit, model.variables)


def _correlation(x, a, y, logits, perturbed_logit, num_masks, masked, verbose):
    """Pearson, per example, of masked attribution sums and target-logit drops.

    `masked` yields `(k, e, mask)`: rows of mask index `k` of example `e`.
    """
    clean = _base.scores(_target_logit(logits, x, y))
    drops = np.zeros((x.shape[0], num_masks))
    sums = np.zeros((x.shape[0], num_masks))
    bar = _base.progress(num_masks * x.shape[0], verbose, "row")
    for k, e, mask in masked:
        y_rows = keras.ops.convert_to_tensor(y[e], "int32")
        perturbed = _base.scores(perturbed_logit(_sampling.rows(x, e), mask, y_rows))
        drops[e, k] = clean[e] - perturbed
        a_rows = _sampling.rows(a, e)
        sums[e, k] = _base.scores(keras.ops.sum(keras.ops.where(mask, a_rows, 0.0), axis=1))
        if bar is not None:
            bar.add(len(e))
    return _pearson(sums, drops)


@_base.metric(higher_is_better=True)
def faithfulness_correlation(
    model,
    x,
    y,
    attributions,
    *,
    num_runs=100,
    subset_size=224,
    batch_size=None,
    seed=None,
    verbose=1,
):
    """Faithfulness correlation (Bhatt et al. 2020), as Quantus 0.6.0 computes it.

    For each example, `num_runs` times: a random subset of `subset_size`
    features (without replacement; capped at the number of features) is
    replaced by the example's minimum input value ("black"); the run gives
    the attribution sum over the subset and the drop of the target logit
    `f_y(x) - f_y(x_perturbed)`. The score is the Pearson correlation of
    the two over the runs. Quantus normalises the attributions by their
    batch-wide max first, which does not change a Pearson correlation, so
    no normalisation is done here. A final softmax is bypassed (logits).

    Args:
        model: a Keras classifier.
        x: inputs `[B, ...]`.
        y: int labels `[B]`: the class whose logit is watched.
        attributions: maps shaped like `x`, or like `x` without its channel
            axis (then a feature is a pixel, all channels replaced).
        num_runs: random subsets per example. Defaults to 100.
        subset_size: features per subset. Defaults to 224.
        batch_size: perturbed copies scored per model call. Defaults to 256.
        seed: seed of the subsets, drawn with NumPy: scores do not depend
            on `batch_size` or on the backend.
        verbose: 1 shows a progress bar, 0 is silent.

    Returns:
        A float64 NumPy array `[B]`, in [-1, 1]; higher is better (NaN for a
        constant map).

    Example:

    ```python
    a = keras_interp.attribution.integrated_gradients(model, x, y)
    score = keras_interp.metrics.faithfulness_correlation(model, x, y, a, seed=0)
    ```
    """
    x, a, y, logits, perturbed_logit, batch_size = _setup(model, x, y, attributions, batch_size)
    num_runs = _checks.positive_int(num_runs, "num_runs")
    subset_size = _checks.positive_int(subset_size, "subset_size")
    features = a.shape[1]
    subset_size = min(subset_size, features)
    draw = _subset_draw(features, subset_size, seed)
    chunks = _sampling.sample_chunks(x.shape[0], num_runs, batch_size, draw)
    masked = ((s, e, drawn["mask"]) for s, e, drawn in chunks)
    return _correlation(x, a, y, logits, perturbed_logit, num_runs, masked, verbose)


def _subset_draw(features, subset_size, seed):
    """`draw(n)` of `sample_chunks`: n random feature subsets, as masks."""
    rng = _sampling.numpy_generator(seed)

    def draw(n):
        # A uniformly random subset: the `subset_size` smallest of F uniform keys.
        keys = rng.random((n, features))
        chosen = np.argpartition(keys, subset_size - 1, axis=1)[:, :subset_size]
        mask = np.zeros((n, features), bool)
        np.put_along_axis(mask, chosen, True, axis=1)
        return {"mask": keras.ops.convert_to_tensor(mask)}

    return draw


@_base.metric(higher_is_better=True)
def faithfulness_estimate(
    model, x, y, attributions, *, features_in_step=1, batch_size=None, verbose=1
):
    """Faithfulness estimate (Alvarez-Melis and Jaakkola 2018), as Quantus 0.6.0.

    Features are ranked by attribution, highest first (a stable sort: ties
    keep feature order), and cut into consecutive groups of
    `features_in_step`. Each group alone (not cumulatively) is replaced by
    the example's minimum input value, giving the group's attribution sum
    and the drop of the target logit; the score is their Pearson
    correlation over the groups (Quantus' default similarity, although its
    docstring says Spearman). Batch-wide normalisation (Quantus' default)
    does not change it and is not done. A final softmax is bypassed.

    Args:
        model, x, y, attributions, batch_size, verbose: as in
            `faithfulness_correlation`.
        features_in_step: features per group. Defaults to 1: one model
            call per feature, F rows per example.

    Returns:
        A float64 NumPy array `[B]`, in [-1, 1]; higher is better.

    Example:

    ```python
    score = keras_interp.metrics.faithfulness_estimate(model, x, y, a)
    ```
    """
    x, a, y, logits, perturbed_logit, batch_size = _setup(model, x, y, attributions, batch_size)
    features_in_step = _checks.positive_int(features_in_step, "features_in_step")
    features = a.shape[1]
    steps = -(-features // features_in_step)
    # Each feature's group: its rank by attribution, integer-divided.
    order = np.argsort(-_base.scores(a), axis=1, kind="stable")
    group = np.empty_like(order)
    np.put_along_axis(group, order, np.arange(features)[None] // features_in_step, axis=1)
    group = keras.ops.convert_to_tensor(group, "int32")

    chunks = _sampling.sample_chunks(x.shape[0], steps, batch_size)
    masked = (
        (t, e, _sampling.rows(group, e) == keras.ops.convert_to_tensor(t[:, None], "int32"))
        for t, e, _ in chunks
    )
    return _correlation(x, a, y, logits, perturbed_logit, steps, masked, verbose)
