"""GradientSHAP (Lundberg and Lee 2017), as Captum defines it."""

import keras

from keras_interp import _checks
from keras_interp import _sampling
from keras_interp.attribution._scores import prepare


def _references(baselines, x):
    """The baseline distribution as `[M, ...]` references to draw from."""
    if baselines is None:
        return keras.ops.zeros_like(x[:1])
    b = _checks.finite(keras.ops.convert_to_tensor(baselines, x.dtype), "baselines")
    if tuple(b.shape) == tuple(x.shape[1:]):
        return b[None]
    if len(b.shape) == len(x.shape) and tuple(b.shape[1:]) == tuple(x.shape[1:]):
        return b
    raise ValueError(
        "`baselines` must be None (zeros), one reference shaped "
        f"{tuple(x.shape[1:])}, or references shaped (M,) + "
        f"{tuple(x.shape[1:])}. Received: baselines.shape={tuple(b.shape)}"
    )


def gradient_shap(
    model,
    x,
    target=None,
    *,
    baselines=None,
    num_samples=50,
    stdev=0.1,
    output="logits",
    batch_size=None,
    seed=None,
):
    """GradientSHAP: expected gradient times `x - baseline` over random
    baselines and random points on the path.

    For each of `num_samples` samples per example: draw a baseline `b`
    uniformly from `baselines`, a point `a ~ U(0, 1)` and Gaussian input
    noise `n ~ N(0, stdev^2)`; with `z = x + n` the sample is
    `(z - b) * df_c(b + a (z - b))/dz`. The attribution is the mean over
    samples, a Monte-Carlo estimate of Integrated Gradients averaged over
    the baseline distribution (NsLoss paper §2.1; Captum's `GradientShap`,
    which is SmoothGrad-style noise over a random-baseline IG step). Its
    sum approaches `f_c(x) - E_b f_c(b)` as samples grow (with
    `stdev=0`).

    Args:
        model, x, target, output, batch_size: as in `vanilla_gradient`.
        baselines: the baseline distribution: None for the zero image, one
            reference shaped like an example, or `[M, ...]` references
            (e.g. training images) drawn uniformly.
        num_samples: samples per example. Defaults to 50.
        stdev: standard deviation of the Gaussian noise added to `x`, in
            input units. Defaults to 0.1.
        seed: int seed of all random draws, hashed
            (`keras_interp._seeds`) so that seeds `s` and `s + 1` give
            unrelated draws on every backend; None draws one from NumPy's
            global state. For a given seed the result does not depend on
            `batch_size`.

    Returns:
        A backend tensor shaped like `x`.

    Example:

    ```python
    a = keras_interp.attribution.gradient_shap(
        model, x, baselines=x_train[:100], num_samples=50, seed=0
    )
    ```
    """
    x, gradient, targets, batch_size = prepare(model, x, target, output, batch_size)
    num_samples = _checks.positive_int(num_samples, "num_samples")
    stdev = _checks.non_negative(stdev, "stdev")
    refs = _references(baselines, x)
    gen = _sampling.seed_generator(seed)
    expand = (1,) * (len(x.shape) - 1)

    def draw(n):
        shape = (n,) + tuple(x.shape[1:])
        return {
            "noise": stdev * keras.random.normal(shape, seed=gen),
            "alpha": keras.random.uniform((n,) + expand, seed=gen),
            "ref": keras.random.randint((n,), 0, refs.shape[0], seed=gen),
        }

    def term(s, e, drawn):
        z = _sampling.rows(x, e) + drawn["noise"]
        b = keras.ops.take(refs, drawn["ref"], axis=0)
        point = b + drawn["alpha"] * (z - b)
        return (z - b) * gradient(point, _sampling.rows(targets, e))

    total = _sampling.sample_sum(term, x.shape[0], num_samples, batch_size, draw)
    return total / num_samples
