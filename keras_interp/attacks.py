"""Adversarial attacks: on predictions (FGSM, PGD) and on explanations.

FGSM and PGD (L-inf and L2) maximise the cross-entropy of the model's
logits (a final softmax is bypassed as in `keras_interp.attribution`) and
are written with `keras.ops`, so they also run inside a training step
(adversarial training). They attack the whole batch at once: pass chunks
for large sets.
`manipulate_explanation` moves a gradient explanation while keeping the
prediction (Ghorbani et al. 2019), for measuring explanation robustness.
"""

import weakref

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import _seeds
from keras_interp import backend
from keras_interp.attribution._scores import DEFAULT_BATCH_SIZE
from keras_interp.attribution._scores import gradient_function
from keras_interp.attribution._scores import num_classes
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
    if not (backend.is_symbolic(x) or backend.is_symbolic(y)):
        _checks.class_labels(y, x.shape[0], num_classes(model, x))
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
        clip: the valid input range: None (default) leaves the input
            unconstrained, a `(lo, hi)` tuple clips to it. Either way the
            result stays within `epsilon` of `x` (L-inf).

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
    projection onto the epsilon ball around `x` and clipping to `clip`
    (where the two disagree, the ball wins).
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
        clip: the valid input range: None (default) leaves the input
            unconstrained, a `(lo, hi)` tuple clips every iterate to it. No
            data range is assumed. Either way the result stays in the
            epsilon ball around `x`, also where `x` lies outside `clip`.
        seed: seed of the random start: an int, None, or a
            `keras.random.SeedGenerator` (which a training step passes so
            the draws advance from step to step). Inside a `tf.distribute`
            replica context the start is drawn for the global batch and
            each replica keeps its own examples' rows
            (`keras_interp.backend.draw_rows`), as one device would draw
            them.

    Returns:
        The adversarial batch, a backend tensor shaped like `x`.

    Example:

    ```python
    x_adv = keras_interp.attacks.pgd(model, x, y, epsilon=0.1, clip=(0, 1))
    ```
    """
    _checks.model(model)
    x = _checks.floating_input(x, model=model)
    epsilon = _checks.positive(epsilon, "epsilon")
    steps = _checks.positive_int(steps, "steps")
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    step_size = _checks.positive(step_size, "step_size")
    if norm not in NORMS:
        raise ValueError(f"`norm` must be one of {NORMS}. Received: norm={norm!r}")
    return projected_gradient_descent(
        model, x, y, epsilon=epsilon, steps=steps, step_size=step_size, norm=norm,
        random_start=random_start, clip=_checks.clip_range(clip), seed=seed,
    )


def projected_gradient_descent(model, x, y, *, epsilon, steps, step_size, norm, random_start, clip, seed):
    """`pgd`'s iteration, without its argument checks, for a training step.

    Inside a step the batch may be traced (no values to check) or eager
    (PyTorch), where a check would stop every step for a host round trip;
    `AdversarialTraining` checks its settings once, when it is built.
    """
    x = keras.ops.convert_to_tensor(x)
    gradient = _loss_gradient(model, _labels(model, x, y))

    def project(x_adv):
        delta = x_adv - x
        if norm == "linf":
            delta = keras.ops.clip(delta, -epsilon, epsilon)
        else:
            delta = delta * keras.ops.minimum(1.0, epsilon / _l2_norm(delta))
        x_adv = _clip(x + delta, clip)
        if clip is None:
            return x_adv
        # Back into the ball, so that it always wins over `clip`: for an `x`
        # inside `clip` nothing moves (clipping only pulls towards `x`), and
        # an `x` outside it (a wrong data range) moves at most epsilon
        # instead of jumping into `clip`. Iterates already in the ball are
        # kept as they are, bit for bit.
        if norm == "linf":
            return keras.ops.clip(x_adv, x - epsilon, x + epsilon)
        length = _l2_norm(x_adv - x)
        shrunk = x + (x_adv - x) * (epsilon / length)
        return keras.ops.where(length > epsilon, shrunk, x_adv)

    x_adv = x
    if random_start:
        gen = _seeds.generator(seed)
        # The dynamic shape: inside a traced training step the batch size is
        # unknown. Under tf.distribute each replica keeps its rows of a draw
        # made for the global batch, so a replica's start is one device's.
        shape = keras.ops.shape(x)
        if norm == "linf":
            start = backend.draw_rows(
                lambda s: keras.random.uniform(s, -epsilon, epsilon, seed=gen), shape
            )
        else:
            u = backend.draw_rows(lambda s: keras.random.normal(s, seed=gen), shape)
            radius = backend.draw_rows(
                lambda s: keras.random.uniform(s, 0, epsilon, seed=gen),
                (shape[0],) + (1,) * (len(x.shape) - 1),
            )
            start = radius * u / _l2_norm(u)
        x_adv = project(x + start)
    for _ in range(steps):
        g = gradient(x_adv)
        direction = keras.ops.sign(g) if norm == "linf" else g / _l2_norm(g)
        x_adv = project(x_adv + step_size * direction)
    return x_adv


MODES = ("untargeted", "targeted")


def _saliency(phi):
    """Per-pixel saliency `[B, P]`: |phi| summed over channels of `[B, H, W, C]`."""
    s = keras.ops.abs(phi)
    if len(phi.shape) == 4:
        s = keras.ops.sum(s, axis=-1)
    return keras.ops.reshape(s, (keras.ops.shape(s)[0], -1))


def _top_k_pixels(saliency, k):
    """Float mask `[B, P]`, 1.0 on the k most salient pixels of each row."""
    _, indices = keras.ops.top_k(saliency, k, sorted=False)
    # A scatter of B k ones, not a one-hot [B, k, P]: at 224x224 that would
    # be gigabytes.
    batch = keras.ops.shape(saliency)[0]
    rows = keras.ops.repeat(keras.ops.arange(batch), k)
    index = keras.ops.stack([rows, keras.ops.reshape(keras.ops.cast(indices, rows.dtype), (-1,))], axis=1)
    return keras.ops.scatter(index, keras.ops.ones((batch * k,), saliency.dtype), keras.ops.shape(saliency))


def _pixel_grid(x):
    if len(x.shape) not in (3, 4):
        raise ValueError(
            "The targeted attack highlights a region of an image: `x` must be "
            "images shaped [batch, height, width] or channels-last [batch, "
            f"height, width, channels]. Received: x.shape={tuple(x.shape)}"
        )
    return int(x.shape[1]), int(x.shape[2])


def _region_masks(region, batch, height, width, region_size, seed):
    """The targeted region of each example, a boolean NumPy array `[B, H, W]`."""
    size = _checks.positive_int(region_size, "region_size")
    if size > min(height, width):
        raise ValueError(
            "`region_size` must fit in the image, at most "
            f"min(height, width) = {min(height, width)}. Received: "
            f"region_size={region_size}"
        )
    if region is None:
        # NumPy draws the same corners on every backend for the same seed.
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, height - size + 1, size=batch)
        cols = rng.integers(0, width - size + 1, size=batch)
        masks = np.zeros((batch, height, width), bool)
        for i, (r, c) in enumerate(zip(rows, cols)):
            masks[i, r : r + size, c : c + size] = True
        return masks
    if isinstance(region, tuple) and len(region) == 2:
        row, col = region
        for name, value, extent in (("row", row, height), ("col", col, width)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(
                    "`region` as a corner must be two integers (row, col). "
                    f"Received: region={region!r}"
                )
            if value < 0 or value + size > extent:
                raise ValueError(
                    f"`region` must place a {size}x{size} square inside the "
                    f"{height}x{width} image: {name} in [0, {extent - size}]. "
                    f"Received: region={region!r}"
                )
        masks = np.zeros((batch, height, width), bool)
        masks[:, row : row + size, col : col + size] = True
        return masks
    masks = np.asarray(keras.ops.convert_to_numpy(region))
    if masks.dtype != bool:
        raise ValueError(
            "`region` must be None, a (row, col) corner, or a boolean mask "
            f"[height, width] or [batch, height, width]. Received: region with "
            f"dtype {masks.dtype}"
        )
    if masks.shape == (height, width):
        masks = np.broadcast_to(masks, (batch, height, width))
    if masks.shape != (batch, height, width):
        raise ValueError(
            f"`region` as a mask must have shape ({height}, {width}) or "
            f"({batch}, {height}, {width}). Received: region.shape={masks.shape}"
        )
    if not masks.reshape(batch, -1).any(axis=1).all():
        raise ValueError(
            "`region` must select at least one pixel of every example. "
            "Received: a mask with no True pixel"
        )
    return masks


def _manipulation_step(model, mode):
    """The compiled step of `mode` for `model`, built once and reused.

    Experiments attack the same model at several epsilons and chunks; the
    sizes are tensor arguments so none of that retraces the second-order
    graph. The model is held weakly and its variables read at each call.
    """
    per_model = _MANIPULATION_STEPS.setdefault(model, {})
    if mode not in per_model:
        per_model[mode] = _compile_step(weakref.ref(model), 1.0 if mode == "targeted" else -1.0)
    return per_model[mode]


def _compile_step(model_ref, sign):
    """`step(x_adv, kept, x, classes, mask, epsilon, step_size, lo, hi)`.

    One signed step on `sign * share` of the saliency inside `mask`,
    returning the new iterate and `kept`, the last iterate of each example
    that the model still assigns to its clean class.
    """

    def step(x_adv, kept, x, classes, mask, epsilon, step_size, lo, hi):
        logits = score_model(model_ref(), "logits")

        def class_logit(z):
            return keras.ops.take_along_axis(logits(z), classes[:, None], axis=1)

        def objective(z):
            # The explanation itself must stay differentiable: the attack
            # follows d share / dx, which goes through the Hessian of f.
            s = _saliency(backend.grad(class_logit, create_graph=True)(z))
            share = keras.ops.sum(s * mask, axis=-1) / (keras.ops.sum(s, axis=-1) + 1e-12)
            return sign * share

        g = backend.grad(objective)(x_adv)
        # The data range first and the ball last, so the ball always wins: an
        # `x` outside `[lo, hi]` (a wrong data range) moves at most epsilon.
        x_adv = keras.ops.clip(x_adv + step_size * keras.ops.sign(g), lo, hi)
        x_adv = keras.ops.clip(x_adv, x - epsilon, x + epsilon)
        predicted = keras.ops.cast(keras.ops.argmax(logits(x_adv), axis=-1), "int32")
        same = keras.ops.reshape(predicted == classes, (-1,) + (1,) * (len(x.shape) - 1))
        return x_adv, keras.ops.where(same, x_adv, kept)

    return backend.compiled(step, getattr(model_ref(), "variables", ()))


_MANIPULATION_STEPS = weakref.WeakKeyDictionary()


def manipulate_explanation(
    model,
    x,
    *,
    mode="untargeted",
    epsilon,
    steps=50,
    step_size=None,
    top_k=50,
    region=None,
    region_size=5,
    clip=None,
    seed=None,
    batch_size=None,
):
    """Manipulates gradient explanations, keeping the prediction.

    The attack of Ghorbani et al. 2019 as the ATEX paper runs it (paper 2,
    §3.1 Eq. 1 and §5.2). The explanation is the vanilla gradient
    `phi(z) = d f_c(z) / dz` of the logit of the class `c` the model
    predicts for the clean `x` (a final softmax is bypassed), and the
    saliency of a pixel is `|phi|` summed over the channels of a
    channels-last image `[B, H, W, C]` (every element is a pixel for other
    shapes). With `T` a set of pixels, the attack moves the share
    `sum_{t in T} s_t / sum_t s_t` of the saliency:

    - `"untargeted"`: lowers the share of `T` = the `top_k` most salient
      pixels of the clean `x` (50 in the paper; ties broken arbitrarily);
    - `"targeted"`: raises the share of `T` = a region (a random 5x5 square
      per example in the paper).

    Each of `steps` iterations takes a signed-gradient step of size
    `step_size` on the share, clips to `clip` and projects onto
    `||x~ - x||_inf <= epsilon` (where the two disagree, the ball wins).
    The gradient of the share goes through the explanation, i.e. through
    second derivatives of the model: on a ReLU network those
    are zero and `x` comes back unchanged. Attack a smooth model, e.g. one
    whose ReLUs are replaced by softplus (`keras_interp.models.with_softplus`,
    the B-smoothing of the paper), as both papers do.

    The prediction constraint of Eq. 1: as in Ghorbani et al.'s code, the
    iteration goes on from every iterate, also from one whose label changed
    (it may cross back; going back to the last good iterate would only
    repeat the same deterministic step), and each example returns its last
    iterate that the model still assigns to the clean class `c`, or `x`
    itself if there is none. Examples do not interact, so a whole chunk is
    attacked at once.

    Args:
        model: a Keras classifier returning logits (or ending in softmax),
            with smooth activations.
        x: float array `[batch, ...]`: images `[B, H, W]` or channels-last
            `[B, H, W, C]`, or flat features (untargeted only).
        mode: `"untargeted"` (default) or `"targeted"`.
        epsilon: L-inf radius of the perturbation, > 0.
        steps: iterations. Defaults to 50.
        step_size: size of one signed step. Defaults to
            `2.5 * epsilon / steps` as in `pgd`: many small steps (Ghorbani
            et al. take steps of `epsilon / 8`), which can cross the ball
            2.5 times and then slide along its faces. Larger steps or more
            of them changed the result little in our runs on MNIST.
        top_k: the number of clean top pixels whose share the untargeted
            attack lowers, in `[1, pixels]`. Defaults to 50.
        region: the targeted region, for all examples: a boolean mask
            `[H, W]` (or one per example, `[B, H, W]`), or the `(row, col)`
            top-left corner of a `region_size` square. Defaults to None: a
            random `region_size` square per example, drawn from `seed`.
        region_size: side of the square region. Defaults to 5.
        clip: the valid input range: None (default) leaves the input
            unconstrained, a `(lo, hi)` tuple clips every iterate to it
            (pass `(0.0, 1.0)` for images in [0, 1], `(0, 255)` for raw
            pixels). No data range is assumed. Either way the result stays
            within `epsilon` of `x`, also where `x` lies outside `clip`.
        seed: int seed of the random regions (a NumPy generator, so the
            regions are the same on every backend), or None.
        batch_size: examples attacked together; a second-order step holds
            a few times the activations of a forward pass. Defaults to 64.

    Returns:
        The manipulated batch, a backend tensor shaped like `x`.

    Example:

    ```python
    smooth = keras_interp.models.with_softplus(model, beta=10.0)
    x_adv = keras_interp.attacks.manipulate_explanation(
        smooth, x, mode="targeted", epsilon=0.04, seed=0)

    def saliency(z):  # the predicted class is the same for x and x_adv
        phi = keras_interp.attribution.vanilla_gradient(smooth, z)
        return keras.ops.sum(keras.ops.abs(phi), axis=-1)

    keras_interp.metrics.rank_correlation(saliency(x_adv), saliency(x))
    ```
    """
    _checks.model(model)
    x = _checks.floating_input(x, model=model)
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    epsilon = _checks.positive(epsilon, "epsilon")
    steps = _checks.positive_int(steps, "steps")
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    step_size = _checks.positive(step_size, "step_size")
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    batch_size = _checks.positive_int(batch_size, "batch_size")
    clip = _checks.clip_range(clip)
    n = int(x.shape[0])
    pixels = int(np.prod(x.shape[1:3] if len(x.shape) == 4 else x.shape[1:]))
    if mode == "targeted":
        height, width = _pixel_grid(x)
        masks = _region_masks(region, n, height, width, region_size, seed)
        masks = masks.reshape(n, pixels).astype(keras.config.floatx())
    else:
        top_k = _checks.positive_int(top_k, "top_k")
        if top_k > pixels:
            raise ValueError(
                f"`top_k` must be at most the number of pixels of one example "
                f"({pixels}). Received: top_k={top_k}"
            )
    logits = score_model(model, "logits")
    step = _manipulation_step(model, mode)
    sizes = [
        keras.ops.convert_to_tensor(v, keras.config.floatx())
        for v in (epsilon, step_size)
        + ((-np.inf, np.inf) if clip is None else (float(clip[0]), float(clip[1])))
    ]
    out = []
    for start in range(0, n, batch_size):
        rows = x[start : start + batch_size]
        classes = keras.ops.cast(keras.ops.argmax(logits(rows), axis=-1), "int32")
        if mode == "targeted":
            mask = keras.ops.convert_to_tensor(masks[start : start + batch_size])
        else:
            phi = gradient_function(model, "logits")(rows, classes)
            mask = _top_k_pixels(_saliency(phi), top_k)
        x_adv = kept = rows
        for _ in range(steps):
            x_adv, kept = step(x_adv, kept, rows, classes, mask, *sizes)
        out.append(kept)
    return out[0] if len(out) == 1 else keras.ops.concatenate(out, axis=0)
