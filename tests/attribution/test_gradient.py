"""vanilla_gradient and input_x_gradient against exact gradients."""

import keras
import numpy as np
import pytest

from keras_interp import attribution
from tests.conftest import linear
from tests.conftest import mlp
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def test_gradient_of_linear_model_is_its_weight_row():
    model, w, _ = linear(seed=0, in_shape=(5,), classes=4)
    x = np.random.default_rng(1).normal(size=(6, 5)).astype("float32")
    target = np.array([0, 1, 2, 3, 3, 0])
    a = to_numpy(attribution.vanilla_gradient(model, x, target))
    np.testing.assert_array_equal(a, w.T[target])


def test_input_x_gradient_of_linear_model():
    model, w, _ = linear(seed=0, in_shape=(5,), classes=4)
    x = np.random.default_rng(1).normal(size=(6, 5)).astype("float32")
    a = to_numpy(attribution.input_x_gradient(model, x, 2))
    np.testing.assert_allclose(a, x * w[:, 2], rtol=1e-6)


def test_gradient_keeps_input_shape():
    model, w, _ = linear(seed=0, in_shape=(2, 3, 1), classes=4)
    x = np.random.default_rng(1).normal(size=(3, 2, 3, 1)).astype("float32")
    a = to_numpy(attribution.vanilla_gradient(model, x, 1))
    np.testing.assert_array_equal(a, np.broadcast_to(w[:, 1].reshape(2, 3, 1), x.shape))


def test_target_none_explains_the_predicted_class():
    model, w, b = linear(seed=0, in_shape=(5,), classes=4)
    x = np.random.default_rng(1).normal(size=(20, 5)).astype("float32")
    predicted = np.argmax(x @ w + b, axis=1)
    a = to_numpy(attribution.vanilla_gradient(model, x))
    np.testing.assert_array_equal(a, w.T[predicted])


@pytest.mark.parametrize(
    "make_last",
    [
        lambda model: model,  # Dense(..., activation="softmax") built in
        lambda model: keras.Sequential(
            [keras.Input((5,)), *model.layers, keras.layers.Softmax()]
        ),
        lambda model: keras.Sequential(
            [keras.Input((5,)), *model.layers, keras.layers.Activation("softmax")]
        ),
    ],
    ids=["fused", "softmax_layer", "activation_layer"],
)
def test_logits_bypass_a_final_softmax(make_last):
    fused, w, b = linear(seed=0, in_shape=(5,), classes=4, last_activation="softmax")
    model = make_last(fused)
    if model is not fused:
        fused.layers[-1].activation = keras.activations.linear
    x = np.random.default_rng(1).normal(size=(6, 5)).astype("float32")
    a = to_numpy(attribution.vanilla_gradient(model, x, 2))
    np.testing.assert_allclose(a, np.broadcast_to(w[:, 2], x.shape), rtol=1e-6)
    # ... and leaves the model's own output as it was.
    probs = to_numpy(model(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_probabilities_use_the_softmax_gradient():
    model, w, b = linear(seed=0, in_shape=(5,), classes=4, last_activation="softmax")
    x = np.random.default_rng(1).normal(size=(6, 5)).astype("float32")
    z = x.astype("float64") @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    c = 1
    # d p_c / dx = p_c (w_c - sum_k p_k w_k)
    expected = p[:, c : c + 1] * (w[:, c] - p @ w.T)
    a = to_numpy(attribution.vanilla_gradient(model, x, c, output="probabilities"))
    np.testing.assert_allclose(a, expected, rtol=1e-4, atol=1e-7)


def test_non_float_input_is_rejected():
    model, _, _ = linear(seed=0)
    with pytest.raises(TypeError, match="Received: x.dtype=uint8"):
        attribution.vanilla_gradient(model, np.zeros((2, 5), "uint8"))


@pytest.mark.parametrize("target", [4, -1, [0, 9]])
def test_target_out_of_range_is_rejected(target):
    model, _, _ = linear(seed=0, classes=4)
    with pytest.raises(ValueError, match=r"\[0, 4\).*Received: target="):
        attribution.vanilla_gradient(model, np.zeros((2, 5), "float32"), target)


def test_target_of_wrong_length_is_rejected():
    model, _, _ = linear(seed=0, classes=4)
    with pytest.raises(ValueError, match="shape \\(2,\\).*Received: target with shape \\(3,\\)"):
        attribution.vanilla_gradient(model, np.zeros((2, 5), "float32"), [0, 1, 2])


def test_model_with_several_outputs_is_rejected():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, [keras.layers.Dense(3)(inputs), keras.layers.Dense(2)(inputs)])
    with pytest.raises(ValueError, match="single output.*Received: a model with 2 outputs"):
        attribution.vanilla_gradient(model, np.zeros((2, 5), "float32"))


def test_bad_batch_size_and_output_are_rejected():
    model, _, _ = linear(seed=0)
    x = np.zeros((2, 5), "float32")
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        attribution.vanilla_gradient(model, x, batch_size=0)
    with pytest.raises(ValueError, match="Received: output='softmax'"):
        attribution.vanilla_gradient(model, x, output="softmax")


def test_get_resolves_names_and_rejects_unknown():
    assert attribution.get("integrated_gradients") is attribution.integrated_gradients
    assert attribution.get(attribution.smoothgrad) is attribution.smoothgrad
    with pytest.raises(ValueError, match="Received: identifier='lime'"):
        attribution.get("lime")
