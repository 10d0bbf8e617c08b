"""Model architectures used in the papers' experiments."""

import os
import warnings

import keras

from keras_interp import _checks
from keras_interp import softplus_rewrite
# with_softplus's stand-in layers and report, importable from here.
from keras_interp.softplus_rewrite import SmoothPReLU  # noqa: F401
from keras_interp.softplus_rewrite import SmoothReLU  # noqa: F401
from keras_interp.softplus_rewrite import SoftplusReport  # noqa: F401

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


def with_softplus(model, beta, *, return_report=False):
    """Returns a copy of `model` with its ReLU family smoothed, same weights.

    B-smoothing (Dombrowski et al., 2019; the ATEX paper's baseline, paper
    2, §5.2). On a ReLU network the gradient of an explanation with respect
    to the input is zero, so attacks on explanations
    (`attacks.manipulate_explanation`) need smooth stand-ins, which tend to
    the originals as `beta` grows. With `sp(z) = softplus(beta * z) / beta`:

    - `relu` -> `sp(x)` (`keras_interp.layers.Softplus`), within
      `log(2) / beta`;
    - `relu6`, `ReLU(max_value=m)` -> `sp(x) - sp(x - m)`, within
      `log(2) / beta`;
    - `leaky_relu`, `LeakyReLU`, `ReLU(negative_slope=a)` ->
      `a * x + (1 - a) * sp(x)`, within `(1 - a) log(2) / beta`;
    - `ReLU(threshold=t)`, which jumps from 0 to `t` at `x = t` ->
      `sp(x - t) + t * sigmoid(beta * (x - t))`, within `log(2) / beta`
      outside a band of a few `1 / beta` around `t` (no continuous
      function follows a jump: the gap is `t / 2 + log(2) / beta` at `t`);
    - `PReLU` -> `alpha * x + (1 - alpha) * sp(x)`, learned `alpha` kept.

    `SmoothReLU` computes the combinations, `SmoothPReLU` the last.
    `ReLU`, `LeakyReLU`, `PReLU` and `Activation` layers and
    `keras.ops.relu`/`relu6`/`leaky_relu` calls in a functional graph
    become a stand-in layer of the same name; a `Dense`, `EinsumDense` or
    convolution layer gets a linear activation followed by a stand-in
    named `f"{layer.name}_softplus"`. Nested Sequential and functional
    models are rewritten at any depth. Weights are copied into new
    variables and `model` is left untouched; a compiled model's copy is
    compiled the same way.

    Other nonlinearities are kept and listed in the report: smooth ones
    (swish, gelu, sigmoid, tanh, elu, selu, softmax...) and piecewise-linear
    ones outside the family (`hard_sigmoid`, max pooling...), marked as
    such since their second derivative stays zero. With no ReLU family at
    all, the copy computes the same function and a `UserWarning` says so.
    A ReLU-family activation acting inside a layer (e.g. a recurrent one)
    raises a `ValueError`; ReLUs called inside custom layers cannot be seen.

    Args:
        model: a Sequential or functional `keras.Model` with symbolic inputs
            (a subclassed model cannot be rewired layer by layer).
        beta: sharpness, > 0. Larger values stay closer to the original.
        return_report: if True, also return a `SoftplusReport` of the
            layers rewritten and the nonlinearities kept. Defaults to False.

    Returns:
        A new model of the same kind (Sequential or functional); with
        `return_report=True`, `(model, report)`.

    Example:

    ```python
    backbone = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), include_top=False, weights=None
    )
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.GlobalAveragePooling2D()(backbone(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    smooth, report = keras_interp.models.with_softplus(model, 10.0, return_report=True)
    print(report)  # mobilenetv2_1.00_32/Conv1_relu: ReLU(max_value=6.0) -> ...
    ```
    """
    beta = _checks.positive(beta, "beta")
    smooth, report = softplus_rewrite.rewrite(model, beta)
    if not report.rewritten:
        kept = ", ".join(sorted(set(report.kept.values()))) or "none"
        warnings.warn(
            f"`with_softplus` found no ReLU-family activation in model "
            f"{model.name!r}; the copy computes the same function as the "
            f"model. Nonlinearities kept: {kept}.",
            stacklevel=2,
        )
    return (smooth, report) if return_report else smooth


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
