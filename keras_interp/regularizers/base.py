"""What a regulariser is: a term computed from one training batch.

`RegularizedModel.compute_loss` builds a `Batch` for every step and asks
each regulariser for its term. Regularisers are plain, stateless,
serialisable objects: anything that changes during `fit` (seed generators,
trackers) lives on the model, because JAX trains statelessly and would drop
state kept anywhere else.
"""

from typing import Any
from typing import Callable
from typing import NamedTuple

import keras


class Batch(NamedTuple):
    """Everything a regulariser may read about the current batch.

    Attributes:
        model: the wrapped Keras model (not the `RegularizedModel`).
        x: the input batch.
        y: the labels, as given to `fit`.
        y_pred: the model's output on `x` (already computed by the trainer).
        sample_weight: as given to `fit`, or None.
        loss: `loss(y_pred) -> scalar`, the compiled loss (plus the model's
            own `losses`) of the batch's labels against any prediction, e.g.
            one on an adversarial batch.
        seed: a `keras.random.SeedGenerator` owned by the model for this
            regulariser (None for regularisers that sample in the forward
            pass). Under a `tf.distribute` strategy every replica holds
            the same state: draw through `keras_interp.backend.draw_rows`
            so replicas draw different rows of one global draw.
        activations: for regularisers with `needs_activations`, one tensor
            per hooked layer, `[(N + 1) * B, ...]`: the activations of the B
            clean rows, then of their N perturbed copies, perturbation-major.
            When the regulariser runs the copies itself (a `chunk_size`),
            only the clean rows' `[B, ...]`.
        perturbed: in that case the N perturbed copies of `x`,
            `[N * B, ...]`, perturbation-major; otherwise None.
        hooked: in that case the hooked-activation network (see
            `RegularizedModel`): `hooked.trainable_values()` and the
            stateless `hooked.activations(rows, trainable_values)`;
            otherwise None.
        training: whether the step is a training step.
    """

    model: keras.Model
    x: Any
    y: Any
    y_pred: Any
    sample_weight: Any
    loss: Callable
    seed: Any
    activations: Any
    training: bool
    perturbed: Any = None
    hooked: Any = None


class Regularizer:
    """Base class of keras_interp's regularisers.

    A subclass sets `name` (the key of its term in the training logs) and
    implements `__call__(batch) -> scalar term`. The model adds
    `weight * term` to the compiled loss, or, for a regulariser with
    `replaces_loss = True` (adversarial training), uses the term as the
    loss itself.

    Subclasses with `needs_activations = True` also define
    `hooked_layers(model)`, `num_perturbations`, `epsilon` and
    `chunk_size`: the model then runs the clean batch and its perturbed
    copies through the hooked layers in its forward pass and hands them
    over in `batch.activations`, or, with a `chunk_size`, runs the clean
    batch and hands over the copies' inputs for the regulariser to run.
    """

    name = "regularizer"
    weight = 1.0
    replaces_loss = False
    needs_activations = False

    def __call__(self, batch):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `__call__(batch)`."
        )

    def get_config(self):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `get_config()`."
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
