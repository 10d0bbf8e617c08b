"""Jacobian regularisation (Hoffman et al. 2019), NsLoss paper's baseline (§2.2, §5.1)."""

import keras

from keras_interp import _checks
from keras_interp import _seeds
from keras_interp import backend
from keras_interp.attribution._scores import score_model
from keras_interp.regularizers.base import Regularizer


def jacobian_norm_estimate(model, x, num_projections=1, seed=None):
    """Random-projection estimate of `(1/2) ||J||_F^2` per batch (Hoffman et al. 2019).

    `J` is the Jacobian of the model's logits with respect to one input
    sample. With `v` uniform on the unit sphere of the C-dimensional output
    space, `E[||v^T J||^2] = ||J||_F^2 / C`, so
    `R = (1/2) * C / (n B) * sum_{k, b} ||v_k^T J(x_b)||^2`
    is an unbiased estimate of the batch mean of `(1/2) ||J||_F^2`. Each
    sample gets its own n projections; all `n * B` vector-Jacobian products
    come from one differentiable gradient call.

    The model runs in inference mode (no dropout, batch-norm moving
    statistics), so the extra pass changes no model state.

    Args:
        model: a Keras classifier returning logits (a final softmax is
            bypassed).
        x: float batch `[B, ...]`.
        num_projections: n, random output directions per sample, >= 1.
        seed: an int (hashed, `keras_interp._seeds.generator`), None (a
            seed drawn from NumPy's global state) or a
            `keras.random.SeedGenerator`, drawn from as it is (a training
            step's own generator).

    Returns:
        A scalar tensor, differentiable with respect to the model's weights.

    Example:

    ```python
    r = keras_interp.regularizers.jacobian_norm_estimate(model, x, 4, seed=0)
    ```
    """
    num_projections = _checks.positive_int(num_projections, "num_projections")
    seed = _seeds.generator(seed)
    logits = score_model(model, "logits")
    num_classes = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    xs = keras.ops.tile(x, (num_projections,) + (1,) * (len(x.shape) - 1))
    if num_classes is None:
        num_classes = logits(x[:1]).shape[-1]
    rows = keras.ops.shape(xs)[0]
    # One draw for the global batch, sliced per replica under tf.distribute.
    v = backend.draw_rows(
        lambda s: keras.random.normal(s, dtype=xs.dtype, seed=seed),
        (rows, num_classes),
        copies=num_projections,
    )
    v = v / keras.ops.sqrt(keras.ops.sum(v**2, axis=-1, keepdims=True))
    # The products in float32, whatever the model computes in (mixed precision).
    vjp = backend.grad(
        lambda z: keras.ops.sum(v * keras.ops.cast(logits(z), v.dtype), axis=-1), create_graph=True
    )(xs)
    squared = keras.ops.sum(keras.ops.reshape(vjp, (rows, -1)) ** 2, axis=-1)
    # The mean, as 0 rather than 0/0 for a tf.distribute replica with no rows.
    count = keras.ops.maximum(keras.ops.cast(rows, squared.dtype), 1.0)
    return 0.5 * num_classes * keras.ops.sum(squared) / count


@keras.saving.register_keras_serializable(package="keras_interp")
class JacobianNorm(Regularizer):
    """Jacobian regularisation (Hoffman et al. 2019; NsLoss paper §2.2).

    Adds `weight * R` to the loss, `R` the random-projection estimate of
    `(1/2) ||J||_F^2` of `jacobian_norm_estimate`, where `J` is the
    Jacobian of the logits with respect to the input. Training
    differentiates through an input gradient (double backprop).

    Args:
        weight: weight of the term, >= 0.
        num_projections: random output directions per sample, >= 1.
            Defaults to 1, as in Hoffman et al.

    Example:

    ```python
    model = keras_interp.RegularizedModel(
        base, [keras_interp.regularizers.JacobianNorm(0.05)], seed=0
    )
    ```
    """

    name = "jacobian_norm"

    def __init__(self, weight, num_projections=1):
        self.weight = _checks.non_negative(weight, "weight")
        self.num_projections = _checks.positive_int(num_projections, "num_projections")

    def __call__(self, batch):
        return jacobian_norm_estimate(batch.model, batch.x, self.num_projections, batch.seed)

    def get_config(self):
        return {"weight": self.weight, "num_projections": self.num_projections}
