"""Complexity of one attribution map: its entropy and its sparseness.

Both follow Quantus 0.6.0 (`quantus.Complexity`, `quantus.Sparseness`)
line for line, including its pre-processing, so the numbers are those
of the NsLoss paper's tables (paper 1, §5.2, Table 5).
"""

import keras

from keras_interp.metrics._base import attributions_batch
from keras_interp.metrics._base import flat
from keras_interp.metrics._base import metric
from keras_interp.metrics._base import normalise_by_max
from keras_interp.metrics._base import scores
from keras_interp.metrics._base import warn_constant


def _prepare(attributions, abs, normalise, per_example):
    """Quantus' `general_preprocess`: normalise by the max |a|, then |a|."""
    a = warn_constant(
        attributions_batch(attributions, "attributions"),
        "complexity/sparseness",
        "an all-zero map has NaN entropy and sparseness 0",
    )
    if normalise:
        a = normalise_by_max(a, per_example=per_example)
    if abs:
        a = keras.ops.abs(a)
    return flat(a)


@metric(higher_is_better=False)
def complexity(attributions, *, abs=True, normalise=True, per_example=False):
    """Entropy of the attribution map's share of the total |attribution|.

    Bhatt et al. 2020 ("Evaluating and aggregating feature-based model
    explanations", §3), as `quantus.Complexity` 0.6.0 computes it and as the
    NsLoss paper (§5.2) reports it. A map spread evenly over its `F`
    features scores `log(F)`; a map on one feature scores 0. Lower is
    better.

    Exactly what is done, in order (Quantus 0.6.0 defaults):

    1. `normalise=True`: divide by the largest |a| over the *whole batch*
       (Quantus' `normalise_by_max` on the full `a_batch`; a map's scale
       then depends on the other maps in the batch), or over each example
       with `per_example=True`. An all-zero batch (or example) is left
       unchanged.
    2. `abs=True`: take |a|.
    3. Flatten each example to `F` features, divide by `sum(|a|)` of that
       example and return `-sum(a * log(a + 1e-12))`.

    Step 3 divides by each map's own total, so step 1 changes the score
    only by float rounding. An all-zero map has no distribution: its score
    is NaN (0 / 0), as in Quantus. With `abs=False`, a map with negative
    values also gives NaN (the log of a negative number), as in Quantus.

    Args:
        attributions: array `[B, ...]` of attribution maps (channels-last
            images, `[B, H, W]` maps or `[B, features]`); every element is
            one feature.
        abs: take |a| before the entropy. Defaults to `True` (Quantus).
        normalise: divide by the largest |a| first. Defaults to `True`
            (Quantus).
        per_example: with `normalise=True`, divide each map by its own
            largest |a| instead of the batch's. Defaults to `False`
            (Quantus).

    Returns:
        A float64 NumPy array `[B]`, one entropy per example. The function
        carries `complexity.higher_is_better = False`.

    Example:

    ```python
    a = np.zeros((2, 28, 28, 1), "float32")
    a[0] = 1.0               # spread evenly: log(784) = 6.66
    a[1, 14, 14] = 1.0       # a single feature: 0
    keras_interp.metrics.complexity(a)  # array([6.66, 0.])
    ```
    """
    a = _prepare(attributions, abs, normalise, per_example)
    a = a / keras.ops.sum(keras.ops.abs(a), axis=-1, keepdims=True)
    # `0 -` rather than `-`: a one-feature map scores 0.0, not -0.0.
    return scores(0.0 - keras.ops.sum(a * keras.ops.log(a + 1e-12), axis=-1))


@metric(higher_is_better=True)
def sparseness(attributions, *, abs=True, normalise=True, per_example=False):
    """Gini index of the attribution map: how few features carry it.

    Chalasani et al. 2020 ("Concise explanations of neural networks using
    adversarial training", §5), as `quantus.Sparseness` 0.6.0 computes it
    and as the NsLoss paper (§5.2) reports it. With the `F` values of a
    map plus `1e-7`, sorted ascending as `a_(1) <= ... <= a_(F)`:

    `G = sum_i (2i - F - 1) a_(i) / (F * sum_i a_(i))`.

    An even map scores 0; a map on one feature of `F` scores about
    `1 - 1/F`. Higher is better.

    Pre-processing, in order (Quantus 0.6.0 defaults): with
    `normalise=True`, divide by the largest |a| over the *whole batch*
    (`per_example=True`: over each example; an all-zero batch or example
    is left unchanged); with `abs=True`, take |a|. Unlike the entropy, the
    score depends slightly on that scale through the `1e-7` offset, so
    batch-wide and per-example normalisation differ a little. An all-zero
    (or constant) map scores 0, as in Quantus.

    Args:
        attributions: array `[B, ...]` of attribution maps (channels-last
            images, `[B, H, W]` maps or `[B, features]`); every element is
            one feature.
        abs: take |a| first. Defaults to `True` (Quantus).
        normalise: divide by the largest |a| first. Defaults to `True`
            (Quantus).
        per_example: with `normalise=True`, divide each map by its own
            largest |a| instead of the batch's. Defaults to `False`
            (Quantus).

    Returns:
        A float64 NumPy array `[B]`, one Gini index per example. The
        function carries `sparseness.higher_is_better = True`.

    Example:

    ```python
    a = np.zeros((2, 28, 28, 1), "float32")
    a[0] = 1.0               # spread evenly: 0
    a[1, 14, 14] = 1.0       # a single feature: 1 - 1/784
    keras_interp.metrics.sparseness(a)  # array([0., 0.9987])
    ```
    """
    a = _prepare(attributions, abs, normalise, per_example)
    n = a.shape[-1]
    a = keras.ops.sort(a + 1e-7, axis=-1)
    weights = 2.0 * keras.ops.arange(1, n + 1, dtype=a.dtype) - n - 1
    # The weights sum to 0, so centring `a` changes nothing but the float32
    # cancellation: a constant map scores exactly 0 rather than ~1e-8.
    centred = a - keras.ops.mean(a, axis=-1, keepdims=True)
    numerator = keras.ops.sum(weights * centred, axis=-1)
    return scores(numerator / (n * keras.ops.sum(a, axis=-1)))
