"""How alike two attribution maps are: rank correlation, top-k, SSIM.

The three measures of the ATEX paper (paper 2, §5.1, after Ghorbani et al.
2019) for comparing an explanation with the explanation of a perturbed
input. Each compares `a[i]` with `b[i]` for every example `i` of a batch
at once.
"""

import keras
import numpy as np

from keras_interp import _checks
from keras_interp.metrics._base import attributions_batch
from keras_interp.metrics._base import flat
from keras_interp.metrics._base import metric
from keras_interp.metrics._base import scores
from keras_interp.metrics._base import warn_constant


def _pair(a, b):
    a = attributions_batch(a, "a")
    b = attributions_batch(b, "b")
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            "`a` and `b` must have the same shape. "
            f"Received: a.shape={tuple(a.shape)}, b.shape={tuple(b.shape)}"
        )
    warn_constant(
        keras.ops.concatenate([a, b], 0),
        "similarity",
        "a pair of constant maps scores 1 (perfect rank correlation, top-k and SSIM)",
    )
    return a, b


def _average_ranks(x):
    """Ranks 1..F along the last axis of `[B, F]`, ties given their mean.

    `scipy.stats.rankdata(method="average")`, batched: sort once; in the
    sorted row a run of equal values spans positions `first..last`, and each
    member gets `(first + last) / 2 + 1`.
    """
    n = x.shape[-1]
    order = keras.ops.argsort(x, axis=-1)
    s = keras.ops.take_along_axis(x, order, axis=-1)
    position = keras.ops.broadcast_to(
        keras.ops.arange(n, dtype="int32"), keras.ops.shape(s)
    )
    starts_run = keras.ops.concatenate(
        [keras.ops.ones_like(s[:, :1], "bool"), s[:, 1:] != s[:, :-1]], axis=-1
    )
    run = keras.ops.cumsum(keras.ops.cast(starts_run, "int32"), axis=-1) - 1
    # The start positions of the runs, in run order, padded with n: run r
    # spans starts[r] .. starts[r + 1] - 1.
    starts = keras.ops.sort(keras.ops.where(starts_run, position, n), axis=-1)
    starts = keras.ops.pad(starts, [[0, 0], [0, 1]], constant_values=n)
    first = keras.ops.take_along_axis(starts, run, axis=-1)
    last = keras.ops.take_along_axis(starts, run + 1, axis=-1) - 1
    sorted_ranks = keras.ops.cast(first + last, "float32") / 2.0 + 1.0
    return keras.ops.take_along_axis(
        sorted_ranks, keras.ops.argsort(order, axis=-1), axis=-1
    )


@metric(higher_is_better=True)
def rank_correlation(a, b):
    """Spearman's rank correlation between two maps, per example.

    The first similarity measure of the ATEX paper (§5.1): the Pearson
    correlation of the ranks of the `F` features of `a[i]` and `b[i]`
    (every element is a feature, channels included). Tied values get the
    mean of their ranks, exactly as `scipy.stats.spearmanr` (and
    `scipy.stats.rankdata(method="average")`) do, so maps with large flat
    regions (zeros) score as they do in SciPy. The values are ranked as
    they are, signed; pass `abs(a)`, `abs(b)` to rank magnitudes.

    The maps are compared as float32 (so float64 values closer than
    float32 resolution become ties). A constant map has no ranking: its
    score is NaN, as SciPy returns. Sorting makes this O(F log F) in time
    and O(F) in memory per example.

    Args:
        a: array `[B, ...]`, the first maps.
        b: array shaped like `a`, the maps to compare with.

    Returns:
        A float64 NumPy array `[B]` with values in [-1, 1]. The function
        carries `rank_correlation.higher_is_better = True`.

    Example:

    ```python
    a = np.random.rand(4, 28, 28)
    keras_interp.metrics.rank_correlation(a, a ** 3)   # all 1.0
    keras_interp.metrics.rank_correlation(a, -a)       # all -1.0
    ```
    """
    a, b = _pair(a, b)
    n = int(np.prod(a.shape[1:]))
    mean_rank = (n + 1) / 2.0  # average ranks keep the sum n (n + 1) / 2
    da = _average_ranks(flat(a)) - mean_rank
    db = _average_ranks(flat(b)) - mean_rank
    covariance = keras.ops.sum(da * db, axis=-1)
    spread = keras.ops.sqrt(
        keras.ops.sum(da * da, axis=-1) * keras.ops.sum(db * db, axis=-1)
    )
    return scores(covariance / spread)


def _top_k_mask(x, k):
    """True at the k largest entries of each row of `[B, F]`.

    Ties at the k-th value are broken by position: earlier features first.
    """
    kth = keras.ops.top_k(x, k, sorted=True)[0][:, k - 1 : k]
    greater = x > kth
    equal = x == kth
    room = k - keras.ops.sum(keras.ops.cast(greater, "int32"), axis=-1, keepdims=True)
    first_equal = keras.ops.cumsum(keras.ops.cast(equal, "int32"), axis=-1) <= room
    return keras.ops.logical_or(greater, keras.ops.logical_and(equal, first_equal))


@metric(higher_is_better=True)
def top_k_intersection(a, b, k):
    """Share of the k most important features of `a` also top-k in `b`.

    The second similarity measure of the ATEX paper (§5.1), after Ghorbani
    et al. 2019: "the size of the intersection of the k most important
    features", divided by `k` so that it lies in [0, 1] as the paper's
    Tables 1-4 report it. Importance is the absolute value, `|a|` and `|b|`, and every
    element is a feature (channels included; reduce channels first, e.g.
    `sum(abs(a), axis=-1)`, to compare pixels as Ghorbani et al. do).

    Ties: where several features share the k-th largest |value|, the ones
    that come first in row-major (flattened) order are taken, so exactly
    `k` features are chosen from each map. Two constant maps therefore
    score 1.0.

    Args:
        a: array `[B, ...]`, the reference maps.
        b: array shaped like `a`, the maps to compare with.
        k: number of features, an integer in `[1, F]` with `F` the number
            of elements of one map.

    Returns:
        A float64 NumPy array `[B]` of multiples of `1 / k` in [0, 1]. The
        function carries `top_k_intersection.higher_is_better = True`.

    Example:

    ```python
    a = np.random.rand(4, 28, 28)
    keras_interp.metrics.top_k_intersection(a, 2 * a, k=50)   # all 1.0
    ```
    """
    a, b = _pair(a, b)
    n = int(np.prod(a.shape[1:]))
    k = _checks.positive_int(k, "k")
    if k > n:
        raise ValueError(
            "`k` must be at most the number of features of one map "
            f"({n}). Received: k={k}"
        )
    in_a = _top_k_mask(keras.ops.abs(flat(a)), k)
    in_b = _top_k_mask(keras.ops.abs(flat(b)), k)
    both = keras.ops.cast(keras.ops.logical_and(in_a, in_b), "int32")
    return scores(keras.ops.sum(both, axis=-1)) / k


def _data_range(a, b, data_range):
    """Per-example data range `[B, 1, 1, 1]`."""
    axes = tuple(range(1, len(a.shape)))
    if data_range is None:
        high = keras.ops.maximum(keras.ops.max(a, axis=axes), keras.ops.max(b, axis=axes))
        low = keras.ops.minimum(keras.ops.min(a, axis=axes), keras.ops.min(b, axis=axes))
        r = high - low
        # Only two identical constant maps have no range; any range then
        # gives 1.0.
        r = keras.ops.where(r > 0, r, 1.0)
    else:
        r = np.asarray(data_range, dtype="float64")
        batch = a.shape[0]
        if r.ndim > 1 or (r.ndim == 1 and r.shape[0] != batch):
            raise ValueError(
                "`data_range` must be a number or one number per example, "
                f"shape ({batch},). Received: data_range.shape={r.shape}"
            )
        if not np.all(np.isfinite(r) & (r > 0)):
            raise ValueError(
                f"`data_range` must be finite and > 0. Received: data_range={data_range}"
            )
        r = keras.ops.convert_to_tensor(np.broadcast_to(r, (batch,)), "float32")
    return keras.ops.reshape(r, (-1, 1, 1, 1))


@metric(higher_is_better=True)
def ssim(a, b, data_range=None):
    """Structural similarity (SSIM) of two maps, per example.

    The visual similarity measure of the ATEX paper (§5.1, Fig. 3), Wang et
    al. 2004, with the defaults of `skimage.metrics.structural_similarity`:
    a uniform 7x7 window, `K1 = 0.01`, `K2 = 0.03`, sample covariances
    (`use_sample_covariance=True`) and the mean of the SSIM map over the
    windows that lie wholly inside the map (skimage's crop of 3 pixels on
    each side). Multichannel maps `[B, H, W, C]` are compared channel by
    channel and averaged, as skimage does with `channel_axis=-1`.

    For example `i` this equals
    `structural_similarity(a[i], b[i], data_range=r_i)` (with
    `channel_axis=-1` for 4-D input), computed here in float32.

    Args:
        a: array `[B, H, W]` or channels-last `[B, H, W, C]`, the first
            maps; `H` and `W` at least 7.
        b: array shaped like `a`, the maps to compare with.
        data_range: the value range `r` that scales the constants
            `C1 = (K1 r)^2`, `C2 = (K2 r)^2`: a number > 0, or one per
            example (shape `[B]`). skimage requires it for float input.
            Defaults to `None`: for each example, the joint range of both
            maps, `max(a[i].max(), b[i].max()) - min(a[i].min(), b[i].min())`
            (1.0 where that is 0, i.e. for two identical constant maps,
            which then score 1.0). Pass it explicitly (e.g. 1.0 for images
            in [0, 1]) to compare with published numbers.

    Returns:
        A float64 NumPy array `[B]`, at most 1.0 (identical maps score 1.0
        up to float32 rounding). The function carries
        `ssim.higher_is_better = True`.

    Example:

    ```python
    a = np.random.rand(4, 28, 28)
    keras_interp.metrics.ssim(a, a)                       # all 1.0
    keras_interp.metrics.ssim(a, a + 0.1 * np.random.rand(4, 28, 28),
                              data_range=1.0)
    ```
    """
    a, b = _pair(a, b)
    if len(a.shape) not in (3, 4):
        raise ValueError(
            "`a` and `b` must be maps shaped [B, H, W] or [B, H, W, C]. "
            f"Received: a.shape={tuple(a.shape)}"
        )
    win = 7
    if a.shape[1] < win or a.shape[2] < win:
        raise ValueError(
            f"`a` and `b` must be at least {win}x{win} (the SSIM window). "
            f"Received: a.shape={tuple(a.shape)}"
        )
    if len(a.shape) == 3:
        a = keras.ops.expand_dims(a, -1)
        b = keras.ops.expand_dims(b, -1)
    # SSIM is unchanged when the maps and the range are scaled together:
    # work on a / r, b / r with r = 1. The (co)variances are also unchanged
    # by a shift, so they are computed on centred maps (less float32
    # cancellation in E[x^2] - E[x]^2); the means are shifted back.
    r = _data_range(a, b, data_range)
    a = a / r
    b = b / r
    mean_a = keras.ops.mean(a, axis=(1, 2, 3), keepdims=True)
    mean_b = keras.ops.mean(b, axis=(1, 2, 3), keepdims=True)
    x = a - mean_a
    y = b - mean_b
    c = a.shape[-1]
    moments = keras.ops.concatenate([x, y, x * x, y * y, x * y], axis=-1)
    local = keras.ops.average_pool(moments, win, strides=1, padding="valid")
    ux, uy, uxx, uyy, uxy = (local[..., i * c : (i + 1) * c] for i in range(5))
    cov_norm = win * win / (win * win - 1.0)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    ux = ux + mean_a
    uy = uy + mean_b
    c1 = 0.01**2
    c2 = 0.03**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / (
        (ux * ux + uy * uy + c1) * (vx + vy + c2)
    )
    return scores(keras.ops.mean(s, axis=(1, 2, 3)))
