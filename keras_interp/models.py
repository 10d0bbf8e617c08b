"""Model architectures used in the papers' experiments."""

import os

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
    _check_activation(activation)
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


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"`activation` must be one of {ACTIVATIONS}. "
            f"Received: activation={activation!r}"
        )


def _preact_block(x, filters, stride, activation, name):
    """One pre-activation basic block (He et al., 2016b, Fig. 4e)."""
    h = keras.layers.BatchNormalization(name=f"{name}_bn1")(x)
    h = keras.layers.Activation(activation, name=f"{name}_act1")(h)
    if stride != 1 or x.shape[-1] != filters:
        # The projection sees the pre-activated input, as in the paper's
        # code (fb.resnet.torch preresnet) and most re-implementations.
        shortcut = keras.layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, name=f"{name}_shortcut"
        )(h)
    else:
        shortcut = x
    h = keras.layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1"
    )(h)
    h = keras.layers.BatchNormalization(name=f"{name}_bn2")(h)
    h = keras.layers.Activation(activation, name=f"{name}_act2")(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(h)
    return keras.layers.Add(name=f"{name}_add")([shortcut, h])


def preresnet10(input_shape=(160, 160, 3), num_classes=10, activation="relu", width=64):
    """PreResNet10: the pre-activation ResNet of paper 1's ImageNette runs.

    A pre-activation ResNet (He et al., 2016, "Identity Mappings in Deep
    Residual Networks") with one basic block per stage, i.e. ResNet-18's
    layout with 1 instead of 2 blocks per stage. Ten weighted layers on
    the main path: a 7x7 stride-2 stem convolution (then 3x3 stride-2 max
    pooling, ImageNet-style), four blocks of two 3x3 convolutions each
    (`BatchNormalization -> activation -> Conv2D`, twice, plus the
    shortcut), and the final `Dense` layer. Stages have `width * (1, 2, 4,
    8)` filters and strides `(1, 2, 2, 2)`; a block whose shape changes
    gets a 1x1 projection shortcut (not counted among the ten), applied to
    its pre-activated input. A final `BatchNormalization -> activation`,
    global average pooling and `Dense(num_classes)` give logits.
    Convolutions have no bias (each is followed by batch normalisation).

    Every layer is named (`stem_conv`, `stage{1..4}_{bn1,act1,conv1,bn2,
    act2,conv2,shortcut,add}`, `final_bn`, `final_act`, `avg_pool`,
    `logits`), so `regularizers.NeuronSensitivity(layers=[...])` can pick
    layers by name. The model has no preprocessing layer: feed it images
    scaled as for training. At the default 160x160 input the last feature
    map is 5x5; any input of at least 32x32 works.

    Args:
        input_shape: shape of one image, channels last. Defaults to
            `(160, 160, 3)` (ImageNette's "160 px" version, paper 1).
        num_classes: number of classes. Defaults to 10.
        activation: `"relu"` (default) or `"softplus"`.
        width: filters of the stem and of the first stage, > 0. Defaults
            to 64 (4.9M parameters); smaller values give a cheaper model.

    Returns:
        A functional `keras.Model` named `"preresnet10"` returning logits.

    Example:

    ```python
    model = keras_interp.models.preresnet10(input_shape=(160, 160, 3))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ```
    """
    _check_activation(activation)
    num_classes = _checks.positive_int(num_classes, "num_classes")
    width = _checks.positive_int(width, "width")
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(
        width, 7, strides=2, padding="same", use_bias=False, name="stem_conv"
    )(inputs)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (multiplier, stride) in enumerate(zip((1, 2, 4, 8), (1, 2, 2, 2)), start=1):
        x = _preact_block(x, width * multiplier, stride, activation, f"stage{stage}")
    x = keras.layers.BatchNormalization(name="final_bn")(x)
    x = keras.layers.Activation(activation, name="final_act")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="preresnet10")


# keras.applications.VGG19's convolutional base: filters per block, and
# convolutions per block.
_VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def vgg19(
    input_shape=(224, 224, 3),
    num_classes=10,
    activation="relu",
    weights=None,
    head_units=(4096, 4096),
):
    """VGG19 (Simonyan & Zisserman, 2015), the other model of paper 1.

    The convolutional base is `keras.applications.VGG19(include_top=False)`
    layer for layer, with the same layer names (`block1_conv1` ...
    `block5_pool`): 16 3x3 convolutions in five blocks, each block ending in
    2x2 max pooling. The head is that of `keras.applications.VGG19`
    (`flatten`, `fc1`, `fc2`) with `head_units` units, and a final
    `Dense(num_classes)` layer named `logits` that returns logits (no
    softmax). The model has no preprocessing layer: ImageNet weights from
    Keras expect `keras.applications.vgg19.preprocess_input`'d images.

    Nothing is ever downloaded. `weights` is either a `.weights.h5` file
    saved from a model built by this function with the same arguments
    (`model.save_weights(path)`), which restores every layer, or a legacy
    `.h5` file with exactly the 16 convolutions of VGG19's base, such as
    Keras' `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` (download it
    yourself), which fills the convolutional base and leaves the head
    freshly initialised, ready for fine-tuning.

    Args:
        input_shape: shape of one image, channels last, at least 32x32.
            Defaults to `(224, 224, 3)`.
        num_classes: number of classes. Defaults to 10.
        activation: `"relu"` (default) or `"softplus"`, used by every
            convolution and hidden dense layer.
        weights: `None` (random initialisation, the default) or the path of
            a local weights file, as described above.
        head_units: units of the hidden dense layers between `flatten` and
            `logits`. Defaults to `(4096, 4096)`, the Keras and paper's
            VGG19; `()` puts `logits` right after `flatten`.

    Returns:
        A functional `keras.Model` named `"vgg19"` returning logits.

    Example:

    ```python
    model = keras_interp.models.vgg19(
        input_shape=(160, 160, 3),
        weights="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ```
    """
    _check_activation(activation)
    num_classes = _checks.positive_int(num_classes, "num_classes")
    head_units = tuple(head_units)
    if not all(isinstance(u, int) and u > 0 for u in head_units):
        raise ValueError(
            "`head_units` must be a sequence of positive integers. "
            f"Received: head_units={head_units!r}"
        )
    path = _vgg19_weights_path(weights)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for block, (filters, convs) in enumerate(_VGG19_BLOCKS, start=1):
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", activation=activation, name=f"block{block}_conv{i}"
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    base_outputs = x
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(head_units, start=1):
        x = keras.layers.Dense(units, activation=activation, name=f"fc{i}")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name="vgg19")
    if path is not None:
        if path.endswith(".weights.h5"):
            model.load_weights(path)
        else:
            # Legacy HDF5 weights match layers with weights in order: the
            # base model holds exactly the 16 convolutions.
            keras.Model(inputs, base_outputs, name="vgg19_base").load_weights(path)
    return model


def _vgg19_weights_path(weights):
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None or the path of a local weights file. "
            f"Received: weights={weights!r}"
        )
    path = os.fspath(weights)
    if path == "imagenet":
        raise ValueError(
            "`vgg19` never downloads weights. Download Keras' "
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 yourself and "
            f"pass its path. Received: weights={weights!r}"
        )
    if not path.endswith(".h5"):
        raise ValueError(
            "`weights` must be a `.weights.h5` file saved from this model or "
            "a legacy `.h5` file of VGG19's convolutional base. "
            f"Received: weights={weights!r}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No weights file at {path!r}. Received: weights={weights!r}"
        )
    return path
