"""Explanation manipulation (Ghorbani et al. 2019): constraints and effect."""

import keras
import numpy as np
import pytest

from keras_interp import attacks
from keras_interp import attribution
from keras_interp import metrics
from tests.conftest import mlp
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend

EPS = 0.05
STEPS = 20


def softplus_cnn(seed=0, classes=4):
    """All-softplus conv net (second derivatives exist), NumPy weights."""
    model = keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            keras.layers.Conv2D(6, 3, activation="softplus"),
            keras.layers.Conv2D(6, 3, activation="softplus"),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="softplus"),
            keras.layers.Dense(classes),
        ]
    )
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()]
    )
    return model


# One model for the module: the compiled second-order step is cached per
# model, so the tests share its tracing.
@pytest.fixture(scope="module")
def model():
    return softplus_cnn()


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).uniform(size=(12, 10, 10, 2)).astype("float32")


def predictions(model, x):
    return np.argmax(to_numpy(model(x)), axis=-1)


def saliency(model, x, target):
    """Per-pixel |phi| summed over channels, `[B, H, W]`."""
    phi = to_numpy(attribution.vanilla_gradient(model, x, target))
    return np.abs(phi).sum(-1)


def share(s, mask):
    s = s.reshape(len(s), -1)
    mask = mask.reshape(len(s), -1)
    return (s * mask).sum(1) / s.sum(1)


def sign_noise(x, eps, seed=2):
    noise = np.random.default_rng(seed).choice([-eps, eps], size=x.shape)
    return np.clip(x + noise, 0.0, 1.0).astype("float32")


@pytest.mark.parametrize("mode", ["untargeted", "targeted"])
def test_result_stays_in_the_ball_and_the_data_range(model, x, mode):
    out = to_numpy(
        attacks.manipulate_explanation(
            model, x, mode=mode, epsilon=EPS, steps=STEPS, clip=(0.0, 1.0), seed=0
        )
    )
    assert out.shape == x.shape
    size = np.abs(out - x).reshape(len(x), -1).max(1)
    assert (size <= EPS + 1e-6).all()
    # It moved (an example near a class boundary may stop early).
    assert (size > 0.5 * EPS).mean() > 0.75, size
    assert out.min() >= 0.0 and out.max() <= 1.0
    # Pixels at 0 or 1 can only move inward: clipping was needed.
    assert ((x + EPS > 1.0) & (out == 1.0)).any()


def test_on_0_255_pixels_the_ball_holds_with_or_without_a_data_range(x):
    # Raw pixels, rescaled by the model itself: the attack must assume no
    # [0, 1] range (an old default clipped such pixels by up to 254).
    model = keras.Sequential([keras.Input((10, 10, 2)), keras.layers.Rescaling(1.0 / 255)])
    for layer in softplus_cnn().layers:
        model.add(layer)
    pixels = np.round(255 * x).astype("float32")
    eps = 8.0

    def attack(clip):
        out = attacks.manipulate_explanation(model, pixels, epsilon=eps, steps=5, clip=clip)
        out = to_numpy(out)
        assert (np.abs(out - pixels) <= eps + 1e-3).all()
        return out

    free = attack(None)
    assert free.min() >= pixels.min() - eps - 1e-3 and free.max() <= pixels.max() + eps + 1e-3
    # Unconstrained means unclipped: pixels near 255 went past it.
    assert free.max() > 255.0
    clipped = attack((0, 255))
    assert clipped.min() >= 0.0 and clipped.max() <= 255.0
    assert np.abs(clipped - pixels).max() > 0.5 * eps  # it moved
    # A wrong data range cannot pull the pixels out of the ball.
    attack((0.0, 1.0))


def test_prediction_is_kept_where_the_ball_holds_other_labels(model, x):
    eps = 0.5
    clean = predictions(model, x)
    # PGD shows the ball holds points of other classes for most examples...
    flipped = predictions(model, attacks.pgd(model, x, epsilon=eps, clip=(0.0, 1.0), seed=0))
    assert (flipped != clean).mean() > 0.5
    # ...and yet every manipulated example keeps its label.
    out = attacks.manipulate_explanation(model, x, epsilon=eps, steps=STEPS, clip=(0.0, 1.0))
    np.testing.assert_array_equal(predictions(model, out), clean)
    assert (np.abs(to_numpy(out) - x).reshape(len(x), -1).max(1) > 0).mean() > 0.5


def test_untargeted_attack_beats_noise_on_the_top_k_share_and_rank_correlation(model, x):
    k = 20
    clean = predictions(model, x)
    s0 = saliency(model, x, clean)
    top = np.zeros(s0.reshape(len(x), -1).shape)
    np.put_along_axis(top, np.argsort(-s0.reshape(len(x), -1), 1)[:, :k], 1.0, 1)
    out = attacks.manipulate_explanation(model, x, epsilon=EPS, steps=STEPS, top_k=k, clip=(0.0, 1.0))
    s_attack = saliency(model, out, clean)
    s_noise = saliency(model, sign_noise(x, EPS), clean)
    share_clean, share_attack, share_noise = (share(s, top) for s in (s0, s_attack, s_noise))
    assert (share_attack < share_clean).all(), (share_clean, share_attack)
    assert (share_attack < share_noise).all(), (share_noise, share_attack)
    rank_attack = metrics.rank_correlation(s_attack, s0)
    rank_noise = metrics.rank_correlation(s_noise, s0)
    assert rank_attack.mean() < rank_noise.mean() - 0.05, (rank_noise, rank_attack)
    top_attack = metrics.top_k_intersection(s_attack, s0, k=k)
    top_noise = metrics.top_k_intersection(s_noise, s0, k=k)
    assert top_attack.mean() < top_noise.mean(), (top_noise, top_attack)


def test_targeted_attack_raises_the_share_of_the_region(model, x):
    clean = predictions(model, x)
    region = np.zeros((10, 10), bool)
    region[5:10, 0:5] = True
    s0 = saliency(model, x, clean)
    out = attacks.manipulate_explanation(
        model, x, mode="targeted", epsilon=EPS, steps=STEPS, region=region, clip=(0.0, 1.0)
    )
    share_clean = share(s0, region[None].repeat(len(x), 0))
    share_attack = share(saliency(model, out, clean), region[None].repeat(len(x), 0))
    share_noise = share(saliency(model, sign_noise(x, EPS), clean), region[None].repeat(len(x), 0))
    assert (share_attack > share_clean).all(), (share_clean, share_attack)
    assert (share_attack > share_noise).all(), (share_noise, share_attack)
    # A corner names the same square.
    corner = attacks.manipulate_explanation(
        model, x, mode="targeted", epsilon=EPS, steps=STEPS, region=(5, 0), clip=(0.0, 1.0)
    )
    np.testing.assert_array_equal(to_numpy(corner), to_numpy(out))


def test_random_regions_follow_the_seed(model, x):
    def run(seed):
        return to_numpy(
            attacks.manipulate_explanation(
                model, x, mode="targeted", epsilon=EPS, steps=5, seed=seed
            )
        )

    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0


def test_examples_do_not_interact_and_chunks_are_reassembled(model, x):
    alone = to_numpy(attacks.manipulate_explanation(model, x, epsilon=EPS, steps=5))
    # The first six examples again, in a chunk with other companions; the
    # chunk size is kept so the compiled step is reused.
    others = np.random.default_rng(5).uniform(size=(6, 10, 10, 2)).astype("float32")
    both = np.concatenate([x, x[:6], others])
    out = to_numpy(
        attacks.manipulate_explanation(model, both, epsilon=EPS, steps=5, batch_size=12)
    )
    np.testing.assert_allclose(out[:12], alone, atol=1e-6)
    np.testing.assert_allclose(out[12:18], alone[:6], atol=1e-6)


def test_flat_inputs_are_attacked_per_feature(seed):
    model, _ = mlp(seed, in_shape=(6,), classes=3)
    x = np.random.default_rng(0).uniform(size=(8, 6)).astype("float32")
    clean = predictions(model, x)
    s0 = np.abs(to_numpy(attribution.vanilla_gradient(model, x, clean)))
    top = np.zeros_like(s0)
    np.put_along_axis(top, np.argsort(-s0, 1)[:, :2], 1.0, 1)
    out = attacks.manipulate_explanation(model, x, epsilon=0.1, steps=10, top_k=2)
    s1 = np.abs(to_numpy(attribution.vanilla_gradient(model, out, clean)))
    assert (share(s1, top) < share(s0, top)).all()
    np.testing.assert_array_equal(predictions(model, out), clean)


def test_a_relu_model_has_no_second_derivatives_to_follow(x):
    model = softplus_cnn()
    for layer in model.layers[:-1]:
        layer.activation = keras.activations.relu
    out = attacks.manipulate_explanation(model, x, epsilon=EPS, steps=3)
    np.testing.assert_array_equal(to_numpy(out), x)


def test_bad_arguments_are_rejected(model, x):
    def attack(inputs=x, **kwargs):
        kwargs.setdefault("epsilon", EPS)
        return attacks.manipulate_explanation(model, inputs, **kwargs)

    with pytest.raises(ValueError, match="Received: mode='target'"):
        attack(mode="target")
    with pytest.raises(ValueError, match="Received: epsilon=0.0"):
        attack(epsilon=0.0)
    with pytest.raises(ValueError, match="Received: steps=0"):
        attack(steps=0)
    with pytest.raises(ValueError, match="Received: top_k=0"):
        attack(top_k=0)
    with pytest.raises(ValueError, match="Received: top_k=101"):
        attack(top_k=101)
    with pytest.raises(ValueError, match=r"Received: region.shape=\(10, 9\)"):
        attack(mode="targeted", region=np.ones((10, 9), bool))
    with pytest.raises(ValueError, match="Received: region with dtype"):
        attack(mode="targeted", region=np.ones((10, 10)))
    with pytest.raises(ValueError, match="no True pixel"):
        attack(mode="targeted", region=np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match=r"Received: region=\(6, 0\)"):
        attack(mode="targeted", region=(6, 0))
    with pytest.raises(ValueError, match="Received: region_size=11"):
        attack(mode="targeted", region_size=11)
    with pytest.raises(ValueError, match=r"Received: x.shape=\(12, 200\)"):
        attack(x.reshape(12, 200), mode="targeted")
    with pytest.raises(ValueError, match="Received: clip="):
        attack(clip=(1.0, 0.0))


def test_top_k_mask_marks_exactly_the_k_largest():
    from keras_interp.attacks import _top_k_pixels

    s = np.random.default_rng(0).uniform(size=(5, 100)).astype("float32")
    mask = keras.ops.convert_to_numpy(_top_k_pixels(keras.ops.convert_to_tensor(s), 7))
    expected = np.zeros_like(s)
    np.put_along_axis(expected, np.argsort(-s, axis=1)[:, :7], 1.0, axis=1)
    np.testing.assert_array_equal(mask, expected)
