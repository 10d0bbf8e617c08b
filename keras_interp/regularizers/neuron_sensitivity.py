"""NsLoss: the neuron-sensitivity regulariser of paper 1 (§4.2)."""

import keras

from keras_interp import _checks


def _per_neuron(clean, perturbed):
    """MA and MD (paper 1, Eqs. 4-5) of one layer, one value per neuron."""
    batch = keras.ops.shape(clean)[0]
    clean = keras.ops.reshape(clean, (batch, -1))
    perturbed = keras.ops.reshape(perturbed, (-1, batch, clean.shape[-1]))
    mean_activation = keras.ops.mean(keras.ops.abs(clean), axis=0)
    mean_difference = keras.ops.mean(keras.ops.abs(clean[None] - perturbed), axis=(0, 1))
    return mean_activation, mean_difference


def neuron_sensitivity_loss(clean, perturbed, epsilon):
    """NsLoss of paper 1 (§4.2, Eqs. 4-7) from hooked activations.

    For layer `i` with `|M_i|` units per sample and neuron `j`:
    `MA_ij = mean_m |M_ij(X[m])|`, `MD_ij = mean_{k,m} |M_ij(X[m]) -
    M_ij(X_p^k[m])|`, `NS_ij = MD_ij / (epsilon |M_i| MA_ij)`, and
    `NsLoss = sum_i sum_j NS_ij * MA_ij`. The product is computed as
    `MD_ij / (epsilon |M_i|)`, its value wherever `MA_ij > 0` and its limit
    where a unit is dead on the batch (`MA_ij = 0`), so no 0/0 appears.

    Args:
        clean: list of per-layer activations on the batch, each `[B, ...]`.
        perturbed: the matching list on the N perturbed copies, each
            `[N, B, ...]` (or `[N * B, ...]`, perturbation-major, as
            `SpherePerturbation` produces).
        epsilon: radius of the perturbation sphere, > 0.

    Returns:
        A scalar tensor.

    Example:

    ```python
    loss = neuron_sensitivity_loss([h], [h_perturbed], epsilon=0.1)
    ```
    """
    epsilon = _checks.positive(epsilon, "epsilon")
    if len(clean) != len(perturbed):
        raise ValueError(
            "`clean` and `perturbed` must hold one activation per hooked layer "
            f"each. Received: len(clean)={len(clean)}, len(perturbed)={len(perturbed)}"
        )
    total = 0.0
    for c, p in zip(clean, perturbed):
        _, mean_difference = _per_neuron(c, p)
        units = mean_difference.shape[0]
        total = total + keras.ops.sum(mean_difference) / (epsilon * units)
    return total


def neuron_sensitivities(clean, perturbed, epsilon):
    """NS per neuron and layer (paper 1, Eq. 6), for diagnostics.

    Dead units (`MA_ij = 0` on the batch) get a guarded denominator and so
    a large but finite value rather than NaN.

    Returns:
        A list with one `[|M_i|]` tensor per layer.
    """
    epsilon = _checks.positive(epsilon, "epsilon")
    out = []
    for c, p in zip(clean, perturbed):
        mean_activation, mean_difference = _per_neuron(c, p)
        units = mean_difference.shape[0]
        guarded = keras.ops.maximum(mean_activation, keras.backend.epsilon())
        out.append(mean_difference / (epsilon * units * guarded))
    return out
