"""backend.grad against closed forms and finite differences, per backend."""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import backend
from tests.conftest import mlp
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def test_grad_of_closed_form():
    a = np.array([[1.0, -2.0, 3.0]], "float32")
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    g = backend.grad(
        lambda x: keras.ops.sum(keras.ops.convert_to_tensor(a) * x**2 + keras.ops.sin(x), axis=1)
    )
    np.testing.assert_allclose(to_numpy(g(x)), 2 * a * x + np.cos(x), rtol=1e-6)


def test_grad_of_unconnected_input_is_zero():
    x = np.ones((2, 3), "float32")
    g = backend.grad(lambda x: keras.ops.ones((2,)))(x)
    np.testing.assert_array_equal(to_numpy(g), np.zeros((2, 3)))


def test_gradient_is_differentiable_again_with_respect_to_input():
    # d/dx sum(d/dx sum(x^3)) = d/dx sum(3x^2) = 6x
    x = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    inner = backend.grad(lambda x: x**3, create_graph=True)
    second = backend.grad(inner)(x)
    np.testing.assert_allclose(to_numpy(second), 6 * x, rtol=1e-6)


def test_unsupported_backend_names_it(monkeypatch):
    monkeypatch.setattr(keras.config, "backend", lambda: "numpy")
    with pytest.raises(ValueError, match="Received: keras.config.backend\\(\\)='numpy'"):
        backend.grad(lambda x: x)


def _weight_gradient(penalty, model):
    """d penalty() / d trainable weights, by the active framework's own
    outer differentiation (what Keras' train step does)."""
    name = keras.config.backend()
    variables = model.trainable_variables
    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = penalty()
        grads = tape.gradient(value, [v.value for v in variables])
        # The last bias does not reach an input gradient: TF says None.
        return [np.zeros(v.shape) if g is None else g.numpy() for g, v in zip(grads, variables)]
    if name == "jax":
        import jax

        def of_values(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return penalty()

        grads = jax.grad(of_values)([v.value for v in variables])
        return [np.asarray(g) for g in grads]
    if name == "torch":
        import torch

        value = penalty()
        grads = torch.autograd.grad(
            value, [v.value for v in variables], allow_unused=True, materialize_grads=True
        )
        return [g.detach().cpu().numpy() for g in grads]
    raise NotImplementedError(name)


def test_double_backprop_matches_finite_difference():
    """d/dw ||dL/dx||^2, the penalty of Jacobian regularisation, against a
    central difference along a random weight direction."""
    model, _ = mlp(seed=3, in_shape=(5,), hidden=7, classes=3)
    x = np.random.default_rng(1).normal(size=(4, 5)).astype("float32")
    target = np.array([0, 1, 2, 1])

    def penalty():
        def loss(x):
            logits = model(x)
            return keras.ops.take_along_axis(logits, target[:, None], axis=1)

        g = backend.grad(loss, create_graph=True)(x)
        return keras.ops.sum(g**2)

    analytic = _weight_gradient(penalty, model)
    rng = np.random.default_rng(2)
    direction = [rng.normal(size=w.shape).astype("float32") for w in analytic]
    directional = sum(float(np.sum(g * d)) for g, d in zip(analytic, direction))

    base = [to_numpy(v) for v in model.trainable_variables]

    def penalty_at(step):
        model.set_weights([w + step * d for w, d in zip(base, direction)])
        return float(to_numpy(penalty()))

    h = 1e-2
    finite = (penalty_at(h) - penalty_at(-h)) / (2 * h)
    model.set_weights(base)
    assert abs(directional) > 1e-3  # the check is not vacuous
    np.testing.assert_allclose(directional, finite, rtol=2e-3)


def test_remat_sum_equals_the_sum_and_its_closed_form_gradient():
    rng = np.random.default_rng(3)
    chunks = rng.normal(size=(3, 2, 4)).astype("float32")
    w = rng.normal(size=(4,)).astype("float32")

    def fn(chunk, w):
        return keras.ops.stack([keras.ops.sum(keras.ops.tanh(chunk * w)), keras.ops.sum(chunk**2 * w)])

    total = backend.remat_sum(fn, keras.ops.convert_to_tensor(chunks), keras.ops.convert_to_tensor(w))
    t = np.tanh(chunks * w)
    np.testing.assert_allclose(to_numpy(total), [t.sum(), (chunks**2 * w).sum()], rtol=1e-5)
    g = backend.grad(lambda w: backend.remat_sum(fn, keras.ops.convert_to_tensor(chunks), w))(w)
    expected = (chunks * (1 - t**2)).sum(axis=(0, 1)) + (chunks**2).sum(axis=(0, 1))
    np.testing.assert_allclose(to_numpy(g), expected, rtol=1e-5)


@pytest.mark.tensorflow_only
def test_many_models_explained_and_scored_trace_without_retracing_warnings(caplog):
    """One compiled function per model traces once: TensorFlow's retracing
    detector, which counts traces per Python function over every model,
    stays silent (issue 14 §6; before, 8 models gave 16 warnings)."""
    import logging

    from keras_interp.experiments import protocol
    from tests.conftest import small_cnn

    x = np.random.default_rng(0).uniform(size=(70, 10, 10, 2)).astype("float32")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for i in range(8):
            model = small_cnn(i)
            ki.attribution.integrated_gradients(model, x[: 7 + i], steps=3, batch_size=16)
            protocol.accuracy(model, x, np.zeros(70, int), batch_size=32)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
