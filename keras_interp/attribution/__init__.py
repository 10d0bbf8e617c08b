"""Attribution methods: `method(model, x, target=None, **hyper) -> a`.

Every method explains one score per example (a class's logit by default)
with an array shaped like `x`, and every one is built on one gradient
contract (`keras_interp.backend.grad`), evaluated in batched chunks.
"""

from keras_interp.attribution.gradient import input_x_gradient
from keras_interp.attribution.gradient import vanilla_gradient
from keras_interp.attribution.gradient_shap import gradient_shap
from keras_interp.attribution.integrated_gradients import integrated_gradients
from keras_interp.attribution.smoothgrad import smooth
from keras_interp.attribution.smoothgrad import smoothgrad

_METHODS = {
    f.__name__: f
    for f in (
        vanilla_gradient,
        input_x_gradient,
        smoothgrad,
        integrated_gradients,
        gradient_shap,
    )
}


def get(identifier):
    """Returns the attribution method named `identifier`.

    Args:
        identifier: a method name (`"integrated_gradients"`, ...) or a
            callable, returned as it is.

    Returns:
        The method, a function `method(model, x, target=None, **hyper)`.

    Example:

    ```python
    ig = keras_interp.attribution.get("integrated_gradients")
    ```
    """
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _METHODS:
        return _METHODS[identifier]
    raise ValueError(
        f"Unknown attribution method. Expected one of {sorted(_METHODS)} or a "
        f"callable. Received: identifier={identifier!r}"
    )


__all__ = [
    "get",
    "gradient_shap",
    "input_x_gradient",
    "integrated_gradients",
    "smooth",
    "smoothgrad",
    "vanilla_gradient",
]
