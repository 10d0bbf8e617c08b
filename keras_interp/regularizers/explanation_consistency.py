"""Explicit explanation consistency: the "Naive" baseline of ATEX (paper 2, §3.2, Eq. 2)."""

import keras

from keras_interp import _checks
from keras_interp import backend
from keras_interp.attribution._scores import score_model
from keras_interp.regularizers.base import Regularizer


def _explained_classes(y):
    """One int32 class index per row: `[B]` or `[B, 1]` indices, else the argmax of `[B, C]`."""
    if len(y.shape) == 2 and y.shape[-1] != 1:
        return keras.ops.cast(keras.ops.argmax(y, axis=-1), "int32")
    return keras.ops.cast(keras.ops.reshape(y, (-1,)), "int32")


@keras.saving.register_keras_serializable(package="keras_interp")
class ExplanationConsistency(Regularizer):
    """Explanation consistency in a neighbourhood, ATEX's "Naive" baseline (paper 2, §3.2, Eq. 2).

    Eq. 2 asks the explanation of every neighbour `x'` of a training
    sample `x` to equal the explanation at `x`, and the neighbours to be
    classified correctly:
    `L(g(x), y) + sum_{x'} [alpha2 L(g(x'), y) + d(phi(g, x'), phi(g, x))]`.
    This regulariser computes, for a batch of B samples,

    `term = (1/K) sum_k [L(g(x_k), y) + d(phi(g, x_k), phi(g, x))]`

    and `RegularizedModel` trains on `L(g(x), y) + weight * term`: Eq. 2
    with `alpha1 = 1`, the inner sum over neighbours replaced by a mean (so
    `weight` keeps its meaning whatever K), and both `alpha2` and the
    distance scaled by `weight`. Here

    - `x_k = x + u_k`, `u_k ~ U(-epsilon, epsilon)` independently per
      feature, K = `num_neighbors` neighbours per sample. The paper leaves
      the neighbourhood `N(x, epsilon)` open; we take the L-inf ball that
      the explanation-manipulation attack searches (§3.1 Eq. 1, §5.2;
      `keras_interp.attacks.manipulate_explanation`), and do not clip the
      neighbours to a data range. The noise is one draw
      `keras.random.uniform(shape, -epsilon, epsilon, dtype=x.dtype,
      seed=batch.seed)` of shape `[K * B, ...]`, neighbour-major (rows
      `k * B` to `(k + 1) * B - 1` are `x_k`), so with
      `RegularizedModel(..., seed=s)` the i-th regulariser's neighbours are
      reproducible from
      `keras_interp._seeds.generator(keras_interp._seeds.mix(s, 0, i))`
      (see `RegularizedModel`). Under a
      `tf.distribute` strategy each replica takes its rows of that draw
      for the global batch (`keras_interp.backend.draw_rows`).
    - `phi(g, z)` is the vanilla gradient of the logit of the labelled
      class with respect to the input (a final softmax is bypassed), the
      explanation paper 2 attacks and evaluates. The labelled class is
      `y` for class indices (`[B]` or `[B, 1]`) and `argmax(y)` for
      one-hot or soft labels `[B, C]` (so label smoothing does not change
      which class is explained). The clean batch and its K * B neighbours
      get their explanations from one differentiable gradient call on the
      stacked rows `[x; x_1; ...; x_K]`, with the model in inference mode
      (no dropout, batch-norm moving statistics), as attribution methods
      see it. Both `phi(g, x_k)` and `phi(g, x)` are differentiated: the
      paper writes both as functions of g and fixes no target.
    - `d(a, b) = ||a - b||_2^2`, summed over features per example and
      averaged over the batch and the K neighbours (the paper leaves `d`
      open); it ignores `sample_weight`.
    - `L(g(x_k), y)` is the compiled loss (with `sample_weight` and the
      model's own `losses`) on the prediction for neighbour k, with the
      model in the step's mode (`training=True` during `fit`, like the
      clean prediction).

    Training differentiates through an input gradient (double backprop):
    one step costs a forward pass on K * B rows and a forward-backward
    pass on (K + 1) * B rows on top of the usual step, the cost that makes
    Naive 5 times slower than ATEX in paper 2 (§5.2).

    Args:
        weight: weight of the term, >= 0 (`alpha2` of Eq. 2, which also
            scales the explanation distance).
        epsilon: half-width of the uniform neighbourhood, > 0, in input
            units. Defaults to 0.1.
        num_neighbors: K, neighbours per sample, >= 1. Defaults to 4.

    Example:

    ```python
    model = keras_interp.RegularizedModel(
        base,
        [keras_interp.regularizers.ExplanationConsistency(1.0, epsilon=0.1)],
        seed=0,
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y)  # logs "explanation_consistency"
    ```
    """

    name = "explanation_consistency"

    def __init__(self, weight=1.0, epsilon=0.1, num_neighbors=4):
        self.weight = _checks.non_negative(weight, "weight")
        self.epsilon = _checks.positive(epsilon, "epsilon")
        self.num_neighbors = _checks.positive_int(num_neighbors, "num_neighbors")

    def __call__(self, batch):
        model, k = batch.model, self.num_neighbors
        x = keras.ops.convert_to_tensor(batch.x)
        if "float" not in keras.backend.standardize_dtype(x.dtype):
            x = keras.ops.cast(x, keras.config.floatx())
        copies = keras.ops.tile(x, (k,) + (1,) * (len(x.shape) - 1))
        noise = backend.draw_rows(
            lambda s: keras.random.uniform(
                s, minval=-self.epsilon, maxval=self.epsilon, dtype=x.dtype, seed=batch.seed
            ),
            keras.ops.shape(copies),
            copies=k,
        )
        neighbors = copies + noise

        classes = keras.ops.tile(_explained_classes(batch.y), (k + 1,))[:, None]
        logits = score_model(model, "logits")
        phi = backend.grad(
            lambda z: keras.ops.take_along_axis(logits(z), classes, axis=1),
            create_graph=True,
        )(keras.ops.concatenate([x, neighbors], axis=0))
        phi = keras.ops.reshape(phi, (k + 1, keras.ops.shape(x)[0], -1))
        squared = keras.ops.sum((phi[1:] - phi[:1]) ** 2, axis=-1)
        # The mean, as 0 rather than 0/0 for a tf.distribute replica with no rows.
        count = keras.ops.maximum(keras.ops.cast(keras.ops.size(squared), squared.dtype), 1.0)
        distance = keras.ops.sum(squared) / count

        predictions = model(neighbors, training=batch.training)
        # `batch.loss` scores a prediction of the batch's own size against
        # its labels (and sample weights): one call per neighbour.
        predictions = keras.ops.reshape(predictions, (k, -1, predictions.shape[-1]))
        neighbor_loss = sum(batch.loss(predictions[i]) for i in range(k)) / k
        return neighbor_loss + distance

    def get_config(self):
        return {
            "weight": self.weight,
            "epsilon": self.epsilon,
            "num_neighbors": self.num_neighbors,
        }
