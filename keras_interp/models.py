"""Model architectures used in the papers' experiments."""

import keras

from keras_interp import _checks
from keras_interp import layers

ACTIVATIONS = ("relu", "softplus")


def small_cnn(input_shape=(28, 28, 1), num_classes=10, activation="relu"):
    """The ATEX paper's MNIST / Fashion-MNIST classifier (paper 2, §5.1).

    Two 3x3 convolutions (32 and 64 filters, each followed by 2x2 max
    pooling) and two dense layers (128 units, then one per class). The paper
    gives only "two convolutional layers and two FC layers"; the widths are
    the usual Keras MNIST example's. The model returns logits: compile it
    with `SparseCategoricalCrossentropy(from_logits=True)`.

    Args:
        input_shape: shape of one image, channels last. Defaults to
            `(28, 28, 1)`.
        num_classes: number of classes. Defaults to 10.
        activation: `"relu"` (default) or `"softplus"`, the smooth network
            that explanation attacks need (paper 2, §5.2).

    Returns:
        A built `keras.Sequential` model returning logits.

    Example:

    ```python
    model = keras_interp.models.small_cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ```
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"`activation` must be one of {ACTIVATIONS}. "
            f"Received: activation={activation!r}"
        )
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(32, 3, activation=activation, name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(64, 3, activation=activation, name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation=activation, name="fc1"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name="small_cnn",
    )


# Layers whose activation is applied last, to the whole output, so that
# "activation=linear, then Softplus" computes the same as the activation
# swapped in place. A recurrent layer's activation acts inside the recurrence
# and cannot be moved out this way.
_OUTPUT_ACTIVATION_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)
_RELU_FUNCTIONS = (keras.activations.relu, keras.ops.relu)
# Other members of the ReLU family: piecewise linear, so their second
# derivative is zero too, but softplus(beta) does not approximate them.
_OTHER_RELU_FUNCTIONS = (
    keras.activations.relu6,
    keras.activations.leaky_relu,
    keras.ops.relu6,
    keras.ops.leaky_relu,
)


def with_softplus(model, beta):
    """Returns a copy of `model` with every ReLU replaced by a softplus.

    B-smoothing (Dombrowski et al., 2019; the ATEX paper's baseline, paper
    2, §5.2): `relu(x)` becomes `softplus(beta * x) / beta`
    (`keras_interp.layers.Softplus`), which differs from it by at most
    `log(2) / beta` but has a non-zero second derivative. On a ReLU network
    the gradient of an explanation with respect to the input is zero, so
    attacks on explanations (`attacks.manipulate_explanation`) see nothing
    to follow there and need this.

    Replaced are: the activation of `Dense`, `EinsumDense` and convolution
    layers built with `activation="relu"` (the copy gets a linear
    activation, followed by a `Softplus` layer named
    `f"{layer.name}_softplus"`), and `keras.layers.ReLU()` (default
    arguments) and `keras.layers.Activation("relu")` layers (each becomes a
    `Softplus` layer of the same name). Nested Sequential and functional
    models are converted too. All weights are copied, so the copy is the
    trained network with smoothed activations; `model` itself is left
    untouched. A model without ReLUs comes back as a plain copy. If `model`
    was compiled, the copy is compiled with the same configuration.

    ReLUs that softplus would not approximate are rejected rather than
    changed: `ReLU` layers with `max_value`, `negative_slope` or
    `threshold`, `LeakyReLU`/`PReLU` layers, `relu6`/`leaky_relu`
    activations, and a ReLU activation inside any other layer (e.g. a
    recurrent one). ReLUs called inside custom layers cannot be seen and
    are left as they are.

    Args:
        model: a Sequential or functional `keras.Model` with symbolic inputs
            (a subclassed model cannot be rewired layer by layer).
        beta: sharpness of the softplus, > 0. Larger values stay closer to
            the ReLU model's outputs.

    Returns:
        A new model of the same kind (Sequential or functional), with the
        same weights and ReLUs replaced by `keras_interp.layers.Softplus`.

    Example:

    ```python
    model = keras_interp.models.small_cnn()
    model.fit(x_train, y_train)
    smooth = keras_interp.models.with_softplus(model, beta=10.0)
    smooth.predict(x_test)  # close to model.predict(x_test)
    ```
    """
    beta = _checks.positive(beta, "beta")
    return _with_softplus(model, beta)


def _with_softplus(model, beta):
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
    followers = {}  # id(copy) -> the Softplus that must follow it

    def clone(layer):
        if isinstance(layer, keras.Model):
            # Converted (weights included) by the recursive call.
            return _with_softplus(layer, beta)
        kind = _relu_kind(layer)
        if kind == "layer":
            return layers.Softplus(beta, name=layer.name, dtype=layer.dtype_policy)
        config = layer.get_config()
        if kind == "activation":
            config["activation"] = "linear"
        new = layer.__class__.from_config(config)
        if kind == "activation":
            followers[id(new)] = layers.Softplus(
                beta, name=f"{layer.name}_softplus", dtype=layer.dtype_policy
            )
        copied.append((layer, new))
        return new

    if isinstance(model, keras.Sequential):
        new_model = _clone_sequential(model, clone, followers)
    else:

        def call(layer, *args, **kwargs):
            outputs = layer(*args, **kwargs)
            follower = followers.get(id(layer))
            return outputs if follower is None else follower(outputs)

        new_model = keras.models.clone_model(
            model, clone_function=clone, call_function=call
        )
        if not model.trainable:
            new_model.trainable = False
    for layer, new in copied:
        new.set_weights(layer.get_weights())
    return new_model


def _clone_sequential(model, clone, followers):
    # clone_model cannot insert layers into a Sequential model (no
    # call_function there), so rebuild the layer list.
    new_layers = []
    for layer in model.layers:
        new = clone(layer)
        new_layers.append(new)
        if id(new) in followers:
            new_layers.append(followers[id(new)])
    (spec,) = model.inputs
    first = model._layers[0]
    name = first.name if isinstance(first, keras.layers.InputLayer) else None
    inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name=name)
    new_model = keras.Sequential(
        [inputs] + new_layers, name=model.name, trainable=model.trainable
    )
    if model.compiled:
        new_model.compile_from_config(model.get_compile_config())
    return new_model


def _relu_kind(layer):
    """`"layer"` if `layer` is a plain ReLU, `"activation"` if its output
    activation is one, else None; raises for ReLUs softplus cannot replace."""
    if isinstance(layer, keras.layers.ReLU):
        if layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0:
            return "layer"
        raise ValueError(
            "`with_softplus` replaces plain ReLUs, max(x, 0), only; layer "
            f"'{layer.name}' computes another piecewise-linear function "
            "that softplus would not approximate. Replace it by hand first. "
            f"Received: layer={layer.name!r} with max_value={layer.max_value}, "
            f"negative_slope={layer.negative_slope}, threshold={layer.threshold}"
        )
    if isinstance(layer, (keras.layers.LeakyReLU, keras.layers.PReLU)):
        raise ValueError(
            "`with_softplus` replaces plain ReLUs, max(x, 0), only; layer "
            f"'{layer.name}' has a negative slope that softplus would not "
            "approximate. Replace it by hand first. "
            f"Received: layer={layer.name!r} of type {type(layer).__name__}"
        )
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    if any(activation is f for f in _RELU_FUNCTIONS):
        if isinstance(layer, keras.layers.Activation):
            return "layer"
        if isinstance(layer, _OUTPUT_ACTIVATION_LAYERS):
            return "activation"
        raise ValueError(
            "`with_softplus` can replace a ReLU `activation` only in layers "
            "that apply it last to their output (Dense, EinsumDense, "
            f"convolutions); in layer '{layer.name}' it may act inside the "
            "layer. Rebuild that layer with another activation first. "
            f"Received: layer={layer.name!r} of type {type(layer).__name__}"
        )
    if any(activation is f for f in _OTHER_RELU_FUNCTIONS):
        raise ValueError(
            "`with_softplus` replaces plain ReLUs, max(x, 0), only; the "
            f"activation of layer '{layer.name}' is another piecewise-linear "
            "function that softplus would not approximate. Replace it by "
            "hand first. "
            f"Received: layer={layer.name!r} with "
            f"activation={getattr(activation, '__name__', activation)}"
        )
    return None
