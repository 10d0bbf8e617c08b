"""FGSM and PGD against closed forms, their constraints, and their effect."""

import keras
import numpy as np
import pytest

from keras_interp import attacks
from keras_interp import data
from tests.conftest import linear
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def test_fgsm_of_linear_model_follows_the_closed_form_gradient():
    model, w, b = linear(seed=0, in_shape=(5,), classes=4)
    x = np.random.default_rng(1).uniform(size=(6, 5)).astype("float32")
    y = np.array([0, 1, 2, 3, 0, 1])
    z = x.astype("float64") @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    # d CE / dx = W (softmax - onehot)
    grad = (p - np.eye(4)[y]) @ w.T
    out = to_numpy(attacks.fgsm(model, x, y, epsilon=0.1))
    np.testing.assert_allclose(out, x + 0.1 * np.sign(grad), rtol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_and_the_data_range(norm):
    model, _, _ = linear(seed=0, in_shape=(4, 4, 1), classes=3)
    x = np.random.default_rng(1).uniform(size=(8, 4, 4, 1)).astype("float32")
    eps = 0.3 if norm == "linf" else 0.8
    out = to_numpy(attacks.pgd(model, x, epsilon=eps, norm=norm, steps=10, clip=(0.0, 1.0), seed=0))
    delta = (out - x).reshape(8, -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert (size <= eps + 1e-5).all()
    assert size.max() > 0.5 * eps  # it moved
    assert out.min() >= 0.0 and out.max() <= 1.0


def pixel_model():
    """A linear classifier on raw 0-255 pixels that rescales them itself."""
    model = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 1, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.mark.parametrize("attack", ["fgsm", "pgd_linf", "pgd_l2"])
def test_on_0_255_pixels_the_ball_holds_with_or_without_a_data_range(attack):
    # No attack may assume a [0, 1] range: with epsilon 8 on raw pixels no
    # pixel moves by more than 8 (L-inf) or the L2 ball's radius.
    model = pixel_model()
    x = np.round(np.random.default_rng(1).uniform(0, 255, size=(8, 4, 4, 1))).astype("float32")
    x[:, 0, 0, 0] = 255.0  # pixels at the top of the range, to push past it
    x[:, 0, 1, 0] = 0.0
    eps = 40.0 if attack == "pgd_l2" else 8.0

    def run(clip):
        if attack == "fgsm":
            out = attacks.fgsm(model, x, epsilon=eps, clip=clip)
        else:
            norm = "l2" if attack == "pgd_l2" else "linf"
            out = attacks.pgd(model, x, epsilon=eps, norm=norm, steps=5, clip=clip, seed=0)
        out = to_numpy(out)
        delta = (out - x).reshape(len(x), -1)
        size = np.linalg.norm(delta, axis=1) if attack == "pgd_l2" else np.abs(delta).max(1)
        assert (size <= eps * (1 + 1e-5)).all(), size
        return out, size

    free, size = run(None)
    assert size.max() > 0.5 * eps  # it moved
    if attack != "pgd_l2":
        assert free.min() >= x.min() - eps - 1e-3 and free.max() <= x.max() + eps + 1e-3
    # Unconstrained means unclipped.
    assert free.max() > 255.0 or free.min() < 0.0
    clipped, size = run((0, 255))
    assert clipped.min() >= 0.0 and clipped.max() <= 255.0
    assert size.max() > 0.5 * eps
    # A wrong data range cannot pull the pixels out of the ball.
    run((0.0, 1.0))


def test_pgd_same_seed_same_result():
    model, _, _ = linear(seed=0, in_shape=(5,), classes=3)
    x = np.random.default_rng(1).uniform(size=(4, 5)).astype("float32")
    a, b = (to_numpy(attacks.pgd(model, x, epsilon=0.1, seed=3)) for _ in range(2))
    np.testing.assert_array_equal(a, b)


def test_pgd_hurts_a_trained_model_more_than_noise_of_the_same_size(seed):
    (x_train, y_train), (x_test, y_test) = data.load("mnist5k")
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)
    x, y = x_test[:300], y_test[:300]

    def accuracy(inputs):
        return float(np.mean(np.argmax(to_numpy(model(inputs)), 1) == y))

    eps = 0.1
    noise = np.random.default_rng(0).choice([-eps, eps], size=x.shape).astype("float32")
    clean = accuracy(x)
    noisy = accuracy(np.clip(x + noise, 0, 1))
    adversarial = accuracy(attacks.pgd(model, x, y, epsilon=eps, clip=(0.0, 1.0), seed=0))
    assert clean > 0.85
    assert adversarial < noisy - 0.3, (clean, noisy, adversarial)


def test_bad_arguments_are_rejected():
    model, _, _ = linear(seed=0)
    x = np.zeros((2, 5), "float32")
    with pytest.raises(ValueError, match="Received: epsilon=0.0"):
        attacks.pgd(model, x, epsilon=0)
    with pytest.raises(ValueError, match="Received: norm='l1'"):
        attacks.pgd(model, x, epsilon=0.1, norm="l1")
    with pytest.raises(ValueError, match="Received: steps=0"):
        attacks.pgd(model, x, epsilon=0.1, steps=0)
