"""Random layers in NsLoss's pass: one draw per example, shared by its copies.

NsLoss sends each example and its N perturbed copies through the network
as `(N + 1) * B` rows and measures how far each copy's activations move
from the example's. A `Dropout` layer would draw an independent mask per
row, so the term would measure mask noise, not sensitivity to the input:
with dropout the term at epsilon 0.01 was 88 times the term at 1.0.
Paper 1 defines the sensitivity of one network to its input, so the
example and its copies must see the same network: here every random
layer draws once for the B clean rows, with its own seed generator and in
its own training mode, and that draw is repeated over the N + 1 blocks.
"""

import keras

# Layers whose randomness is a mask multiplying their input, and whose
# mask is what the layer returns for an input of ones.
MULTIPLICATIVE = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
)
# Layers whose randomness is noise added to their input: what they return
# for an input of zeros.
ADDITIVE = (keras.layers.GaussianNoise,)


class _SharedDraw(keras.layers.Layer):
    """Runs a random layer once per example and repeats its draw over the blocks.

    The batch size is known only when the pass runs, so the split is done
    inside a layer's `call`.
    """

    def __init__(self, layer, copies):
        super().__init__(name=f"{layer.name}_shared")
        self.layer, self.copies = layer, copies

    def call(self, rows, training=None):
        batch = keras.ops.shape(rows)[0] // self.copies
        block = rows[:batch]
        multiplicative = isinstance(self.layer, MULTIPLICATIVE)
        start = keras.ops.ones_like(block) if multiplicative else keras.ops.zeros_like(block)
        draw = self.layer(start, training=training)
        draw = keras.ops.tile(draw, (self.copies,) + (1,) * (len(rows.shape) - 1))
        return rows * draw if multiplicative else rows + draw

    def compute_output_shape(self, input_shape):
        return input_shape


def call(copies):
    """A `hooks.probe` `call` that shares random layers' draws over `copies` blocks.

    Args:
        copies: N + 1, the blocks of B rows in the pass.

    Returns:
        `call(layer, *args, **kwargs)`.
    """

    def run(layer, *args, **kwargs):
        if not isinstance(layer, MULTIPLICATIVE + ADDITIVE):
            return layer(*args, **kwargs)
        return _SharedDraw(layer, copies)(args[0], training=kwargs.get("training"))

    return run


def unsupported(layers):
    """The random layers among `layers` whose draws cannot be shared this way."""
    random_kinds = (keras.layers.AlphaDropout,) if hasattr(keras.layers, "AlphaDropout") else ()
    augmenting = tuple(
        getattr(keras.layers, name)
        for name in (
            "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop",
            "RandomContrast", "RandomBrightness", "RandomColorJitter", "RandomShear",
            "RandomErasing", "RandomGaussianBlur", "RandomGrayscale", "RandomHue",
            "RandomSaturation", "RandomSharpness", "RandomInvert", "RandomPosterization",
            "RandomPerspective", "RandomElasticTransform", "RandAugment", "AugMix", "CutMix",
            "MixUp", "RandomColorDegeneration", "RandomApply",
        )
        if hasattr(keras.layers, name)
    )
    return [layer for layer in layers if isinstance(layer, random_kinds + augmenting)]
