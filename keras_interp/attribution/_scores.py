"""The gradient contract every attribution method is built on.

A method asks for one thing: the gradient of each example's target score
with respect to that example. This file decides what "target score" means
(which class, logits or probabilities) and asks `backend.grad` for it.
"""

import contextlib
import weakref

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import backend

OUTPUTS = ("logits", "probabilities")


def score_model(model, output="logits"):
    """Returns `fn(x) -> [B, C]` giving the scores attributions explain.

    With `output="logits"` a final softmax is skipped (see
    `_without_final_softmax`); with `"probabilities"` the model's output is
    used as it is.
    """
    if output not in OUTPUTS:
        raise ValueError(
            f"`output` must be one of {OUTPUTS}. Received: output={output!r}"
        )
    outputs = getattr(model, "outputs", None)
    if outputs is not None and len(outputs) > 1:
        raise ValueError(
            "Attribution explains a model with a single output tensor; pass "
            "a sub-model for the head you want explained, e.g. "
            "`keras.Model(model.inputs, model.outputs[0])`. Received: a model "
            f"with {len(outputs)} outputs"
        )

    def scores(x):
        if output == "logits":
            with _without_final_softmax(model):
                out = model(x, training=False)
        else:
            out = model(x, training=False)
        if isinstance(out, (list, tuple, dict)):
            raise ValueError(
                "Attribution explains a model with a single output tensor. "
                f"Received: a model returning a {type(out).__name__}"
            )
        if len(out.shape) != 2:
            raise ValueError(
                "Attribution expects the model to return scores shaped "
                f"[batch, classes]. Received: output shape {tuple(out.shape)}"
            )
        return out

    return scores


def ends_in_softmax(model):
    """Whether `model`'s last layer is a `Softmax` or has a softmax activation."""
    layers = getattr(model, "layers", None)
    last = layers[-1] if layers else None
    return isinstance(last, keras.layers.Softmax) or (
        last is not None and getattr(last, "activation", None) is keras.activations.softmax
    )


@contextlib.contextmanager
def _without_final_softmax(model):
    """Makes `model` return its pre-softmax values for the duration.

    A final `Softmax` layer is bypassed, and a final layer with
    `activation="softmax"` (e.g. `Dense(10, activation="softmax")` or
    `Activation("softmax")`) runs with a linear activation, on the same
    weights. Models that do not end in a softmax are untouched.
    """
    layers = getattr(model, "layers", None)
    last = layers[-1] if layers else None
    if isinstance(last, keras.layers.Softmax):
        last.call = lambda inputs, mask=None: inputs
        try:
            yield
        finally:
            del last.call
    elif last is not None and getattr(last, "activation", None) is keras.activations.softmax:
        last.activation = keras.activations.linear
        try:
            yield
        finally:
            last.activation = keras.activations.softmax
    else:
        yield


def resolve_targets(scores, x, target, batch_size):
    """Returns one int32 class index per example of `x`.

    `target` None picks the predicted class; an int applies to every
    example; a sequence gives one class per example.
    """
    n = x.shape[0]
    if target is None:
        preds = [
            keras.ops.argmax(scores(x[i : i + batch_size]), axis=-1)
            for i in range(0, n, batch_size)
        ]
        return keras.ops.cast(keras.ops.concatenate(preds, axis=0), "int32")
    targets = np.asarray(keras.ops.convert_to_numpy(target))
    if targets.ndim == 0:
        targets = np.full((n,), targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            "`target` must be None, an int, or one int per example "
            f"(shape ({n},)). Received: target with shape {targets.shape} "
            f"and dtype {targets.dtype}"
        )
    targets = _checks.class_labels(targets, n, scores(x[:1]).shape[-1], "target")
    return keras.ops.convert_to_tensor(targets, dtype="int32")


def num_classes(model, x):
    """The number of scores `model` gives per example (one forward row if unknown)."""
    outputs = getattr(model, "outputs", None)
    if outputs and len(outputs) == 1 and outputs[0].shape[-1] is not None:
        return int(outputs[0].shape[-1])
    return int(score_model(model, "logits")(x[:1]).shape[-1])


def gradient_function(model, output="logits"):
    """Returns `gradient(x, targets)`: each row's target-score gradient.

    Compiled once per model and output (see `backend.compiled`) and reused
    by every later call, so metrics that explain many batches pay for
    tracing once. The cached function reads the model through a weak
    reference and its variables at each call, so it follows training.
    """
    per_model = _GRADIENTS.setdefault(model, {})
    if output not in per_model:
        per_model[output] = _compile_gradient(weakref.ref(model), output)
    return per_model[output]


def _compile_gradient(model_ref, output):
    def gradient(x, targets):
        scores = score_model(model_ref(), output)

        def picked(rows):
            return keras.ops.take_along_axis(scores(rows), targets[:, None], axis=1)

        return backend.grad(picked)(x)

    return backend.compiled(gradient, getattr(model_ref(), "variables", ()))


_GRADIENTS = weakref.WeakKeyDictionary()


def predicted_classes(model, x, batch_size=256):
    """Each example's arg-max score, as an int NumPy array, `batch_size` rows per call.

    Through one compiled function per model (traced once, see
    `backend.compiled`) rather than `model.predict`, whose per-model
    function traces again for a last partial batch.
    """
    if model not in _LOGITS:
        model_ref = weakref.ref(model)
        _LOGITS[model] = backend.compiled(
            lambda rows: keras.ops.argmax(score_model(model_ref(), "logits")(rows), axis=-1),
            getattr(model, "variables", ()),
        )
    x = keras.ops.convert_to_tensor(x, keras.config.floatx())
    parts = [
        np.asarray(keras.ops.convert_to_numpy(_LOGITS[model](x[i : i + batch_size])))
        for i in range(0, x.shape[0], batch_size)
    ]
    return np.concatenate(parts).astype("int64")


_LOGITS = weakref.WeakKeyDictionary()


DEFAULT_BATCH_SIZE = 64


def prepare(model, x, target, output, batch_size):
    """The checks and set-up every method starts with.

    Returns `(x, gradient, targets, batch_size)`: `x` as a float tensor,
    the compiled `gradient(rows, targets)` of `gradient_function`, one class
    index per example and the chunk size.
    """
    _checks.model(model)
    x = _checks.floating_input(x, model=model)
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE
    batch_size = _checks.positive_int(batch_size, "batch_size")
    scores = score_model(model, output)
    targets = resolve_targets(scores, x, target, batch_size)
    return x, gradient_function(model, output), targets, batch_size
