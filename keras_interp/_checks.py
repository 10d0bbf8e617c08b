"""Argument checks shared across keras_interp.

Each raises a `ValueError`/`TypeError` that names the argument, the value
received and what was expected, before any expensive work starts. Checks
that read values (finiteness, label ranges) skip symbolic tensors: inside
a compiled step there are no values to read yet.
"""

import keras
import numpy as np

from keras_interp import backend

_INTEGER_ADVICE = (
    "Scale integer images to floats first, e.g. `x / 255.0`; if the model "
    "has its own `Rescaling` layer, convert without scaling, "
    "`x.astype('float32')`, or the pixels are scaled twice"
)


def model(value, name="model"):
    """`value` if it can be called like a Keras model; a `TypeError` otherwise."""
    if value is None or not callable(value):
        raise TypeError(
            f"`{name}` must be a Keras model (a callable mapping a batch to "
            f"scores [batch, classes]). Received: {name}={value!r}"
        )
    return value


def finite(x, name):
    """Raises a `ValueError` if concrete `x` holds NaN or inf; returns `x`."""
    if backend.is_symbolic(x):
        return x
    if bool(keras.ops.all(keras.ops.isfinite(x))):
        return x
    values = np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")
    rows = values.reshape(values.shape[0], -1) if values.ndim > 1 else values[None]
    example = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
    where = f", first in example {example}" if values.ndim > 1 else ""
    raise ValueError(
        f"`{name}` must be finite. Received: {name} with "
        f"{int(np.isnan(values).sum())} NaN and {int(np.isinf(values).sum())} "
        f"infinite values{where}"
    )


def floating_input(x, name="x", model=None):
    """`x` as a finite float batch tensor of dtype `floatx`.

    Rejects None, non-float dtypes (with advice that fits a model with its
    own `Rescaling`), fewer than 2 axes, no examples, NaN/inf and, when a
    `model` with symbolic inputs is given, a shape that does not match it.
    """
    if x is None:
        raise TypeError(f"`{name}` must be an array of inputs [batch, ...]. Received: {name}=None")
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
    dtype = keras.backend.standardize_dtype(dtype)
    if "float" not in dtype:
        raise TypeError(
            f"`{name}` must be a floating-point array. {_INTEGER_ADVICE}. "
            f"Received: {name}.dtype={dtype}"
        )
    x = keras.ops.convert_to_tensor(x, dtype=keras.config.floatx())
    if len(x.shape) < 2:
        raise ValueError(
            f"`{name}` must be a batch with a leading example axis, at least "
            f"2-D. Received: {name}.shape={tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(
            f"`{name}` must hold at least one example. Received: {name}.shape={tuple(x.shape)}"
        )
    if model is not None:
        matches_input(model, x, name)
    return finite(x, name)


def _input_shape(model):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape)


def _shape_text(shape):
    return "(" + ", ".join("batch" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"


def matches_input(model, x, name="x"):
    """Raises a `ValueError` if `x`'s shape cannot feed `model`'s symbolic input."""
    expected = _input_shape(model)
    if expected is None:
        return
    got = tuple(x.shape)

    def fits(dims, wanted):
        return len(dims) == len(wanted) and all(w is None or d is None or w == d for d, w in zip(dims, wanted))

    if fits(got, expected[1:]):
        raise ValueError(
            f"`{name}` looks like one example without its batch axis; the model "
            f"expects {_shape_text(expected)}. Add the axis, e.g. `x[None]`. "
            f"Received: {name}.shape={got}"
        )
    if not fits(got[1:], expected[1:]):
        raise ValueError(
            f"`{name}` must be shaped like the model's input, {_shape_text(expected)}. "
            f"Received: {name}.shape={got}"
        )


def clip_range(clip, name="clip"):
    """`clip` as None or a `(low, high)` pair of finite floats with low < high."""
    if clip is None:
        return None
    try:
        if isinstance(clip, (str, bytes)):
            raise TypeError(clip)
        low, high = (float(c) for c in clip)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not (np.isfinite(low) and np.isfinite(high) and low < high):
        shown = clip if low is None else (low, high)
        raise ValueError(
            f"`{name}` must be None (no clipping) or a data range (low, high) with "
            f"low < high. Received: {name}={shown!r}"
        )
    return low, high


def class_labels(y, num_examples, num_classes, name="y"):
    """Labels as one int class index per example, checked against the model.

    Accepts class indices `[B]` or `[B, 1]` (ints, or floats holding
    whole numbers) and one-hot or soft labels `[B, C]`. With
    `num_classes=None` (the model is not known yet) only the form is
    checked.

    Returns:
        An int NumPy array `[B]`: the index, or the largest entry of a
        one-hot row.
    """
    if y is None:
        raise TypeError(f"`{name}` must hold one label per example. Received: {name}=None")
    values = np.asarray(keras.ops.convert_to_numpy(y))
    if values.ndim == 2 and values.shape[1] == 1 and num_classes != 1:
        values = values[:, 0]
    if values.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be numeric labels. Received: {name}.dtype={values.dtype}")
    if values.ndim not in (1, 2) or values.shape[0] != num_examples:
        raise ValueError(
            f"`{name}` must hold one int class index per example (shape "
            f"({num_examples},)) or one one-hot row per example (shape "
            f"({num_examples}, {num_classes or 'classes'})). Received: {name} with shape {values.shape}"
        )
    if values.ndim == 2:
        if num_classes is not None and values.shape[1] != num_classes:
            raise ValueError(
                f"One-hot `{name}` must have {num_classes} columns, one per model "
                f"output. Received: {name}.shape={values.shape}"
            )
        if not (np.isfinite(values).all() and (values >= 0).all()):
            raise ValueError(
                f"One-hot `{name}` must be finite and non-negative. Received: "
                f"values in [{values.min()}, {values.max()}]"
            )
        return np.argmax(values, axis=1).astype("int64")
    if values.size and (not np.isfinite(values).all() or np.any(values != np.round(values))):
        raise ValueError(
            f"Class-index `{name}` must be whole numbers. Received: {name} with "
            f"values such as {values[~np.isfinite(values) | (values != np.round(values))][0]}"
        )
    bad = (values < 0) | (values >= (np.inf if num_classes is None else num_classes))
    if bad.any():
        if num_classes is None:
            raise ValueError(
                f"`{name}` must be class indices >= 0. Received: {name}={values[bad][0]} "
                f"({int(bad.sum())} of {values.size} labels negative)"
            )
        raise ValueError(
            f"`{name}` must be class indices in [0, {num_classes}) for a model with "
            f"{num_classes} outputs. Received: {name}={values[bad][0]} "
            f"({int(bad.sum())} of {values.size} labels outside)"
        )
    return values.astype("int64")


def positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value}"
        )
    return int(value)


def _number(value, name):
    if isinstance(value, (bool, str)) or value is None:
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}") from None


def non_negative(value, name):
    value = _number(value, name)
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value}"
        )
    return value


def positive(value, name):
    value = _number(value, name)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"`{name}` must be a finite number > 0. Received: {name}={value}"
        )
    return value
