"""with_softplus: the ReLU -> softplus(beta) rewrite of ATEX's B-smoothing,
checked against float64 NumPy forward passes of the same weights."""

import keras
import numpy as np
import pytest

from keras_interp import backend
from keras_interp import layers
from keras_interp import models
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend

BETAS = (1.0, 10.0, 100.0)


def _relu(z):
    return np.maximum(z, 0)


def _softplus(beta):
    return lambda z: (np.maximum(beta * z, 0) + np.log1p(np.exp(-np.abs(beta * z)))) / beta


def _numpy_weights(model, seed):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.6, w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    return [w.astype("float64") for w in weights]


def _sequential(seed):
    """Three kinds of ReLU in a row: a Dense activation, a ReLU layer and an
    Activation("relu") layer. Returns the model, its float64 forward pass
    for any activation, and an elementwise bound on |softplus net - ReLU
    net| for a given beta."""
    model = keras.Sequential(
        [
            keras.Input((6,), name="features"),
            keras.layers.Dense(8, activation="relu", name="d1"),
            keras.layers.Dense(8, name="d2"),
            keras.layers.ReLU(name="r2"),
            keras.layers.Dense(8, name="d3"),
            keras.layers.Activation("relu", name="a3"),
            keras.layers.Dense(3, name="out"),
        ],
        name="mlp",
    )
    w1, b1, w2, b2, w3, b3, w4, b4 = _numpy_weights(model, seed)

    def forward(x, act):
        h = act(x @ w1 + b1)
        h = act(h @ w2 + b2)
        h = act(h @ w3 + b3)
        return h @ w4 + b4

    def bound(beta):
        # Each activation adds at most log(2)/beta per unit; softplus is
        # 1-Lipschitz, so earlier gaps pass through |W|.
        c = np.log(2) / beta
        gap = np.full(8, c)
        gap = gap @ np.abs(w2) + c
        gap = gap @ np.abs(w3) + c
        return gap @ np.abs(w4)

    return model, forward, bound


def _functional(seed):
    """A functional graph with a ReLU layer, a Dense ReLU, a residual add
    into Activation("relu") and a nested Sequential block with a ReLU."""
    inputs = keras.Input((6,), name="features")
    h1 = keras.layers.ReLU(name="r1")(keras.layers.Dense(8, name="d1")(inputs))
    h2 = keras.layers.Dense(8, activation="relu", name="d2")(h1)
    h3 = keras.layers.Activation("relu", name="a3")(keras.layers.Add(name="add")([h1, h2]))
    block = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(5, activation="relu", name="s1")], name="block"
    )
    outputs = keras.layers.Dense(3, name="out")(block(h3))
    model = keras.Model(inputs, outputs, name="graph")
    w1, b1, w2, b2, ws, bs, w5, b5 = _numpy_weights(model, seed)

    def forward(x, act):
        h1 = act(x @ w1 + b1)
        h2 = act(h1 @ w2 + b2)
        h3 = act(h1 + h2)
        return act(h3 @ ws + bs) @ w5 + b5

    return model, forward


def _x(seed, shape=(16, 6)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _relu_layers(model):
    """Names of layers (nested models included) still computing a ReLU."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _relu_layers(layer)
        elif isinstance(layer, keras.layers.ReLU) or (
            getattr(layer, "activation", None) is keras.activations.relu
        ):
            found.append(layer.name)
    return found


def test_sequential_matches_numpy_softplus_network_and_tends_to_relu():
    model, forward, bound = _sequential(0)
    x = _x(1)
    relu_out = forward(x.astype("float64"), _relu)
    diffs = []
    for beta in BETAS:
        smooth = models.with_softplus(model, beta)
        out = to_numpy(smooth(x))
        expected = forward(x.astype("float64"), _softplus(beta))
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
        gap = np.abs(out - relu_out)
        assert np.all(gap <= bound(beta) + 1e-5)
        diffs.append(gap.max())
    assert diffs[0] > diffs[1] > diffs[2]
    assert diffs[2] < 0.05
    # The input model still computes the ReLU network.
    np.testing.assert_allclose(to_numpy(model(x)), relu_out, rtol=1e-5, atol=1e-5)


def test_sequential_layers_are_replaced_and_named():
    model, _, _ = _sequential(0)
    model.compile(optimizer="sgd", loss="mse")
    smooth = models.with_softplus(model, 10.0)
    assert isinstance(smooth, keras.Sequential) and smooth.name == "mlp"
    assert smooth.compiled and smooth.optimizer is not model.optimizer
    assert [(layer.name, type(layer).__name__) for layer in smooth.layers] == [
        ("d1", "Dense"),
        ("d1_softplus", "Softplus"),
        ("d2", "Dense"),
        ("r2", "Softplus"),
        ("d3", "Dense"),
        ("a3", "Softplus"),
        ("out", "Dense"),
    ]
    assert all(l.beta == 10.0 for l in smooth.layers if isinstance(l, layers.Softplus))
    assert _relu_layers(smooth) == []
    assert smooth.get_layer("d1").activation is keras.activations.linear
    assert smooth.get_config()["layers"][0]["config"]["name"] == "features"


def test_small_cnn_keeps_weights_and_leaves_the_original_alone():
    model = models.small_cnn()
    before = [w.copy() for w in model.get_weights()]
    smooth = models.with_softplus(model, beta=10)
    assert _relu_layers(smooth) == []
    assert [l.name for l in smooth.layers if isinstance(l, layers.Softplus)] == [
        "conv1_softplus",
        "conv2_softplus",
        "fc1_softplus",
    ]
    assert len(smooth.get_weights()) == len(before)
    for a, b in zip(smooth.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    # Separate variables: changing the copy leaves the original as it was.
    smooth.set_weights([np.zeros_like(w) for w in before])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert _relu_layers(model) == ["conv1", "conv2", "fc1"]
    assert not any(isinstance(l, layers.Softplus) for l in model.layers)


def test_functional_model_with_nested_block():
    model, forward = _functional(2)
    model.compile(optimizer="sgd", loss="mse")
    x = _x(3)
    smooth = models.with_softplus(model, 5.0)
    assert not isinstance(smooth, keras.Sequential) and smooth.name == "graph"
    np.testing.assert_allclose(
        to_numpy(smooth(x)), forward(x.astype("float64"), _softplus(5.0)), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        to_numpy(model(x)), forward(x.astype("float64"), _relu), rtol=1e-5, atol=1e-5
    )
    assert _relu_layers(smooth) == []
    assert _relu_layers(model) == ["r1", "d2", "a3", "s1"]
    names = {l.name: type(l).__name__ for l in smooth.layers}
    assert (names["r1"], names["d2_softplus"], names["a3"]) == ("Softplus",) * 3
    block = smooth.get_layer("block")
    assert [type(l).__name__ for l in block.layers] == ["Dense", "Softplus"]
    assert smooth.compiled
    # The copy trains (compile configuration kept) without touching `model`.
    before = model.get_weights()
    smooth.fit(x, np.zeros((16, 3), "float32"), epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_model_without_relu_is_copied():
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)]
    )
    _numpy_weights(model, 4)
    with pytest.warns(UserWarning, match="no ReLU-family activation"):
        smooth = models.with_softplus(model, 3.0)
    assert smooth is not model
    assert [type(l) for l in smooth.layers] == [type(l) for l in model.layers]
    x = _x(5)
    np.testing.assert_array_equal(to_numpy(smooth(x)), to_numpy(model(x)))
    assert smooth.layers[0].kernel is not model.layers[0].kernel


def test_second_derivative_is_zero_for_relu_and_not_after_smoothing():
    # f(x) = w2 . act(W1^T x + b1). The gradient of sum_i df/dx_i is H 1:
    # zero for ReLU (piecewise linear), and for softplus(beta)
    # W1 (w2 * r * beta s (1 - s)), s = sigmoid(beta z), r = W1^T 1.
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(1)]
    )
    w1, b1, w2, _ = _numpy_weights(model, 6)
    x = _x(7, (5, 4))
    beta = 2.0

    def hessian_row_sums(m):
        first = backend.grad(lambda t: m(t)[:, 0], create_graph=True)
        return to_numpy(backend.grad(lambda t: keras.ops.sum(first(t), axis=1))(x))

    np.testing.assert_array_equal(hessian_row_sums(model), 0.0)
    s = 1 / (1 + np.exp(-beta * (x.astype("float64") @ w1 + b1)))
    expected = (w2[:, 0] * w1.sum(axis=0) * beta * s * (1 - s)) @ w1.T
    assert np.abs(expected).min() > 1e-3
    np.testing.assert_allclose(
        hessian_row_sums(models.with_softplus(model, beta)), expected, rtol=1e-4, atol=1e-6
    )


def test_save_and_load_round_trip(tmp_path):
    model, forward = _functional(8)
    smooth = models.with_softplus(model, 20.0)
    path = str(tmp_path / "smooth.keras")
    smooth.save(path)
    loaded = keras.models.load_model(path)
    x = _x(9)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(smooth(x)))
    assert {l.name: l.beta for l in loaded.layers if isinstance(l, layers.Softplus)} == {
        "r1": 20.0,
        "d2_softplus": 20.0,
        "a3": 20.0,
    }
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("beta", [0, -1.0, float("nan")])
def test_bad_beta_is_rejected(beta):
    model, _, _ = _sequential(0)
    with pytest.raises(ValueError, match="Received: beta="):
        models.with_softplus(model, beta)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.dense = keras.layers.Dense(2, activation="relu")

    def call(self, x):
        return self.dense(x)


def test_subclassed_and_unbuilt_models_are_rejected():
    model = _Subclassed()
    model(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match="Received: model='subclassed' of type _Subclassed"):
        models.with_softplus(model, 1.0)
    unbuilt = keras.Sequential([keras.layers.Dense(2, activation="relu")], name="lazy")
    with pytest.raises(ValueError, match="Received: model='lazy' of type Sequential"):
        models.with_softplus(unbuilt, 1.0)
    with pytest.raises(ValueError, match="Received: model="):
        models.with_softplus(keras.layers.Dense(2), 1.0)
    # A subclassed model nested in a functional one cannot be rewired either.
    inputs = keras.Input((3,))
    outer = keras.Model(inputs, _Subclassed()(inputs))
    with pytest.raises(ValueError, match="Received: model='subclassed'"):
        models.with_softplus(outer, 1.0)


@pytest.mark.parametrize(
    "layer",
    [
        keras.layers.SimpleRNN(4, activation="relu", name="rnn"),
        keras.layers.LSTM(4, activation="relu6", name="rnn"),
        keras.layers.GRU(4, activation="leaky_relu", name="rnn"),
    ],
    ids=["simple_rnn_relu", "lstm_relu6", "gru_leaky_relu"],
)
def test_relu_family_acting_inside_a_layer_is_rejected(layer):
    # Once rejected, the rest of the family (ReLU(max_value=...),
    # negative_slope, threshold, LeakyReLU, relu6, leaky_relu) is now
    # rewritten: tests/test_softplus_rewrite.py checks each stand-in.
    model = keras.Sequential([keras.Input((5, 4)), layer], name="m")
    message = f"layer='rnn' of type {type(layer).__name__}"
    with pytest.raises(ValueError, match=message):
        models.with_softplus(model, 1.0)
