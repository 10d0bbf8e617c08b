"""Plain gradient attributions: the gradient, and gradient times input."""

import keras

from keras_interp import _sampling
from keras_interp.attribution._scores import prepare


def vanilla_gradient(
    model, x, target=None, *, output="logits", batch_size=None, seed=None
):
    """Gradient of the target score with respect to the input (saliency).

    Simonyan et al. 2014: `a(x) = d f_c(x) / dx`, with `f_c` the score of
    class `c`. This is the explanation phi the ATEX paper (§3) attacks and
    defends, and the building block of every other method here.

    Args:
        model: a Keras model mapping a batch to scores `[batch, classes]`.
        x: float array `[batch, ...]`, the inputs to explain.
        target: class to explain: None for each example's predicted class,
            an int for all examples, or one int per example.
        output: `"logits"` (default) explains the pre-softmax scores: a
            final `Softmax` layer is bypassed and a final layer with
            `activation="softmax"` runs with a linear activation on the same
            weights; other models are used as they are. `"probabilities"`
            explains the model's output as it is.
        batch_size: most inputs per gradient call. Defaults to 64.
        seed: unused; accepted so every method has one signature.

    Returns:
        A backend tensor shaped like `x` (use `keras.ops.convert_to_numpy`
        for a NumPy array).

    Example:

    ```python
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.random.rand(8, 4).astype("float32")
    a = keras_interp.attribution.vanilla_gradient(model, x, target=1)
    # a[i] == model.layers[0].kernel[:, 1] for every i
    ```
    """
    x, gradient, targets, batch_size = prepare(model, x, target, output, batch_size)

    def term(s, e, drawn):
        return gradient(_sampling.rows(x, e), _sampling.rows(targets, e))

    return _sampling.sample_sum(term, x.shape[0], 1, batch_size)


def input_x_gradient(
    model, x, target=None, *, output="logits", batch_size=None, seed=None
):
    """Input times gradient, `x * d f_c(x) / dx` (Shrikumar et al. 2016).

    Equal to Integrated Gradients with a zero baseline for a model that is
    linear in `x`. Arguments and return value are those of
    `vanilla_gradient`.

    Example:

    ```python
    a = keras_interp.attribution.input_x_gradient(model, x)
    ```
    """
    grads = vanilla_gradient(
        model, x, target, output=output, batch_size=batch_size, seed=seed
    )
    return keras.ops.convert_to_tensor(x, grads.dtype) * grads
