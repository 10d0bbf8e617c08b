"""Invariances every method must have: batch size and seed do not leak."""

import numpy as np
import pytest

from keras_interp import attribution
from tests.conftest import linear
from tests.conftest import small_cnn
from tests.conftest import to_numpy

pytestmark = pytest.mark.backends_in_ci

HYPER = {
    "vanilla_gradient": {},
    "input_x_gradient": {},
    "smoothgrad": {"num_samples": 3},
    "integrated_gradients": {"steps": 5},
    "gradient_shap": {"num_samples": 3},
}


@pytest.mark.parametrize("name", sorted(HYPER))
def test_batched_equals_unbatched(name):
    method = attribution.get(name)
    model = small_cnn(seed=0)
    x = np.random.default_rng(0).uniform(size=(4, 10, 10, 2)).astype("float32")
    one = method(model, x, batch_size=1, seed=5, **HYPER[name])
    many = method(model, x, batch_size=64, seed=5, **HYPER[name])
    np.testing.assert_allclose(to_numpy(one), to_numpy(many), rtol=1e-5, atol=1e-6)
    assert tuple(one.shape) == x.shape


class CountingModel:
    """Wraps a model and records the batch size of every call."""

    def __init__(self, model):
        self.model = model
        self.layers = model.layers
        self.outputs = model.outputs
        self.variables = model.variables
        self.calls = []

    def __call__(self, x, training=False):
        self.calls.append(int(x.shape[0]))
        return self.model(x, training=training)


def test_path_points_are_evaluated_in_full_chunks(monkeypatch):
    from keras_interp import backend

    # Run eagerly so every call is seen (a compiled one runs Python once).
    monkeypatch.setattr(backend, "compiled", lambda fn, variables=(): fn)
    model = CountingModel(small_cnn(seed=0))
    x = np.random.default_rng(0).uniform(size=(6, 10, 10, 2)).astype("float32")
    attribution.integrated_gradients(model, x, 0, steps=50, batch_size=64)
    gradient_calls = model.calls[1:]  # the first call finds the class count
    # 300 path points in ceil(300 / 64) = 5 calls, never one per example.
    assert gradient_calls == [64, 64, 64, 64, 44]


def test_compiled_gradient_follows_new_weights():
    """The compiled gradient is cached per model; it must read the weights
    at each call, not the ones it was traced with."""
    model, w, b = linear(seed=0, in_shape=(5,), classes=4)
    x = np.random.default_rng(1).normal(size=(3, 5)).astype("float32")
    first = to_numpy(attribution.vanilla_gradient(model, x, 1))
    model.set_weights([2 * w, b])
    second = to_numpy(attribution.vanilla_gradient(model, x, 1))
    np.testing.assert_array_equal(first, np.broadcast_to(w[:, 1], x.shape))
    np.testing.assert_array_equal(second, np.broadcast_to(2 * w[:, 1], x.shape))


@pytest.mark.parametrize("name", ["smoothgrad", "gradient_shap", "integrated_gradients"])
def test_chunks_across_example_blocks_and_draw_groups(name, monkeypatch):
    """Tiny blocks and draw groups force every chunk boundary case; the
    result must still not depend on batch_size."""
    from keras_interp import _sampling

    method = attribution.get(name)
    model = small_cnn(seed=0)
    x = np.random.default_rng(0).uniform(size=(5, 10, 10, 2)).astype("float32")
    results = [to_numpy(method(model, x, batch_size=64, seed=5, **HYPER[name]))]
    monkeypatch.setattr(_sampling, "EXAMPLE_BLOCK", 2)
    monkeypatch.setattr(_sampling, "DRAW_ROWS", 4)
    small = [to_numpy(method(model, x, batch_size=b, seed=5, **HYPER[name])) for b in (1, 3, 64)]
    np.testing.assert_allclose(small[0], small[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small[0], small[2], rtol=1e-5, atol=1e-6)
    if name == "integrated_gradients":  # deterministic: blocks change nothing
        np.testing.assert_allclose(small[0], results[0], rtol=1e-5, atol=1e-6)
