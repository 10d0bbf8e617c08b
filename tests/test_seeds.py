"""Seeds are hashed in one place: nearby seeds and sibling streams give
unrelated draws on every backend, and the same seed the same draws.

On PyTorch, `keras.random.SeedGenerator(s)` seeds its k-th draw `s + k`,
so a generator seeded `s + 1` repeats the draws of one seeded `s`, one
step later: a shifted copy, correlation 1. Independent draws of `n`
values have a correlation of about `1 / sqrt(n)`; the bound below is
several times that, and far below 1.
"""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import _seeds
from keras_interp import attribution
from keras_interp import regularizers
from tests.conftest import small_cnn
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend

FEATURES = 32
# |corr| of independent draws of >= 128 values is about 0.09 at most
# typically; a shifted copy has 1.
UNRELATED = 0.4


def corr(a, b):
    a, b = np.ravel(a).astype("float64"), np.ravel(b).astype("float64")
    return float(np.corrcoef(a, b)[0, 1])


def squares(features=FEATURES):
    """f(x) = sum(x^2): its gradient at x + n is 2 (x + n), so SmoothGrad
    of zeros is twice the mean of its noise."""
    inputs = keras.Input((features,))
    squared = keras.layers.Multiply()([inputs, inputs])
    total = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(squared)
    return keras.Model(inputs, total)


def ones(features=FEATURES):
    """f(x) = sum(x): GradientSHAP from the zero baseline is x plus the mean
    of its input noise."""
    inputs = keras.Input((features,))
    total = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inputs)
    return keras.Model(inputs, total)


def test_keys_name_unrelated_streams_and_numpy_draws_are_kept():
    # SeedSequence zero-pads its entropy, so a key 0 appended to the seed
    # would repeat the seed's own stream; the keys are kept apart from it.
    mixed = {_seeds.mix(3), _seeds.mix(3, 0), _seeds.mix(3, 0, 0), _seeds.mix(3, 1), _seeds.mix(4)}
    assert len(mixed) == 5
    assert all(0 <= m < 2**31 for m in mixed)
    assert _seeds.mix(3, 1, 2) == _seeds.mix(np.int64(3), 1, 2)
    np.testing.assert_array_equal(
        _seeds.numpy_generator(7).random(5), np.random.default_rng(7).random(5)
    )
    assert not np.allclose(_seeds.numpy_generator(7, 0).random(5), np.random.default_rng(7).random(5))
    generator = keras.random.SeedGenerator(1)
    assert _seeds.generator(generator, 5) is generator


def test_seed_type_and_sign_are_checked():
    with pytest.raises(TypeError, match=r"Received: seed=1\.5"):
        _seeds.mix(1.5)
    with pytest.raises(TypeError, match="Received: seed=True"):
        _seeds.check(True)
    with pytest.raises(ValueError, match="Received: seed=-1"):
        _seeds.generator(-1)
    with pytest.raises(TypeError, match=r"Received: seed='0'"):
        ki.layers.SpherePerturbation(2, 0.1, seed="0")
    with pytest.raises(TypeError, match=r"Received: seed=0\.0"):
        attribution.smoothgrad(squares(), np.zeros((1, FEATURES), "float32"), seed=0.0)


def test_none_seeds_follow_numpys_global_state():
    keras.utils.set_random_seed(11)
    a = _seeds.draw()
    keras.utils.set_random_seed(11)
    assert _seeds.draw() == a
    keras.utils.set_random_seed(11)
    assert _seeds.mix(None, 1) == _seeds.mix(a, 1)


def test_smoothgrad_of_seed_one_is_no_shifted_copy_of_seed_zero():
    # Four examples: a draw covers 256 samples, so seed 0's samples
    # 256-511 come from its second draw, which on PyTorch (unhashed) was
    # seed 1's first: 2 sg(0, 512) - sg(0, 256) equalled sg(1, 256).
    model, x = squares(), np.zeros((4, FEATURES), "float32")

    def smoothgrad(seed, num_samples):
        return to_numpy(attribution.smoothgrad(model, x, 0, num_samples=num_samples, noise=1.0, seed=seed))

    later_half = 2 * smoothgrad(0, 512) - smoothgrad(0, 256)
    seed_one = smoothgrad(1, 256)
    assert abs(corr(later_half, seed_one)) < UNRELATED
    # The means of 256 noise draws (std 2/16 here) differ at the scale of
    # their spread, not at rounding.
    assert np.abs(later_half - seed_one).max() > 0.05
    np.testing.assert_array_equal(smoothgrad(1, 256), seed_one)


@pytest.mark.parametrize("num_samples", [1, 300])
def test_smoothgrad_noise_of_nearby_seeds_is_unrelated(num_samples):
    model, x = squares(), np.zeros((4, FEATURES), "float32")
    maps = [
        to_numpy(attribution.smoothgrad(model, x, 0, num_samples=num_samples, noise=1.0, seed=s))
        for s in (0, 1, 0)
    ]
    assert abs(corr(maps[0], maps[1])) < UNRELATED
    np.testing.assert_array_equal(maps[0], maps[2])


def test_gradient_shap_of_nearby_seeds_is_no_shifted_copy():
    # A draw of 256 samples (four examples) takes three draws: noise, point
    # and baseline. Unhashed, on PyTorch seed 3's first draw was seed 0's
    # fourth, the noise of its samples 256-511; on a linear model from the
    # zero baseline the map is x plus the mean noise, so 2 gs(0, 512) -
    # gs(0, 256) equalled gs(3, 256).
    model, x = ones(), np.zeros((4, FEATURES), "float32")

    def shap(seed, num_samples):
        return to_numpy(attribution.gradient_shap(model, x, 0, num_samples=num_samples, stdev=1.0, seed=seed))

    later_half = 2 * shap(0, 512) - shap(0, 256)
    for seed in (1, 2, 3):
        assert abs(corr(later_half, shap(seed, 256))) < UNRELATED, seed
    assert abs(corr(shap(0, 1), shap(1, 1))) < UNRELATED
    np.testing.assert_array_equal(shap(3, 256), shap(3, 256))


def directions(layer, x):
    """The layer's unit offsets [N * B, D] of one training call."""
    out = to_numpy(layer(x, training=True))
    tiled = np.tile(x, (layer.num_perturbations,) + (1,) * (x.ndim - 1))
    return ((out - tiled) / layer.epsilon).reshape(len(out), -1)


def test_sphere_perturbations_of_nearby_seeds_are_unrelated():
    x = np.zeros((4, FEATURES), "float32")
    zero, one = ki.layers.SpherePerturbation(2, 0.5, seed=0), ki.layers.SpherePerturbation(2, 0.5, seed=1)
    zero_first, zero_second = directions(zero, x), directions(zero, x)
    one_first = directions(one, x)
    # Unhashed, on PyTorch seed 1's first draw was seed 0's second.
    assert abs(corr(one_first, zero_second)) < UNRELATED
    assert abs(corr(one_first, zero_first)) < UNRELATED
    assert abs(corr(zero_first, zero_second)) < UNRELATED
    again = ki.layers.SpherePerturbation(2, 0.5, seed=0)
    np.testing.assert_array_equal(directions(again, x), zero_first)
    # The config keeps the user's seed.
    assert zero.get_config()["seed"] == 0


def normal_draws(generator, count=2):
    return [to_numpy(keras.random.normal((8, FEATURES), seed=generator)) for _ in range(count)]


def test_regularized_model_streams_are_unrelated():
    """Regulariser i + 1 (once seeded `seed + i + 1`) and a model seeded
    `s + 1` do not repeat regulariser i's or seed s's draws a step later;
    the evaluation stream is not the training stream."""

    def wrapped(seed):
        return ki.RegularizedModel(
            small_cnn(0),
            [regularizers.JacobianNorm(0.1), regularizers.JacobianNorm(0.2)],
            seed=seed,
            evaluate_regularizers=True,
        )

    model, nearby = wrapped(0), wrapped(1)
    first, second = normal_draws(model.seed_generators[0])
    sibling = normal_draws(model.seed_generators[1], 1)[0]
    neighbour = normal_draws(nearby.seed_generators[0], 1)[0]
    evaluation = normal_draws(model.evaluation_seed_generators[0], 1)[0]
    for other in (sibling, neighbour, evaluation):
        assert abs(corr(second, other)) < UNRELATED
        assert abs(corr(first, other)) < UNRELATED
    # The same seed, the same streams.
    again = wrapped(0)
    np.testing.assert_array_equal(normal_draws(again.seed_generators[0], 1)[0], first)
    np.testing.assert_array_equal(normal_draws(again.evaluation_seed_generators[0], 1)[0], evaluation)


def test_regularized_model_perturbations_of_nearby_seeds_are_unrelated():
    x = np.zeros((4, 10, 10, 2), "float32")

    def layer(seed):
        ns = regularizers.NeuronSensitivity(1.0, 0.5, num_perturbations=2)
        return ki.RegularizedModel(small_cnn(0), [ns], seed=seed).perturbation

    zero, one = layer(0), layer(1)
    zero_first, zero_second = directions(zero, x), directions(zero, x)
    one_first = directions(one, x)
    assert abs(corr(one_first, zero_second)) < UNRELATED
    assert abs(corr(one_first, zero_first)) < UNRELATED
    np.testing.assert_array_equal(directions(layer(0), x), zero_first)


def test_jacobian_norm_estimates_of_nearby_int_seeds_differ():
    model = small_cnn(0)
    x = np.random.default_rng(0).uniform(size=(4, 10, 10, 2)).astype("float32")
    values = [
        float(to_numpy(regularizers.jacobian_norm_estimate(model, x, 1, seed=s))) for s in (0, 1, 0)
    ]
    assert values[0] == values[2] and values[0] != values[1]
