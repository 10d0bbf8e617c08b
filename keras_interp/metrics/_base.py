"""What every metric shares: its direction, batch handling and normalisation."""

import functools
import inspect
import itertools
import warnings
import zlib

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import _seeds
from keras_interp import attribution


def metric(higher_is_better):
    """Marks a metric function with the direction of a better score.

    `EarlyStopping(mode=...)`, report tables and the comparison job read
    `fn.higher_is_better`.
    """

    def mark(fn):
        fn.higher_is_better = higher_is_better
        return fn

    return mark


def attributions_batch(a, name="attributions"):
    """`a` as a float32 backend tensor with a leading example axis (>= 2-D)."""
    # Only a plain sequence is read through NumPy: a tensor on a GPU (or one
    # that requires grad, on torch) cannot be.
    dtype = keras.backend.standardize_dtype(a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype)
    if "float" not in dtype and "int" not in dtype:
        raise TypeError(f"`{name}` must be a numeric array. Received: {name}.dtype={dtype}")
    a = keras.ops.convert_to_tensor(a, "float32")
    if len(a.shape) < 2:
        raise ValueError(
            f"`{name}` must be a batch shaped [B, ...]. Received: {name}.shape={tuple(a.shape)}"
        )
    if a.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one map. Received: {name}.shape={tuple(a.shape)}")
    return _checks.finite(a, name)


def flat(a):
    """[B, ...] -> [B, F]."""
    return keras.ops.reshape(a, (keras.ops.shape(a)[0], -1))


def warn_constant(maps, metric_name, effect):
    """Warns once per call when some maps are constant (e.g. all zero).

    The definitions are kept (Quantus' numbers stay comparable), but a
    constant map ranks nothing, and its score is then NaN or trivially
    the best; the warning says how many maps are affected and how.
    """
    rows = flat(maps)
    constant = scores(keras.ops.max(rows, axis=-1) == keras.ops.min(rows, axis=-1))
    count = int(constant.sum())
    if count:
        warnings.warn(
            f"{metric_name}: {count} of {len(constant)} attribution maps are "
            f"constant (e.g. all zero); {effect}.",
            UserWarning,
            stacklevel=3,
        )
    return maps


def normalise_by_max(a, per_example=False):
    """Quantus' `normalise_by_max`: divide by the largest |a|.

    Over the whole batch, as Quantus 0.6.0 does by default (so a map's
    scale depends on the other maps in the batch), or per example. An
    all-zero array (or example) is returned unchanged.
    """
    magnitude = keras.ops.abs(a)
    if per_example:
        axes = tuple(range(1, len(a.shape)))
        peak = keras.ops.max(magnitude, axis=axes, keepdims=True)
    else:
        peak = keras.ops.max(magnitude)
    return a / keras.ops.where(peak > 0, peak, 1.0)


def scores(t):
    """A per-example score tensor as a float64 NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(t), dtype="float64")


def explainer(explain):
    """An attribution method, given as a callable or by name."""
    if isinstance(explain, str):
        return attribution.get(explain)
    if not callable(explain):
        raise TypeError(
            "`explain` must be an attribution method (a callable "
            "`explain(model, x, target)`) or its name. Received: "
            f"explain={explain!r}"
        )
    return explain


# Key of the explainer's seeds in `_seeds.mix(seed, _EXPLAIN, stream, call)`.
_EXPLAIN = 1


def _takes_seed(explain):
    """Whether `explain` has a `seed` argument that nothing has bound yet."""
    if isinstance(explain, functools.partial) and "seed" in explain.keywords:
        return False  # the caller chose the seed
    try:
        parameters = inspect.signature(explain).parameters
    except (TypeError, ValueError):
        return False
    seed = parameters.get("seed")
    return seed is not None and seed.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def seeded(explain, seed, stream):
    """`explain` with a seed per call, derived from `seed`, `stream` (a name)
    and the call's index.

    A random explainer (GradientSHAP, SmoothGrad) called without a seed
    draws a fresh one each time, so a table scored twice with one `seed`
    differed (max-sensitivity by up to 0.28). The metrics call `explain`
    in a fixed order (chunks of a fixed grid), so counting the calls gives
    every call the same seed in every run and process. `stream` is a hash
    of the metric's name: a metric's scores do not depend on which other
    metrics are in the table, and a metric called alone with `seed` gives
    what `evaluate` gives with that seed.
    """
    if not _takes_seed(explain):
        return explain
    calls = itertools.count()

    @functools.wraps(explain)
    def explain_with_seed(model, x, target=None, **kwargs):
        kwargs.setdefault("seed", _seeds.mix(seed, _EXPLAIN, _stream(stream), next(calls)))
        return explain(model, x, target, **kwargs)

    return explain_with_seed


def _stream(name):
    # crc32, not hash(): Python salts str hashes per process.
    return zlib.crc32(name.encode("utf-8"))


def explain_in_chunks(model, explain, x, y, batch_size):
    """`explain(model, x, y)` over `batch_size` examples per call, shaped like its output."""
    parts = [
        keras.ops.convert_to_tensor(explain(model, x[i : i + batch_size], y[i : i + batch_size]))
        for i in range(0, x.shape[0], batch_size)
    ]
    return parts[0] if len(parts) == 1 else keras.ops.concatenate(parts, 0)


def labels(y, num_examples, num_classes=None):
    """`y` as an int NumPy array with one class index per example.

    Checked by `_checks.class_labels`: the range against `num_classes`
    when the model is known, e.g. `-1` is refused rather than wrapping to
    the last class.
    """
    return _checks.class_labels(y, num_examples, num_classes)


def progress(total, verbose, unit):
    """A Keras progress bar over `total` units, or None when `verbose` is 0."""
    return keras.utils.Progbar(total, unit_name=unit) if verbose else None
