"""Keras layers keras_interp is built from, reusable in any model."""

import keras

from keras_interp import _checks
from keras_interp import _seeds
from keras_interp import backend


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
    threads its state through stateless (JAX) training, and the layer
    saves its state with the model (Keras saves no seed-generator state),
    so a reloaded model continues the same draws. The generator is seeded
    `keras_interp._seeds.mix(seed)`, a hash of `seed`: on PyTorch a
    `keras.random.SeedGenerator(s)` seeds its k-th draw `s + k`, so layers
    seeded `s` and `s + 1` would otherwise repeat each other's draws
    shifted by one. Under a
    `tf.distribute` strategy each replica perturbs its own examples with
    its rows of one draw for the global batch, so the draws are those of
    one device training on that batch.

    Args:
        num_perturbations: points per sample, N >= 1.
        epsilon: radius of the sphere, > 0.
        seed: int seed of the draws, kept as given in the config. Defaults
            to None: a seed drawn from NumPy's global state (which
            `keras.utils.set_random_seed` sets).

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
        self.seed = _seeds.check(seed)
        self.seed_generator = _seeds.generator(self.seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        n = self.num_perturbations
        shape = keras.ops.shape(inputs)
        # Under tf.distribute each replica keeps its examples' rows of a
        # draw for the global batch (see `backend.draw_rows`).
        noise = backend.draw_rows(
            lambda s: keras.random.normal(s, dtype=inputs.dtype, seed=self.seed_generator),
            (n * shape[0],) + tuple(shape[1:]),
            copies=n,
        )
        axes = tuple(range(1, len(inputs.shape)))
        norms = keras.ops.sqrt(keras.ops.sum(noise**2, axis=axes, keepdims=True))
        tiled = keras.ops.tile(inputs, (n,) + (1,) * len(axes))
        return tiled + self.epsilon * noise / norms

    def compute_output_shape(self, input_shape):
        return input_shape

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store["seed_state"] = keras.ops.convert_to_numpy(self.seed_generator.state.value)

    def load_own_variables(self, store):
        # Files saved before the state was stored have no "seed_state".
        keys = list(store.keys())
        super().load_own_variables({k: store[k] for k in keys if k != "seed_state"})
        if "seed_state" in keys:
            self.seed_generator.state.assign(store["seed_state"])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_perturbations=self.num_perturbations,
            epsilon=self.epsilon,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_interp")
class Softplus(keras.layers.Layer):
    """Softplus activation with sharpness `beta`, a smooth stand-in for ReLU.

    Computes `softplus(beta * x) / beta = log(1 + exp(beta * x)) / beta`
    elementwise, in a numerically stable form (no overflow for large
    `beta * x`). It is within `log(2) / beta` of `relu(x)` everywhere (the
    gap is largest at `x = 0`) and tends to ReLU as `beta` grows, but unlike
    ReLU its second derivative, `beta * sigmoid(beta x) (1 - sigmoid(beta
    x))`, is non-zero. Explanation attacks and penalties that differentiate
    a gradient need that curvature: on a ReLU network they see zero
    second-order gradients.

    This is the "beta-smoothing" of Dombrowski et al. (2019), "Explanations
    can be manipulated and geometry is to blame", the B-smoothing baseline
    of the ATEX paper (paper 2, §5.2), whose manipulation attacks run on
    softplus networks. `keras_interp.models.with_softplus` swaps it in for
    every ReLU of a trained model.

    Args:
        beta: sharpness, > 0. Larger values are closer to ReLU; `beta=1`
            is the plain `keras.activations.softplus`. Defaults to 1.0.
        **kwargs: base layer keyword arguments, such as `name` and `dtype`.

    Returns:
        A tensor shaped like the input: `softplus(beta * inputs) / beta`.

    Example:

    ```python
    layer = keras_interp.layers.Softplus(beta=10.0)
    layer(np.array([-1.0, 0.0, 1.0]))  # ~[4.5e-6, 0.0693, 1.0000045]
    ```
    """

    def __init__(self, beta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = _checks.positive(beta, "beta")
        self.supports_masking = True

    def call(self, inputs):
        return keras.ops.softplus(inputs * self.beta) / self.beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(beta=self.beta)
        return config
