"""Regularisers that train for interpretability, used with `RegularizedModel`.

Each is a plain, serialisable object computing one term from a training
batch (see `base.Regularizer`); `get(name, **kwargs)` builds one by name.
"""

import keras

from keras_interp.regularizers.adversarial_training import AdversarialTraining
from keras_interp.regularizers.base import Batch
from keras_interp.regularizers.base import Regularizer
from keras_interp.regularizers.explanation_consistency import ExplanationConsistency
from keras_interp.regularizers.jacobian_norm import JacobianNorm
from keras_interp.regularizers.jacobian_norm import jacobian_norm_estimate
from keras_interp.regularizers.neuron_sensitivity import NeuronSensitivity
from keras_interp.regularizers.neuron_sensitivity import neuron_sensitivities
from keras_interp.regularizers.neuron_sensitivity import neuron_sensitivity_loss

REGISTRY = {
    "neuron_sensitivity": NeuronSensitivity,
    "jacobian_norm": JacobianNorm,
    "adversarial_training": AdversarialTraining,
    "explanation_consistency": ExplanationConsistency,
}


def get(identifier, **kwargs):
    """Returns a regulariser from a name, a config dict or an instance.

    Args:
        identifier: a name in `REGISTRY` (built with `**kwargs`), a dict as
            returned by `keras.saving.serialize_keras_object`, or a
            `Regularizer` (returned as is).
        **kwargs: constructor arguments, with a name.

    Returns:
        A `Regularizer`.

    Example:

    ```python
    reg = keras_interp.regularizers.get("neuron_sensitivity", weight=1.0, epsilon=0.5)
    ```
    """
    if isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str) and identifier in REGISTRY:
        return REGISTRY[identifier](**kwargs)
    raise ValueError(
        f"Unknown regularizer. Expected one of {sorted(REGISTRY)}, a config dict "
        f"or a Regularizer. Received: identifier={identifier!r}"
    )


__all__ = [
    "AdversarialTraining",
    "Batch",
    "ExplanationConsistency",
    "JacobianNorm",
    "NeuronSensitivity",
    "REGISTRY",
    "Regularizer",
    "get",
    "jacobian_norm_estimate",
    "neuron_sensitivities",
    "neuron_sensitivity_loss",
]
