"""neuron_sensitivity_loss against a literal transcription of paper 1."""

import numpy as np
import pytest

from keras_interp import regularizers
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def literal_nsloss(clean, perturbed, eps):
    """Paper 1, Eqs. 4-7, one neuron at a time, exactly as written."""
    total = 0.0
    for c, p in zip(clean, perturbed):
        c = c.reshape(c.shape[0], -1).astype("float64")
        p = p.reshape(p.shape[0], c.shape[0], -1).astype("float64")
        n, batch, units = p.shape
        for j in range(units):
            ma = sum(abs(c[m, j]) for m in range(batch)) / batch
            md = sum(
                abs(c[m, j] - p[k, m, j]) for k in range(n) for m in range(batch)
            ) / (n * batch)
            ns = md / (eps * units * ma)
            total += ns * ma
    return total


def activations(rng, n=3, batch=4):
    shapes = [(batch, 5), (batch, 2, 3, 2)]
    clean = [rng.normal(size=s).astype("float32") for s in shapes]
    perturbed = [
        (c[None] + rng.normal(scale=0.1, size=(n,) + c.shape)).astype("float32")
        for c in clean
    ]
    return clean, perturbed


def test_equals_the_literal_formula():
    clean, perturbed = activations(np.random.default_rng(0))
    ours = float(to_numpy(regularizers.neuron_sensitivity_loss(clean, perturbed, 0.05)))
    np.testing.assert_allclose(ours, literal_nsloss(clean, perturbed, 0.05), rtol=1e-5)


def test_accepts_perturbation_major_flat_layout():
    clean, perturbed = activations(np.random.default_rng(1))
    flat = [p.reshape((-1,) + p.shape[2:]) for p in perturbed]
    a = regularizers.neuron_sensitivity_loss(clean, perturbed, 0.1)
    b = regularizers.neuron_sensitivity_loss(clean, flat, 0.1)
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6)


def test_dead_units_stay_finite_and_take_the_limit():
    rng = np.random.default_rng(2)
    clean, perturbed = activations(rng)
    clean[0][:, 2] = 0.0  # unit 2 of layer 0 is dead on the clean batch...
    perturbed[0][:, :, 2] = 0.5  # ...but moves under perturbation
    ours = float(to_numpy(regularizers.neuron_sensitivity_loss(clean, perturbed, 0.1)))
    assert np.isfinite(ours)
    # The literal formula is 0/0 there; its limit is MD / (eps |M_i|).
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(literal_nsloss(clean, perturbed, 0.1))
    alive = [0, 1, 3, 4]
    layer1 = literal_nsloss(clean[1:], perturbed[1:], 0.1)
    # The literal sum over the live units divides by 4 units; |M_0| is 5.
    alive0 = literal_nsloss([clean[0][:, alive]], [perturbed[0][:, :, alive]], 0.1) * 4 / 5
    dead0 = 0.5 / (0.1 * 5)  # MD / (eps |M_0|), with MD = |0 - 0.5|
    np.testing.assert_allclose(ours, layer1 + alive0 + dead0, rtol=1e-5)
    ns = regularizers.neuron_sensitivities(clean, perturbed, 0.1)
    assert all(np.isfinite(to_numpy(v)).all() for v in ns)


def test_neuron_sensitivities_times_activation_sum_to_the_loss():
    clean, perturbed = activations(np.random.default_rng(3))
    ns = regularizers.neuron_sensitivities(clean, perturbed, 0.2)
    ma = [np.abs(c.reshape(c.shape[0], -1)).mean(0) for c in clean]
    composed = sum(float((to_numpy(n) * m).sum()) for n, m in zip(ns, ma))
    loss = float(to_numpy(regularizers.neuron_sensitivity_loss(clean, perturbed, 0.2)))
    np.testing.assert_allclose(composed, loss, rtol=1e-5)


def test_bad_epsilon_and_mismatched_layers_are_rejected():
    clean, perturbed = activations(np.random.default_rng(4))
    with pytest.raises(ValueError, match="Received: epsilon=0.0"):
        regularizers.neuron_sensitivity_loss(clean, perturbed, 0.0)
    with pytest.raises(ValueError, match="Received: len\\(clean\\)=2, len\\(perturbed\\)=1"):
        regularizers.neuron_sensitivity_loss(clean, perturbed[:1], 0.1)
