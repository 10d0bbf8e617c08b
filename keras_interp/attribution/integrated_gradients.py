"""Integrated Gradients (Sundararajan et al. 2017)."""

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import _sampling
from keras_interp.attribution._scores import prepare


def _left(n):
    return np.arange(n) / n, np.full(n, 1.0 / n)


def _right(n):
    return np.arange(1, n + 1) / n, np.full(n, 1.0 / n)


def _middle(n):
    return (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)


def _trapezoid(n):
    if n < 2:
        raise ValueError(
            "`steps` must be >= 2 for method='riemann_trapezoid', which "
            f"evaluates both ends of the path. Received: steps={n}"
        )
    weights = np.full(n, 1.0 / (n - 1))
    weights[[0, -1]] /= 2
    return np.linspace(0.0, 1.0, n), weights


RULES = {
    "riemann_trapezoid": _trapezoid,
    "riemann_middle": _middle,
    "riemann_left": _left,
    "riemann_right": _right,
}


def path_points(n, method):
    """Returns `(alphas, weights)` of the quadrature rule for `[0, 1]`."""
    if method not in RULES:
        raise ValueError(
            f"`method` must be one of {sorted(RULES)}. Received: method={method!r}"
        )
    return RULES[method](_checks.positive_int(n, "steps"))


def baseline_like(baseline, x):
    """`baseline` (None, a number, one example or one per example) as a
    tensor broadcastable against `x`."""
    if baseline is None:
        return keras.ops.zeros_like(x[:1])
    b = _checks.finite(keras.ops.convert_to_tensor(baseline, x.dtype), "baseline")
    if len(b.shape) == 0:
        return keras.ops.full_like(x[:1], b)
    if tuple(b.shape) == tuple(x.shape[1:]):
        return b[None]
    if tuple(b.shape) == tuple(x.shape):
        return b
    raise ValueError(
        "`baseline` must be None (zeros), a number, one example shaped "
        f"{tuple(x.shape[1:])} or one per example shaped {tuple(x.shape)}. "
        f"Received: baseline.shape={tuple(b.shape)}"
    )


def integrated_gradients(
    model,
    x,
    target=None,
    *,
    baseline=None,
    steps=50,
    method="riemann_trapezoid",
    output="logits",
    batch_size=None,
    seed=None,
):
    """Integrated Gradients: path-averaged gradients times `x - baseline`.

    `IG(x) = (x - x') * integral_0^1 df_c(x' + a (x - x'))/dx da`
    (Sundararajan et al. 2017; NsLoss paper §2.1, Eq. 1), with the integral
    taken by a quadrature rule over `steps` points. Completeness holds up
    to the quadrature error: `sum(IG(x)) = f_c(x) - f_c(x')`.

    All `steps x batch` path points are evaluated as batched gradient calls
    of at most `batch_size` points each.

    Args:
        model: a Keras model mapping a batch to scores `[batch, classes]`.
        x: float array `[batch, ...]`, the inputs to explain.
        target: None (predicted class), an int, or one int per example.
        baseline: the reference x': None for zeros, a number, one example,
            or one per example. Defaults to zeros.
        steps: number of points on the path. Defaults to 50.
        method: quadrature rule, one of `"riemann_trapezoid"` (default;
            the exact trapezoid rule, weights summing to 1: Captum's rule
            of that name weights the same points by `1 / n` and equals
            ours times `(n - 1) / n`), `"riemann_middle"`, `"riemann_left"`,
            `"riemann_right"` (equal to Captum's rules of those names).
        output: `"logits"` (default; a final softmax is bypassed, see
            `vanilla_gradient`) or `"probabilities"`.
        batch_size: most path points per gradient call. Defaults to 64.
        seed: unused; accepted so every method has one signature.

    Returns:
        A backend tensor shaped like `x`.

    Example:

    ```python
    a = keras_interp.attribution.integrated_gradients(model, x, steps=100)
    ```
    """
    x, gradient, targets, batch_size = prepare(model, x, target, output, batch_size)
    alphas, weights = path_points(steps, method)
    base = baseline_like(baseline, x)
    per_example_base = base.shape[0] != 1
    alphas = keras.ops.convert_to_tensor(alphas, x.dtype)
    weights = keras.ops.convert_to_tensor(weights, x.dtype)

    def term(s, e, drawn):
        x_e = _sampling.rows(x, e)
        b_e = _sampling.rows(base, e) if per_example_base else base
        a = _sampling.rows(alphas, s)
        a = keras.ops.reshape(a, (-1,) + (1,) * (len(x.shape) - 1))
        grads = gradient(b_e + a * (x_e - b_e), _sampling.rows(targets, e))
        return keras.ops.reshape(_sampling.rows(weights, s), a.shape) * grads

    mean_grads = _sampling.sample_sum(term, x.shape[0], len(alphas), batch_size)
    return (x - base) * mean_grads
