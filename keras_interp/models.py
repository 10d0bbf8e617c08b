"""Model architectures used in the papers' experiments."""

import keras

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
