"""Robustness (sensitivity) of explanations: how much they move under small input noise.

Max- and avg-sensitivity (Yeh et al. 2019) and the local Lipschitz estimate
(Alvarez-Melis and Jaakkola 2018), with Quantus 0.6.0's defaults, as the
NsLoss paper evaluates them (§5.2). Every noisy copy of every example is
one row of a (sample, example) grid that is explained in chunks of
`batch_size` rows: each chunk is one call of `explain`.
"""

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import _sampling
from keras_interp.attribution._scores import num_classes
from keras_interp.metrics import _base

DEFAULT_BATCH_SIZE = 256


def _setup(model, x, y, explain, num_samples, batch_size, seed, name):
    _checks.model(model)
    x = _checks.floating_input(x, model=model)
    y = _base.labels(y, x.shape[0], num_classes(model, x))
    num_samples = _checks.positive_int(num_samples, "num_samples")
    batch_size = _checks.positive_int(batch_size or DEFAULT_BATCH_SIZE, "batch_size")
    # A random explainer gets seeds derived from `seed`, so the scores are
    # reproducible (and equal to `evaluate`'s with the same seed).
    explain = _base.seeded(_base.explainer(explain), seed, name)
    return x, y, explain, num_samples, batch_size


def _data_range(x):
    """Each example's `max(x) - min(x)`, float64 `[B]`."""
    flat = np.asarray(keras.ops.convert_to_numpy(x), "float64").reshape(x.shape[0], -1)
    return flat.max(axis=1) - flat.min(axis=1)


def _noisy_rows(model, x, y, explain, num_samples, batch_size, noise, seed, verbose, scale=None):
    """Yields `(s, e, noise_rows, explanation_rows)` over the (sample, example) grid.

    `noise(shape, rng)` draws the input noise of `shape[0]` rows with a
    NumPy generator (the same on every backend); the draws are made per
    sample and block of examples, so they do not depend on `batch_size`.
    `scale`, float64 `[B]` or None, multiplies each example's noise after
    the draw, so the draws (and the default scores) stay the same.
    """
    rng = _sampling.numpy_generator(seed)
    features = x.shape[1:]

    def draw(n):
        values = noise((n,) + tuple(features), rng).astype("float32")
        return {"noise": keras.ops.convert_to_tensor(values)}

    bar = _base.progress(num_samples * x.shape[0], verbose, "explanation")
    grid = _sampling.sample_chunks(x.shape[0], num_samples, batch_size, draw)
    for s, e, drawn in grid:
        delta = drawn["noise"]
        if scale is not None:
            factor = scale[e].astype("float32").reshape((-1,) + (1,) * len(features))
            delta = delta * keras.ops.convert_to_tensor(factor)
        noisy = _sampling.rows(x, e) + delta
        a = explain(model, noisy, y[e])
        yield s, e, _base.flat(delta), _base.flat(keras.ops.convert_to_tensor(a))
        if bar is not None:
            bar.add(len(e))


def _sensitivities(model, x, y, explain, num_samples, radius, relative_to_range, batch_size, seed, verbose, name):
    """`||a(x) - a(x')|| / ||a(x)||` per sample and example, `[B, S]` float64."""
    x, y, explain, num_samples, batch_size = _setup(model, x, y, explain, num_samples, batch_size, seed, name)
    radius = _checks.non_negative(radius, "radius")
    scale = _data_range(x) if relative_to_range else None
    clean = _base.flat(_base.explain_in_chunks(model, explain, x, y, batch_size))
    _base.warn_constant(clean, "max/avg sensitivity", "an all-zero map scores inf (0 in the denominator, as in Quantus)")
    clean_norm = keras.ops.sqrt(keras.ops.sum(clean**2, axis=-1))

    def uniform(shape, rng):
        return rng.uniform(-radius, radius, shape)

    out = np.full((x.shape[0], num_samples), np.nan)
    for s, e, _, a in _noisy_rows(
        model, x, y, explain, num_samples, batch_size, uniform, seed, verbose, scale
    ):
        index = keras.ops.convert_to_tensor(e, "int32")
        moved = keras.ops.sqrt(keras.ops.sum((keras.ops.take(clean, index, 0) - a) ** 2, axis=-1))
        out[e, s] = _base.scores(moved / keras.ops.take(clean_norm, index, 0))
    return out


@_base.metric(higher_is_better=False)
def max_sensitivity(
    model,
    x,
    y,
    explain,
    *,
    num_samples=200,
    radius=0.2,
    relative_to_range=False,
    batch_size=None,
    seed=None,
    verbose=1,
):
    """Max-sensitivity (Yeh et al. 2019), as Quantus 0.6.0 computes it.

    For each example, the largest `||a(x) - a(x')||_2 / ||a(x)||_2` over
    `num_samples` copies `x' = x + u`, `u ~ U(-radius, radius)` on every
    input element (no clipping), where `a` is `explain` for the label `y`.
    Attributions are flattened, not normalised, signs kept (Quantus'
    `MaxSensitivity` defaults); samples giving NaN are skipped (`nanmax`).

    The radius is in input units, so its meaning depends on the data
    range: Quantus' 0.2 is 20% of the range of [0, 1] digits but only
    about 4% of ImageNet-normalised images (`(x - mean) / std` with std
    `(0.229, 0.224, 0.225)`): one channel spans `(1 - 0) / std`, 4.37 to
    4.46 units (`0.2 / 4.44 = 4.5%`), and a whole RGB image at most
    `(1 - 0.406) / 0.225 + 0.485 / 0.229 = 4.76` units (`0.2 / 4.76 =
    4.2%`). `relative_to_range=True` makes the radius a
    fraction of each example's range `max(x) - min(x)` instead, so the
    same setting means the same noise whatever the units of the inputs.

    Args:
        model: a Keras classifier.
        x: inputs `[B, ...]`.
        y: int labels `[B]`; the explained class.
        explain: an attribution method `explain(model, x, target)` (e.g.
            `keras_interp.attribution.integrated_gradients`, or a
            `functools.partial` of one) or its name.
        num_samples: noisy copies per example. Defaults to 200.
        radius: half-width of the uniform noise. Defaults to 0.2.
        relative_to_range: if True, the half-width is `radius` times each
            example's range `max(x) - min(x)` (an example of constant
            values gets no noise). Defaults to False: `radius` in input
            units, as in Quantus.
        batch_size: rows (noisy copies) per `explain` call. Defaults to 256.
        seed: seed of the noise, drawn with NumPy: the scores do not
            depend on `batch_size` or on the backend.
        verbose: 1 shows a progress bar, 0 is silent.

    Returns:
        A float64 NumPy array `[B]`; lower is better.

    Example:

    ```python
    s = keras_interp.metrics.max_sensitivity(
        model, x, y, keras_interp.attribution.vanilla_gradient, seed=0
    )
    ```
    """
    values = _sensitivities(
        model, x, y, explain, num_samples, radius, relative_to_range, batch_size, seed, verbose, "max_sensitivity"
    )
    return np.nanmax(values, axis=1)


@_base.metric(higher_is_better=False)
def avg_sensitivity(
    model,
    x,
    y,
    explain,
    *,
    num_samples=200,
    radius=0.2,
    relative_to_range=False,
    batch_size=None,
    seed=None,
    verbose=1,
):
    """Avg-sensitivity (Yeh et al. 2019), as Quantus 0.6.0 computes it.

    As `max_sensitivity`, with the mean (`nanmean`) over the noisy copies
    in place of the maximum; `radius` and `relative_to_range` as there
    (0.2 is 20% of the range of [0, 1] digits, about 4% of
    ImageNet-normalised images).

    Args:
        model, x, y, explain, num_samples, radius, relative_to_range,
            batch_size, seed, verbose: as in `max_sensitivity`.

    Returns:
        A float64 NumPy array `[B]`; lower is better.

    Example:

    ```python
    s = keras_interp.metrics.avg_sensitivity(model, x, y, "vanilla_gradient", seed=0)
    ```
    """
    values = _sensitivities(
        model, x, y, explain, num_samples, radius, relative_to_range, batch_size, seed, verbose, "avg_sensitivity"
    )
    return np.nanmean(values, axis=1)


@_base.metric(higher_is_better=False)
def local_lipschitz_estimate(
    model,
    x,
    y,
    explain,
    *,
    num_samples=200,
    std=0.1,
    normalise="batch",
    relative_to_range=False,
    batch_size=None,
    seed=None,
    verbose=1,
):
    """Local Lipschitz estimate (Alvarez-Melis and Jaakkola 2018), as Quantus 0.6.0.

    For each example, the largest `||a~(x) - a~(x')||_2 / (||x - x'||_2 +
    1e-10)` over `num_samples` copies `x' = x + n`, `n ~ N(0, std^2)` on
    every input element, where `a~` is the attribution divided by the
    largest |attribution|:

    - `normalise="batch"` (Quantus' default): over all examples explained
      together, i.e. over the clean batch for `a~(x)` and over each
      sample's batch of noisy copies for `a~(x')`, as Quantus does with
      `batch_size=len(x)`; inputs of more than 256 examples are normalised
      per block of 256.
    - `normalise="example"`: per attribution map.
    - `normalise=None`: raw attributions.

    A copy with `x' = x` (e.g. `std=0`) scores 0.

    `std` is in input units: Quantus' 0.1 is 10% of the range of [0, 1]
    digits, about 2% of ImageNet-normalised images (which span 4.4 to
    4.8 units; see `max_sensitivity`).
    `relative_to_range=True` measures both the noise and the distance
    `||x - x'||_2` in units of each example's range `max(x) - min(x)`,
    so the score does not depend on the units of the inputs (on inputs
    whose range is 1 it is the default score).

    Args:
        model, x, y, explain, num_samples, batch_size, seed, verbose: as in
            `max_sensitivity`.
        std: standard deviation of the Gaussian noise. Defaults to 0.1.
        normalise: `"batch"` (default), `"example"` or None.
        relative_to_range: if True, the noise's standard deviation is
            `std` times each example's range and the distance is divided
            by that range (an example of constant values gets no noise
            and scores 0). Defaults to False: input units, as in Quantus.

    Returns:
        A float64 NumPy array `[B]`; lower is better.

    Example:

    ```python
    lle = keras_interp.metrics.local_lipschitz_estimate(
        model, x, y, keras_interp.attribution.integrated_gradients, seed=0
    )
    ```
    """
    if normalise not in ("batch", "example", None):
        raise ValueError(
            '`normalise` must be "batch", "example" or None. Received: '
            f"normalise={normalise!r}"
        )
    x, y, explain, num_samples, batch_size = _setup(
        model, x, y, explain, num_samples, batch_size, seed, "local_lipschitz_estimate"
    )
    std = _checks.non_negative(std, "std")
    scale = _data_range(x) if relative_to_range else None
    clean = _base.flat(_base.explain_in_chunks(model, explain, x, y, batch_size))
    _base.warn_constant(
        clean, "local_lipschitz_estimate", "a map that stays constant under the noise scores 0, the best score"
    )
    if normalise is not None:
        everyone = np.arange(x.shape[0])
        clean = clean / _divisor(clean, np.zeros_like(everyone), everyone, normalise)

    def gaussian(shape, rng):
        return rng.normal(0.0, std, shape)

    out = np.full((x.shape[0], num_samples), np.nan)
    pending = None  # rows whose sample-batch is not complete yet
    for chunk in _noisy_rows(model, x, y, explain, num_samples, batch_size, gaussian, seed, verbose, scale):
        pending = chunk if pending is None else _join(pending, chunk)
        s, e = pending[0], pending[1]
        if normalise == "batch":
            # Rows are sample-major within a block of examples: a sample's
            # batch is complete once the block's last example has come.
            block_end = np.minimum((e // _sampling.EXAMPLE_BLOCK + 1) * _sampling.EXAMPLE_BLOCK, x.shape[0]) - 1
            complete = s < s[-1]
            complete |= (s == s[-1]) & (e[-1] == block_end[-1])
        else:
            complete = np.ones_like(s, dtype=bool)
        ready, pending = _split(pending, complete)
        if ready is None:
            continue
        s, e, noise, a = ready
        if normalise is not None:
            a = a / _divisor(a, s, e, normalise)
        index = keras.ops.convert_to_tensor(e, "int32")
        moved = keras.ops.sqrt(keras.ops.sum((keras.ops.take(clean, index, 0) - a) ** 2, axis=-1))
        distance = keras.ops.sqrt(keras.ops.sum(noise**2, axis=-1))
        if scale is not None:
            # In units of the range; a constant example (range 0) has no
            # noise and scores 0 below, whatever it is divided by.
            span = np.where(scale[e] > 0, scale[e], 1.0).astype("float32")
            distance = distance / keras.ops.convert_to_tensor(span)
        # An unmoved input scores 0: whatever `moved` is then, it is
        # rounding from explaining the rows in batches of another size.
        out[e, s] = _base.scores(keras.ops.where(distance > 0, moved / (distance + 1e-10), 0.0))
    return np.nanmax(out, axis=1)


def _join(first, second):
    return tuple(
        np.concatenate([p, q]) if isinstance(p, np.ndarray) else keras.ops.concatenate([p, q], 0)
        for p, q in zip(first, second)
    )


def _split(rows, mask):
    """(rows where mask, the rest), each None when empty."""
    def pick(m):
        if not m.any():
            return None
        index = keras.ops.convert_to_tensor(np.flatnonzero(m), "int32")
        return tuple(
            p[m] if isinstance(p, np.ndarray) else keras.ops.take(p, index, 0) for p in rows
        )

    return pick(mask), pick(~mask)


def _divisor(a, s, e, normalise):
    """Each row's max |a|: its own (`"example"`) or its batch's (`"batch"`).

    A batch is the rows of one sample and one block of examples.
    """
    peak = keras.ops.max(keras.ops.abs(a), axis=-1)
    if normalise == "batch":
        _, group = np.unique(s * (e.max() + 1) + e // _sampling.EXAMPLE_BLOCK, return_inverse=True)
        group = keras.ops.convert_to_tensor(group, "int32")
        peak = keras.ops.take(
            keras.ops.segment_max(peak, group, num_segments=int(keras.ops.max(group)) + 1), group, 0
        )
    return keras.ops.where(peak > 0, peak, 1.0)[:, None]
