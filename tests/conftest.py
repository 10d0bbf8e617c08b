"""Shared fixtures. The backend is chosen by KERAS_BACKEND before import."""

import keras
import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs KERAS_BACKEND=tensorflow")
    for item in items:
        if "tensorflow_only" in item.keywords and keras.config.backend() != "tensorflow":
            item.add_marker(skip)


@pytest.fixture
def seed():
    """Seeds Python, NumPy and the backend; returns the seed."""
    keras.utils.set_random_seed(1234)
    return 1234


def to_numpy(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def mlp(seed, in_shape=(6,), hidden=16, classes=3, last_activation=None):
    """A small tanh MLP with float64 NumPy twins of its weights."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(in_shape))
    w1 = rng.normal(0, 1 / np.sqrt(d), (d, hidden)).astype("float32")
    b1 = rng.normal(0, 0.1, hidden).astype("float32")
    w2 = rng.normal(0, 1 / np.sqrt(hidden), (hidden, classes)).astype("float32")
    b2 = rng.normal(0, 0.1, classes).astype("float32")
    model = keras.Sequential(
        [
            keras.Input(in_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="tanh"),
            keras.layers.Dense(classes, activation=last_activation),
        ]
    )
    model.set_weights([w1, b1, w2, b2])

    def logits(x):
        """The model's pre-activation output, in float64 NumPy."""
        h = np.tanh(x.reshape(len(x), -1).astype("float64") @ w1 + b1)
        return h @ w2 + b2

    return model, logits


def linear(seed, in_shape=(5,), classes=4, last_activation=None):
    """A linear model and its float32 weight matrix [features, classes]."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(in_shape))
    w = rng.normal(size=(d, classes)).astype("float32")
    b = rng.normal(size=classes).astype("float32")
    model = keras.Sequential(
        [
            keras.Input(in_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, activation=last_activation),
        ]
    )
    model.set_weights([w, b])
    return model, w, b


def small_cnn(seed, classes=4):
    """A conv net whose weights come from NumPy, identical on any backend."""
    model = keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            keras.layers.Conv2D(4, 3, activation="softplus"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(6, 3, activation="tanh"),
            keras.layers.Flatten(),
            keras.layers.Dense(12, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(0, 0.4, w.shape).astype("float32") for w in model.get_weights()]
    )
    return model


def calibrate_batch_norm(model, x):
    """Sets every BatchNormalization layer's moving statistics, at any depth,
    to those of the batch `x`: one pass in training mode with momentum 0.

    With the initial statistics (mean 0, variance 1) the signal of a deep
    random network fades layer after layer (MobileNetV2's input gradient is
    ~1e-12), where any activation looks like any other. Returns the
    layers (none for a network without batch norm).
    """
    from keras_interp import hooks

    norms = [l for _, l in hooks.layer_paths(model) if isinstance(l, keras.layers.BatchNormalization)]
    momenta = [l.momentum for l in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
    return norms
