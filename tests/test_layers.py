"""SpherePerturbation: points on the sphere, seeded, identity at inference."""

import keras
import numpy as np
import pytest

from keras_interp import layers
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def test_perturbations_lie_on_the_sphere():
    x = np.random.default_rng(0).uniform(size=(4, 6, 6, 3)).astype("float32")
    out = to_numpy(layers.SpherePerturbation(5, 0.3, seed=0)(x, training=True))
    assert out.shape == (20, 6, 6, 3)
    diff = out.reshape(5, 4, -1) - x.reshape(1, 4, -1)
    np.testing.assert_allclose(np.linalg.norm(diff, axis=-1), 0.3, rtol=1e-5)
    # Directions differ between copies and samples (not one shared offset).
    directions = diff.reshape(20, -1) / 0.3
    cosines = directions @ directions.T
    assert np.abs(cosines[~np.eye(20, dtype=bool)]).max() < 0.9


def test_identity_at_inference_and_seeded():
    x = np.random.default_rng(0).uniform(size=(3, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(layers.SpherePerturbation(2, 0.1)(x)), x)
    a = to_numpy(layers.SpherePerturbation(2, 0.1, seed=4)(x, training=True))
    b = to_numpy(layers.SpherePerturbation(2, 0.1, seed=4)(x, training=True))
    np.testing.assert_array_equal(a, b)


def test_config_round_trip():
    layer = layers.SpherePerturbation(3, 0.2, seed=1, name="sphere")
    clone = layers.SpherePerturbation.from_config(layer.get_config())
    assert (clone.num_perturbations, clone.epsilon, clone.seed, clone.name) == (3, 0.2, 1, "sphere")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_perturbations": 0, "epsilon": 0.1}, "Received: num_perturbations=0"),
        ({"num_perturbations": 2, "epsilon": 0.0}, "Received: epsilon=0.0"),
        ({"num_perturbations": 2, "epsilon": -1}, "Received: epsilon=-1.0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.SpherePerturbation(**kwargs)
