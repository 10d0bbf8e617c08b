"""Argument checks shared across keras_interp.

Each raises a `ValueError`/`TypeError` that names the argument, the value
received and what was expected, before any expensive work starts.
"""

import keras
import numpy as np


def floating_input(x, name="x"):
    """Returns `x` as a backend tensor of dtype `floatx`, rejecting non-floats."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
    dtype = keras.backend.standardize_dtype(dtype)
    if "float" not in dtype:
        raise TypeError(
            f"`{name}` must be a floating-point array (scale integer images "
            f"to floats first, e.g. `x / 255.0`). Received: {name}.dtype={dtype}"
        )
    x = keras.ops.convert_to_tensor(x, dtype=keras.config.floatx())
    if len(x.shape) < 2:
        raise ValueError(
            f"`{name}` must be a batch with a leading example axis, at least "
            f"2-D. Received: {name}.shape={tuple(x.shape)}"
        )
    return x


def positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value}"
        )
    return int(value)


def non_negative(value, name):
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value}"
        )
    return value


def positive(value, name):
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"`{name}` must be a finite number > 0. Received: {name}={value}"
        )
    return value
