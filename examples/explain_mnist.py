"""Train the small CNN on the embedded MNIST digits and compare attribution
methods on a few test digits, on whichever backend KERAS_BACKEND selects.

    KERAS_BACKEND=jax python examples/explain_mnist.py
"""

import keras
import numpy as np

import keras_interp as ki

keras.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = ki.data.load("mnist5k")
model = ki.models.small_cnn()
model.compile(
    "adam",
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=2)

x = x_test[:6]
maps = {
    name: keras.ops.convert_to_numpy(ki.attribution.get(name)(model, x, seed=0))
    for name in ("vanilla_gradient", "smoothgrad", "integrated_gradients", "gradient_shap")
}

# Integrated Gradients is complete: the attributions of each digit add up to
# the change in its logit between the black image and the digit.
logits = keras.ops.convert_to_numpy(model(x))
black = keras.ops.convert_to_numpy(model(np.zeros_like(x)))
pred = logits.argmax(1)
rows = np.arange(len(x))
print("sum of IG:           ", maps["integrated_gradients"].reshape(len(x), -1).sum(1).round(3))
print("f(x) - f(black):     ", (logits[rows, pred] - black[rows, pred]).round(3))

ki.report.attribution_figure(x, maps, "explain_mnist.png")
print("saved explain_mnist.png")
