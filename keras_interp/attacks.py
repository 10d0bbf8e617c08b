"""Adversarial attacks on predictions: FGSM and PGD (L-inf and L2).

Both maximise the cross-entropy of the model's logits (a final softmax is
bypassed as in `keras_interp.attribution`) and are written with
`keras.ops`, so they also run inside a training step (adversarial
training). They attack the whole batch at once: pass chunks for large sets.
"""

import keras

from keras_interp import _checks
from keras_interp import backend
from keras_interp.attribution._scores import score_model

NORMS = ("linf", "l2")


def _loss_gradient(model, y):
    logits = score_model(model, "logits")
    one_hot = len(y.shape) == 2

    def loss(z):
        if one_hot:
            return keras.losses.categorical_crossentropy(y, logits(z), from_logits=True)
        return keras.losses.sparse_categorical_crossentropy(y, logits(z), from_logits=True)

    return backend.grad(loss)


def _labels(model, x, y):
    if y is None:
        # The model's own predictions: no label leaking (Kurakin et al. 2017).
        return keras.ops.argmax(score_model(model, "logits")(x), axis=-1)
    y = keras.ops.convert_to_tensor(y)
    if len(y.shape) == 2 and y.shape[-1] == 1:
        y = keras.ops.squeeze(y, axis=-1)
    # One-hot (or soft) labels [B, C] stay floats; class indices become ints.
    return keras.ops.cast(y, x.dtype) if len(y.shape) == 2 else keras.ops.cast(y, "int32")


def _clip(x, clip):
    return x if clip is None else keras.ops.clip(x, clip[0], clip[1])


def _l2_norm(v):
    axes = tuple(range(1, len(v.shape)))
    return keras.ops.sqrt(keras.ops.sum(v**2, axis=axes, keepdims=True) + 1e-12)


def fgsm(model, x, y=None, *, epsilon, clip=None):
    """Fast gradient sign method (Goodfellow et al. 2015).

    `x_adv = clip(x + epsilon * sign(d CE(f(x), y) / dx))`: one L-inf `pgd`
    step of size epsilon from `x`.

    Args:
        model: a Keras classifier returning logits (or ending in softmax).
        x: float array `[batch, ...]`.
        y: int labels `[batch]` or one-hot `[batch, classes]`; None uses
            the model's predictions.
        epsilon: L-inf size of the step, > 0.
        clip: `(lo, hi)` data range to clip to, or None for no clipping.

    Returns:
        The adversarial batch, a backend tensor shaped like `x`.

    Example:

    ```python
    x_adv = keras_interp.attacks.fgsm(model, x, y, epsilon=0.1, clip=(0, 1))
    ```
    """
    return pgd(
        model, x, y, epsilon=epsilon, steps=1, step_size=epsilon, random_start=False, clip=clip
    )


def pgd(
    model,
    x,
    y=None,
    *,
    epsilon,
    steps=7,
    step_size=None,
    norm="linf",
    random_start=True,
    clip=None,
    seed=None,
):
    """Projected gradient descent (Madry et al. 2018), L-inf or L2.

    Starting from `x` (or a random point of the epsilon ball), `steps`
    ascent steps on the cross-entropy: the gradient's sign (L-inf) or its
    L2-normalised direction (L2), times `step_size`, each followed by
    projection onto the epsilon ball around `x` and clipping to `clip`.
    The L2 random start is a random direction at a radius drawn
    uniformly in [0, epsilon].

    Args:
        model: a Keras classifier returning logits (or ending in softmax).
        x: float array `[batch, ...]`.
        y: int labels `[batch]` or one-hot labels `[batch, classes]`; None
            uses the model's predictions.
        epsilon: radius of the ball, > 0.
        steps: ascent steps. Defaults to 7 (NsLoss paper, Table 1).
        step_size: size of one step. Defaults to `2.5 * epsilon / steps`.
        norm: `"linf"` (default) or `"l2"`.
        random_start: start from a random point of the ball. Defaults to
            True.
        clip: `(lo, hi)` data range, or None for no clipping.
        seed: seed of the random start: an int, None, or a
            `keras.random.SeedGenerator` (which a training step passes so
            the draws advance from step to step).

    Returns:
        The adversarial batch, a backend tensor shaped like `x`.

    Example:

    ```python
    x_adv = keras_interp.attacks.pgd(model, x, y, epsilon=0.1, clip=(0, 1))
    ```
    """
    x = _checks.floating_input(x)
    epsilon = _checks.positive(epsilon, "epsilon")
    steps = _checks.positive_int(steps, "steps")
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    step_size = _checks.positive(step_size, "step_size")
    if norm not in NORMS:
        raise ValueError(f"`norm` must be one of {NORMS}. Received: norm={norm!r}")
    gradient = _loss_gradient(model, _labels(model, x, y))

    def project(x_adv):
        delta = x_adv - x
        if norm == "linf":
            delta = keras.ops.clip(delta, -epsilon, epsilon)
        else:
            delta = delta * keras.ops.minimum(1.0, epsilon / _l2_norm(delta))
        return _clip(x + delta, clip)

    x_adv = x
    if random_start:
        gen = seed if isinstance(seed, keras.random.SeedGenerator) else keras.random.SeedGenerator(seed)
        # The dynamic shape: inside a traced training step the batch size is unknown.
        shape = keras.ops.shape(x)
        if norm == "linf":
            start = keras.random.uniform(shape, -epsilon, epsilon, seed=gen)
        else:
            u = keras.random.normal(shape, seed=gen)
            radius = keras.random.uniform((shape[0],) + (1,) * (len(x.shape) - 1), 0, epsilon, seed=gen)
            start = radius * u / _l2_norm(u)
        x_adv = project(x + start)
    for _ in range(steps):
        g = gradient(x_adv)
        direction = keras.ops.sign(g) if norm == "linf" else g / _l2_norm(g)
        x_adv = project(x_adv + step_size * direction)
    return x_adv
