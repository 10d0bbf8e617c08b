"""PGD adversarial training (Madry et al. 2018), NsLoss paper's baseline (§5.1)."""

import keras

from keras_interp import _checks
from keras_interp import attacks
from keras_interp.regularizers.base import Regularizer


@keras.saving.register_keras_serializable(package="keras_interp")
class AdversarialTraining(Regularizer):
    """Madry et al. (2018) adversarial training: the loss is taken on a PGD batch.

    Each step attacks the batch with `keras_interp.attacks.pgd` (random
    start, `steps` steps, projected onto the epsilon ball and clipped to
    `clip`) against the current weights, in inference mode, and the
    compiled loss is evaluated on the adversarial batch instead of the
    clean one. The attack itself is not differentiated (Danskin's theorem,
    as in Madry et al.). The logged term, `adversarial_loss`, is that loss;
    training accuracy in the logs stays the clean accuracy. NsLoss paper
    Tables 1-2 use L-inf, 7 steps.

    Args:
        epsilon: radius of the threat ball, > 0, in input units.
        steps: PGD steps. Defaults to 7.
        step_size: size of one step. Defaults to `2.5 * epsilon / steps`.
        norm: `"linf"` (default) or `"l2"`.
        random_start: start from a random point of the ball. Defaults to
            True.
        clip: `(lo, hi)` data range the adversarial batch is clipped to, or
            None.

    Example:

    ```python
    model = keras_interp.RegularizedModel(
        base, [keras_interp.regularizers.AdversarialTraining(0.1, clip=(0, 1))]
    )
    ```
    """

    name = "adversarial_loss"
    replaces_loss = True

    def __init__(
        self, epsilon, steps=7, step_size=None, norm="linf", random_start=True, clip=None
    ):
        self.epsilon = _checks.positive(epsilon, "epsilon")
        self.steps = _checks.positive_int(steps, "steps")
        self.step_size = None if step_size is None else _checks.positive(step_size, "step_size")
        if norm not in attacks.NORMS:
            raise ValueError(f"`norm` must be one of {attacks.NORMS}. Received: norm={norm!r}")
        self.norm = norm
        self.random_start = bool(random_start)
        self.clip = _checks.clip_range(clip)

    def __call__(self, batch):
        x_adv = attacks.projected_gradient_descent(
            batch.model,
            batch.x,
            batch.y,
            epsilon=self.epsilon,
            steps=self.steps,
            step_size=2.5 * self.epsilon / self.steps if self.step_size is None else self.step_size,
            norm=self.norm,
            random_start=self.random_start,
            clip=self.clip,
            # Under tf.distribute, `pgd` draws the random start for the
            # global batch and keeps this replica's rows (backend.draw_rows).
            seed=batch.seed,
        )
        x_adv = keras.ops.stop_gradient(x_adv)
        return batch.loss(batch.model(x_adv, training=batch.training))

    def get_config(self):
        return {
            "epsilon": self.epsilon,
            "steps": self.steps,
            "step_size": self.step_size,
            "norm": self.norm,
            "random_start": self.random_start,
            "clip": None if self.clip is None else list(self.clip),
        }
