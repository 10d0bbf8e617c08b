"""The machinery of `keras_interp.models.with_softplus` (B-smoothing): smooth
stand-ins for the ReLU family, and the rewrite of a model's graph, nested
models included, that swaps them in with the weights kept."""

import dataclasses

import keras

from keras_interp import _checks
from keras_interp import layers


def _softplus(z, beta):
    return keras.ops.softplus(z * beta) / beta


@keras.saving.register_keras_serializable(package="keras_interp")
class SmoothReLU(keras.layers.Layer):
    """A smooth stand-in, with sharpness `beta`, for `keras.layers.ReLU`.

    `keras.layers.ReLU(max_value=m, negative_slope=a, threshold=t)` is `x`
    above `t` (capped at `m`) and `a * (x - t)` below. With `sp(z) =
    softplus(beta * z) / beta` and `s(z) = sigmoid(beta * z)`, this layer
    computes `sp(x - t) + t * s(x - t) - sp(x - m) + a * (x - t - sp(x -
    t))`, or `m * s(x - t)` plus the same last term when `t > m`: each
    kink becomes a softplus and the jump from 0 to `t` at `x = t` of a
    thresholded ReLU a sigmoid step; `keras_interp.models.with_softplus`
    lists the cases.

    Args:
        beta: sharpness, > 0.
        max_value: cap, >= 0, or None (no cap). Defaults to None.
        negative_slope: slope below the threshold, >= 0. Defaults to 0.
        threshold: where the ReLU switches on, >= 0. Defaults to 0.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Example:

    ```python
    relu6 = keras_interp.models.SmoothReLU(beta=10.0, max_value=6.0)
    relu6(np.array([-1.0, 3.0, 9.0]))  # ~[4.5e-6, 3.0, 6.0]
    ```
    """

    def __init__(self, beta=1.0, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = _checks.positive(beta, "beta")
        if max_value is not None:
            max_value = _checks.non_negative(max_value, "max_value")
        self.max_value = max_value
        self.negative_slope = _checks.non_negative(negative_slope, "negative_slope")
        self.threshold = _checks.non_negative(threshold, "threshold")
        self.supports_masking = True

    def call(self, inputs):
        beta, m, a, t = self.beta, self.max_value, self.negative_slope, self.threshold
        shifted = _softplus(inputs - t, beta)
        if m is not None and t > m:
            outputs = m * keras.ops.sigmoid((inputs - t) * beta)
        else:
            outputs = shifted
            if t:
                outputs = outputs + t * keras.ops.sigmoid((inputs - t) * beta)
            if m is not None:
                outputs = outputs - _softplus(inputs - m, beta)
        if a:
            outputs = outputs + a * (inputs - t - shifted)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(beta=self.beta, **{k: getattr(self, k) for k in _RELU_ARGS})
        return config


@keras.saving.register_keras_serializable(package="keras_interp")
class SmoothPReLU(keras.layers.PReLU):
    """`keras.layers.PReLU` with the kink smoothed: `alpha * x + (1 - alpha)
    * softplus(beta * x) / beta`, within `|1 - alpha| log(2) / beta` of
    the PReLU with the same learned `alpha`.

    Args:
        beta: sharpness, > 0.
        **kwargs: the arguments of `keras.layers.PReLU`.

    Example:

    ```python
    layer = keras_interp.models.SmoothPReLU(beta=10.0, shared_axes=[1, 2])
    ```
    """

    def __init__(self, beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = _checks.positive(beta, "beta")

    def call(self, inputs):
        return self.alpha * inputs + (1 - self.alpha) * _softplus(inputs, self.beta)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


@dataclasses.dataclass(frozen=True)
class SoftplusReport:
    """What `with_softplus(..., return_report=True)` changed and kept, by
    layer path (`"outer/inner/layer"` in nested models); `print` it.

    Attributes:
        rewritten: dict, path -> `"original -> stand-in"`, e.g.
            `"ReLU(max_value=6.0) -> SmoothReLU(beta=10.0, max_value=6.0)"`.
        kept: dict, path -> the nonlinearity left as it was, e.g. `"silu"`.

    Example:

    ```python
    smooth, report = keras_interp.models.with_softplus(model, 10.0, return_report=True)
    print(report)  # "rewritten (35):", one line per layer, then "kept (0):"
    ```
    """

    rewritten: dict
    kept: dict

    def __str__(self):
        lines = [f"rewritten ({len(self.rewritten)}):"]
        lines += [f"  {path}: {what}" for path, what in self.rewritten.items()]
        lines.append(f"kept ({len(self.kept)}):")
        lines += [f"  {path}: {what}" for path, what in self.kept.items()]
        return "\n".join(lines)


# Layers that apply their activation last, to the whole output, so that
# "activation=linear, then the stand-in" computes the same function. A
# recurrent layer's activation acts inside the recurrence instead.
_OUTPUT_ACTIVATION_LAYERS = tuple(
    getattr(keras.layers, name)
    for name in ("Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
                 "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
                 "DepthwiseConv1D", "DepthwiseConv2D")
)
# ReLU-family activation functions -> the keras.layers.ReLU arguments that
# compute them (with their default arguments, the only ones a layer config
# can name).
_FAMILY_FUNCTIONS = (
    (keras.activations.relu, {}),
    (keras.ops.relu, {}),
    (keras.activations.relu6, {"max_value": 6.0}),
    (keras.ops.relu6, {"max_value": 6.0}),
    (keras.activations.leaky_relu, {"negative_slope": 0.2}),
    (keras.ops.leaky_relu, {"negative_slope": 0.2}),
)
# Graph nodes of `keras.ops.relu(x)` and friends in a functional model are
# Operations, not layers; their classes are not public, so go by name.
_FAMILY_OPERATIONS = {"Relu": {}, "Relu6": {"max_value": 6.0}, "LeakyRelu": None, "ReLU": None}
_RELU_ARGS = ("max_value", "negative_slope", "threshold")
# Kept activations whose second derivative is zero almost everywhere, so
# smoothing does not reach them: the report says so.
_PIECEWISE_LINEAR = {
    "hard_sigmoid", "hard_tanh", "hard_shrink", "soft_shrink", "sparse_sigmoid", "threshold",
}
_MAX_POOLING = (
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
)
_ACTIVATION_NAMES = {
    name.replace("_", ""): name for name in dir(keras.activations) if not name.startswith("_")
}


def _relu_args(layer):
    """The ReLU arguments `layer` computes, or None outside the family."""
    if isinstance(layer, keras.layers.ReLU):
        return {k: layer.get_config()[k] for k in _RELU_ARGS}
    if isinstance(layer, keras.layers.LeakyReLU):
        return {"negative_slope": layer.get_config()["negative_slope"]}
    if not isinstance(layer, keras.layers.Layer):
        args = _FAMILY_OPERATIONS.get(type(layer).__name__, False)
        if args is None:  # its arguments are in its config
            config = layer.get_config()
            return {k: config[k] for k in _RELU_ARGS if k in config}
        return None if args is False else args
    function = getattr(layer, "activation", None)
    for f, args in _FAMILY_FUNCTIONS:
        if function is f:
            return args
    return None


def _stand_in(args, beta, **kwargs):
    args = {k: v for k, v in args.items() if v not in (None, 0, 0.0)}
    if not args:
        return layers.Softplus(beta, **kwargs)
    return SmoothReLU(beta, **args, **kwargs)


def _describe(layer, args=None):
    """`"Name(arg=value, ...)"` with the arguments that differ from 0/None."""
    if args is None:
        args = layer.get_config()
    shown = ("beta",) + _RELU_ARGS
    text = ", ".join(f"{k}={v}" for k, v in args.items() if k in shown and v not in (None, 0))
    return f"{type(layer).__name__}({text})"


def _original(layer):
    function = getattr(layer, "activation", None)
    if function is None:
        return _describe(layer, _relu_args(layer) or {})
    if isinstance(layer, keras.layers.Activation):
        return f"Activation({function.__name__})"
    return f"activation={function.__name__}"


def _kept_nonlinearity(layer):
    if isinstance(layer, (layers.Softplus, SmoothReLU, SmoothPReLU)):
        return _describe(layer)  # smoothed before
    if isinstance(layer, _MAX_POOLING):
        name = type(layer).__name__
    elif isinstance(layer, (keras.layers.ELU, keras.layers.Softmax)):
        return type(layer).__name__
    elif isinstance(layer, keras.layers.Layer):
        function = getattr(layer, "activation", None)
        name = getattr(function, "__name__", repr(function))
        if function is None or name == "linear":
            return None
    else:
        name = _ACTIVATION_NAMES.get(type(layer).__name__.lower())
        if name is None:
            return None
    if name in _PIECEWISE_LINEAR or isinstance(layer, _MAX_POOLING):
        return f"{name} (piecewise linear: its second derivative stays zero)"
    return name


def rewrite(model, beta):
    """`keras_interp.models.with_softplus`'s rewrite, `beta` checked:
    returns `(new_model, SoftplusReport)`."""
    report = SoftplusReport(rewritten={}, kept={})
    return _rewrite(model, beta, report, prefix=""), report


def _rewrite(model, beta, report, prefix):
    if not isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be a Sequential or functional `keras.Model`. "
            f"Received: model={model!r}"
        )
    if getattr(model, "inputs", None) is None:
        # Subclassed models have no `inputs`; an unbuilt Sequential raises
        # AttributeError on reading them, which getattr also turns into None.
        raise ValueError(
            "`with_softplus` needs a Sequential or functional model with "
            "symbolic inputs, whose layers it can rewire; a subclassed "
            "model (or a Sequential model without an `Input`, not built "
            "yet) has none. Build the model from `keras.Input`. "
            f"Received: model={model.name!r} of type "
            f"{type(model).__name__}"
        )
    copied = []  # (original layer, its copy), to copy weights into
    followers = {}  # id(copy) -> the stand-in that must follow it

    def clone(layer):
        if isinstance(layer, keras.Model):
            # clone_model(recursive=True) would not pass call_function into
            # a nested Sequential model, so recurse here; this copies the
            # nested model's weights too.
            return _rewrite(layer, beta, report, f"{prefix}{layer.name}/")
        new = _clone_layer(layer, beta, followers)
        if new.__class__ is not layer.__class__ or id(new) in followers:
            stand_in = followers.get(id(new), new)
            report.rewritten[prefix + layer.name] = f"{_original(layer)} -> {_describe(stand_in)}"
        else:
            kept = _kept_nonlinearity(layer)
            if kept is not None:
                report.kept[prefix + layer.name] = kept
        if isinstance(layer, keras.layers.Layer):
            copied.append((layer, new))
        return new

    if isinstance(model, keras.Sequential):
        new_model = _rebuild_sequential(model, clone, followers)
    else:

        def call(layer, *args, **kwargs):
            outputs = layer(*args, **kwargs)
            follower = followers.get(id(layer))
            return outputs if follower is None else follower(outputs)

        new_model = keras.models.clone_model(model, clone_function=clone, call_function=call)
        if not model.trainable:
            new_model.trainable = False
    for layer, new in copied:
        new.set_weights(layer.get_weights())
    return new_model


def _clone_layer(layer, beta, followers):
    """A fresh copy of `layer` (a layer or a graph operation), or its
    stand-in; an activation stand-in to call after it goes in `followers`."""
    dtype = getattr(layer, "dtype_policy", None)
    if isinstance(layer, keras.layers.PReLU) and not isinstance(layer, SmoothPReLU):
        return SmoothPReLU.from_config({**layer.get_config(), "beta": beta})
    args = _relu_args(layer)
    if args is None:
        return layer.__class__.from_config(layer.get_config())
    if (
        not isinstance(layer, keras.layers.Layer)  # a graph operation
        or getattr(layer, "activation", None) is None  # ReLU, LeakyReLU
        or isinstance(layer, keras.layers.Activation)
    ):
        return _stand_in(args, beta, name=layer.name, dtype=dtype)
    if not isinstance(layer, _OUTPUT_ACTIVATION_LAYERS):
        raise ValueError(
            "`with_softplus` can replace a ReLU-family `activation` only in "
            "layers that apply it last to their output (Dense, EinsumDense, "
            f"convolutions); in layer '{layer.name}' it may act inside the "
            "layer. Rebuild that layer with another activation first. "
            f"Received: layer={layer.name!r} of type {type(layer).__name__}"
        )
    new = layer.__class__.from_config({**layer.get_config(), "activation": "linear"})
    followers[id(new)] = _stand_in(args, beta, name=f"{layer.name}_softplus", dtype=dtype)
    return new


def _rebuild_sequential(model, clone, followers):
    # clone_model cannot insert layers into a Sequential model (no
    # call_function there), so rebuild the layer list.
    new_layers = []
    for layer in model.layers:
        new = clone(layer)
        new_layers.append(new)
        if id(new) in followers:
            new_layers.append(followers[id(new)])
    (spec,) = model.inputs
    inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name=spec.name)
    new_model = keras.Sequential([inputs] + new_layers, name=model.name, trainable=model.trainable)
    if model.compiled:
        new_model.compile_from_config(model.get_compile_config())
    return new_model
