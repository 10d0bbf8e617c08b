"""Keras layers keras_interp is built from, reusable in any model."""

import keras

from keras_interp import _checks


@keras.saving.register_keras_serializable(package="keras_interp")
class SpherePerturbation(keras.layers.Layer):
    """Draws `num_perturbations` random points on the L2 sphere around each
    sample.

    NsLoss's sampling (paper 1, §4.2, step 1): for every sample `x`, points
    `x_k = x + epsilon * u_k / ||u_k||` with `u_k` standard Gaussian over
    all input dimensions of the sample, so `||x_k - x|| = epsilon` exactly.
    In training the layer returns the perturbed copies, perturbation-major:
    shape `[num_perturbations * B, ...]`, row `k * B + m` perturbing sample
    `m` (reshape to `[num_perturbations, B, ...]` to index them). At
    inference it returns its input unchanged.

    The seed generator lives on the layer, so a model that contains it
    threads its state through stateless (JAX) training.

    Args:
        num_perturbations: points per sample, N >= 1.
        epsilon: radius of the sphere, > 0.
        seed: seed of the draws. Defaults to None (unseeded).

    Example:

    ```python
    layer = keras_interp.layers.SpherePerturbation(5, 0.1, seed=0)
    x_p = layer(x, training=True)  # [5 * batch, ...]
    ```
    """

    def __init__(self, num_perturbations, epsilon, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_perturbations = _checks.positive_int(
            num_perturbations, "num_perturbations"
        )
        self.epsilon = _checks.positive(epsilon, "epsilon")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        n = self.num_perturbations
        shape = keras.ops.shape(inputs)
        noise = keras.random.normal(
            (n * shape[0],) + tuple(shape[1:]), dtype=inputs.dtype, seed=self.seed_generator
        )
        axes = tuple(range(1, len(inputs.shape)))
        norms = keras.ops.sqrt(keras.ops.sum(noise**2, axis=axes, keepdims=True))
        tiled = keras.ops.tile(inputs, (n,) + (1,) * len(axes))
        return tiled + self.epsilon * noise / norms

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_perturbations=self.num_perturbations,
            epsilon=self.epsilon,
            seed=self.seed,
        )
        return config
