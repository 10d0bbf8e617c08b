"""Regularisers that train for interpretability."""

from keras_interp.regularizers.neuron_sensitivity import neuron_sensitivities
from keras_interp.regularizers.neuron_sensitivity import neuron_sensitivity_loss

__all__ = ["neuron_sensitivities", "neuron_sensitivity_loss"]
