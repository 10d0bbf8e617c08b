"""with_softplus on the whole ReLU family, nested models and
keras.applications: each stand-in against its float64 NumPy formula, the
limit beta -> inf, curvature, saving, and the report of what was kept."""

import keras
import numpy as np
import pytest

from keras_interp import backend
from keras_interp import layers
from keras_interp import models
from tests.conftest import calibrate_batch_norm
from tests.conftest import to_numpy


def _sp(z, beta):
    return np.logaddexp(0.0, beta * z) / beta


def _step(z, beta):
    return 0.5 * (1 + np.tanh(beta * z / 2))


def _keras_relu(x, m=None, a=0.0, t=0.0):
    """keras.layers.ReLU(max_value=m, negative_slope=a, threshold=t)."""
    pos = np.where(x > t, x, 0.0)
    pos = pos if m is None else np.minimum(pos, m)
    return pos - a * np.maximum(t - x, 0.0)


def _smooth_relu(x, beta, m=None, a=0.0, t=0.0):
    """The documented stand-in, written out independently."""
    if m is not None and t > m:
        pos = m * _step(x - t, beta)
    else:
        pos = _sp(x - t, beta) + t * _step(x - t, beta)
        pos = pos if m is None else pos - _sp(x - m, beta)
    return pos + a * (x - t) - a * _sp(x - t, beta)


L = keras.layers
# (id, the activation to apply, the stand-in's class, the ReLU arguments of
# `_keras_relu` it computes)
_CASES = [
    ("relu_layer", lambda: L.ReLU(), "Softplus", {}),
    ("relu6_layer", lambda: L.ReLU(max_value=6.0), "SmoothReLU", {"m": 6.0}),
    ("negative_slope", lambda: L.ReLU(negative_slope=0.1), "SmoothReLU", {"a": 0.1}),
    ("threshold", lambda: L.ReLU(threshold=0.5), "SmoothReLU", {"t": 0.5}),
    ("all_three", lambda: L.ReLU(2.0, 0.1, 0.5), "SmoothReLU", {"m": 2.0, "a": 0.1, "t": 0.5}),
    ("threshold_above_cap", lambda: L.ReLU(1.0, threshold=2.0), "SmoothReLU", {"m": 1.0, "t": 2.0}),
    ("leaky_relu_layer", lambda: L.LeakyReLU(), "SmoothReLU", {"a": 0.3}),
    ("leaky_relu_0.05", lambda: L.LeakyReLU(negative_slope=0.05), "SmoothReLU", {"a": 0.05}),
    ("activation_relu", lambda: L.Activation("relu"), "Softplus", {}),
    ("activation_relu6", lambda: L.Activation("relu6"), "SmoothReLU", {"m": 6.0}),
    ("activation_leaky", lambda: L.Activation("leaky_relu"), "SmoothReLU", {"a": 0.2}),
    ("ops_relu", lambda: keras.ops.relu, "Softplus", {}),
    ("ops_relu6", lambda: keras.ops.relu6, "SmoothReLU", {"m": 6.0}),
    ("ops_leaky", lambda: lambda h: keras.ops.leaky_relu(h, 0.15), "SmoothReLU", {"a": 0.15}),
    (
        "activations_relu_args",
        lambda: lambda h: keras.activations.relu(h, max_value=4.0, negative_slope=0.2),
        "SmoothReLU",
        {"m": 4.0, "a": 0.2},
    ),
]


def _one_activation_model(make):
    inputs = keras.Input((200,), name="x")
    outputs = make()(keras.layers.Identity(name="pre")(inputs))
    return keras.Model(inputs, outputs, name="one")


def _grid():
    points = np.concatenate([np.linspace(-8, 8, 193), [0.5, 1.0, 2.0, 4.0, 6.0, 7.0, 7.9]])
    return points.astype("float32")[None, :]


@pytest.mark.backends_in_ci
@pytest.mark.parametrize("name, make, stand_in, args", _CASES, ids=[c[0] for c in _CASES])
def test_each_stand_in_is_its_formula_and_tends_to_the_original(name, make, stand_in, args):
    model = _one_activation_model(make)
    x = _grid()
    x64 = x.astype("float64")
    original = _keras_relu(x64, **args)
    np.testing.assert_allclose(to_numpy(model(x)), original, rtol=1e-6, atol=1e-6)
    gaps = []
    for beta in (10.0, 1e3):
        smooth, report = models.with_softplus(model, beta, return_report=True)
        (replaced,) = [l for l in smooth.layers if l.name not in ("x", "pre")]
        assert type(replaced).__name__ == stand_in
        assert list(report.rewritten) == [replaced.name]
        out = to_numpy(smooth(x)).astype("float64")
        np.testing.assert_allclose(out, _smooth_relu(x64, beta, **args), rtol=1e-5, atol=1e-5)
        # Keras' thresholded ReLU jumps at t: outside a band of a few
        # 1/beta around it, the gap is that of a kink, log(2)/beta.
        gap = np.abs(out - original)
        t = args.get("t", 0.0)
        if t:
            jump = min(t, args.get("m") or t)  # the original jumps 0 -> jump at t
            at_t = gap[np.abs(x64 - t) < 1e-6].max()
            assert at_t == pytest.approx(jump / 2, abs=np.log(2) / beta + 1e-6)
            gap = gap[np.abs(x64 - t) > 10 / beta]
        assert gap.max() <= np.log(2) / beta + 1e-4
        # The ratio on one set of points for both betas.
        gaps.append(np.abs(out - original)[np.abs(x64 - t) > 1.0 if t else slice(None)].max())
    assert gaps[1] < max(gaps[0] / 50, 2e-6)  # or float32 rounding
    assert report.kept == {}


def _family_left(model):
    """Paths of layers or graph operations, at any depth, still computing a
    member of the ReLU family."""
    names = ("relu", "relu6", "leaky_relu")
    family = [getattr(m, f) for m in (keras.activations, keras.ops) for f in names]
    operations = ("Relu", "Relu6", "LeakyRelu", "ReLU")  # keras.ops calls in a graph
    found = []
    # A Sequential model's graph is its layer list; a functional one's
    # holds `keras.ops` calls too.
    nodes = model.layers if isinstance(model, keras.Sequential) else model.operations
    for op in nodes:
        if isinstance(op, keras.Model):
            found += [f"{op.name}/{p}" for p in _family_left(op)]
        elif (
            isinstance(op, (L.ReLU, L.LeakyReLU))
            or type(op) is L.PReLU
            or any(getattr(op, "activation", None) is f for f in family)
            or (not isinstance(op, L.Layer) and type(op).__name__ in operations)
        ):
            found.append(op.name)
    return found


def _nested_small(seed=0, smooth="tanh"):
    """A functional model around a functional block (called with
    training=False) around a Sequential block, with the ReLU family at
    every depth, a shared layer, a PReLU, BatchNormalization and a
    `smooth` activation (None: a piecewise-linear network)."""
    block = keras.Sequential(
        [
            keras.Input((8,)),
            L.Dense(8, activation="relu6", name="s_dense"),
            L.LeakyReLU(negative_slope=0.1, name="s_leaky"),
            L.Dense(8, name="s_out"),
            L.ReLU(threshold=0.3, name="s_thresh"),
        ],
        name="seq_block",
    )
    inner_in = keras.Input((6,))
    h = L.BatchNormalization(name="i_bn")(L.Dense(8, name="i_dense")(inner_in))
    inner = keras.Model(inner_in, block(L.PReLU(name="i_prelu")(h)), name="inner")
    inputs = keras.Input((6,), name="features")
    shared = L.Dense(6, activation="leaky_relu", name="shared")
    h = inner(shared(shared(inputs)), training=False)
    h = L.ReLU(max_value=6.0, name="o_relu6")(L.Dense(5, activation=smooth, name="o_tanh")(h))
    model = keras.Model(inputs, L.Dense(3, name="logits")(h), name="outer")
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            np.abs(rng.normal(1, 0.2, v.shape)) if "variance" in v.path
            else rng.normal(0, 0.7, v.shape)
            for v in model.weights
        ]
    )
    return model


def _x(seed, shape=(16, 6)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


_NESTED_REWRITTEN = {
    "shared": "activation=leaky_relu -> SmoothReLU(beta={b}, negative_slope=0.2)",
    "inner/i_prelu": "PReLU() -> SmoothPReLU(beta={b})",
    "inner/seq_block/s_dense": "activation=relu6 -> SmoothReLU(beta={b}, max_value=6.0)",
    "inner/seq_block/s_leaky": (
        "LeakyReLU(negative_slope=0.1) -> SmoothReLU(beta={b}, negative_slope=0.1)"
    ),
    "inner/seq_block/s_thresh": "ReLU(threshold=0.3) -> SmoothReLU(beta={b}, threshold=0.3)",
    "o_relu6": "ReLU(max_value=6.0) -> SmoothReLU(beta={b}, max_value=6.0)",
}


@pytest.mark.backends_in_ci
def test_nested_models_are_rewritten_at_every_depth_without_sharing_variables():
    model = _nested_small()
    model.compile(optimizer="sgd", loss="mse")
    before = [w.copy() for w in model.get_weights()]
    x = _x(1)
    y = to_numpy(model(x))
    smooth, report = models.with_softplus(model, 1e4, return_report=True)
    assert _family_left(smooth) == []
    assert sorted(_family_left(model)) == sorted(_NESTED_REWRITTEN)
    assert report.rewritten == {k: v.format(b=1e4) for k, v in _NESTED_REWRITTEN.items()}
    assert report.kept == {"o_tanh": "tanh"}
    assert "o_tanh: tanh" in str(report)
    block = smooth.get_layer("inner").get_layer("seq_block")
    assert isinstance(block, keras.Sequential)
    names = ["s_dense", "s_dense_softplus", "s_leaky", "s_out", "s_thresh"]
    assert [l.name for l in block.layers] == names
    # Same values, new variables; the original keeps its weights.
    for a, b in zip(smooth.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert not {id(v) for v in smooth.weights} & {id(v) for v in model.weights}
    smooth.set_weights([np.zeros_like(w) for w in before])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(to_numpy(model(x)), y)
    assert smooth.compiled
    # beta = 1e4 reproduces the original away from the threshold's jump.
    smooth.set_weights(before)
    np.testing.assert_allclose(to_numpy(smooth(x)), y, rtol=1e-3, atol=1e-3)
    # Rewriting again changes nothing: the stand-ins are kept, beta too.
    with pytest.warns(UserWarning, match="no ReLU-family activation"):
        _, again = models.with_softplus(smooth, 1.0, return_report=True)
    assert again.kept["inner/i_prelu"] == "SmoothPReLU(beta=10000.0)"
    assert again.kept["o_relu6"] == "SmoothReLU(beta=10000.0, max_value=6.0)"


def _curvature(model, x):
    """d/dx of sum(d sum(model(x)) / dx): the Hessian's row sums."""
    first = backend.grad(lambda t: model(t, training=False), create_graph=True)
    return to_numpy(backend.grad(lambda t: keras.ops.sum(first(t)))(x))


@pytest.mark.backends_in_ci
def test_second_derivatives_are_zero_before_and_non_zero_after():
    model = _nested_small(2, smooth=None)
    x = _x(3)
    np.testing.assert_array_equal(_curvature(model, x), 0.0)
    curvature = _curvature(models.with_softplus(model, 2.0), x)
    assert np.all(np.isfinite(curvature)) and np.abs(curvature).min() > 1e-6


@pytest.mark.backends_in_ci
def test_save_and_load_round_trip_of_a_rewritten_nested_model(tmp_path):
    model = _nested_small(4)
    smooth = models.with_softplus(model, 5.0)
    path = str(tmp_path / "smooth.keras")
    smooth.save(path)
    loaded = keras.models.load_model(path)
    x = _x(5)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(smooth(x)))
    assert _family_left(loaded) == []
    block = loaded.get_layer("inner").get_layer("seq_block")
    assert block.get_layer("s_thresh").get_config()["threshold"] == 0.3
    assert loaded.get_layer("inner").get_layer("i_prelu").beta == 5.0
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.backends_in_ci
def test_smooth_nonlinearities_are_kept_and_reported():
    inputs = keras.Input((6,))
    h = L.Activation("gelu", name="a_gelu")(L.Dense(6, activation="swish", name="d_swish")(inputs))
    h = keras.ops.tanh(L.ELU(name="elu")(h))
    h = L.Dense(6, activation="hard_sigmoid", name="d_hard")(h)
    h = L.Flatten()(L.MaxPooling1D(2, name="pool")(L.Reshape((6, 1))(h)))
    h = L.Dense(6, activation="relu", name="d_relu")(h)
    outputs = L.Dense(3, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs)
    x = _x(6)
    smooth, report = models.with_softplus(model, 1e4, return_report=True)
    assert report.rewritten == {"d_relu": "activation=relu -> Softplus(beta=10000.0)"}
    tanh = [op.name for op in model.operations if type(op).__name__ == "Tanh"]
    assert report.kept == {
        "d_swish": "silu",
        "a_gelu": "gelu",
        "elu": "ELU",
        tanh[0]: "tanh",
        "d_hard": "hard_sigmoid (piecewise linear: its second derivative stays zero)",
        "pool": "MaxPooling1D (piecewise linear: its second derivative stays zero)",
        "probs": "softmax",
    }
    np.testing.assert_allclose(to_numpy(smooth(x)), to_numpy(model(x)), rtol=1e-4, atol=1e-5)


@pytest.mark.backends_in_ci
def test_a_model_without_relu_family_warns():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh")])
    with pytest.warns(UserWarning, match="no ReLU-family activation.*kept: tanh"):
        smooth, report = models.with_softplus(model, 3.0, return_report=True)
    assert report.rewritten == {}
    assert report.kept == {smooth.layers[0].name: "tanh"}


@pytest.mark.backends_in_ci
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beta": 0.0}, "Received: beta=0.0"),
        ({"beta": 1.0, "max_value": -1.0}, "Received: max_value=-1.0"),
        ({"beta": 1.0, "threshold": float("nan")}, "Received: threshold=nan"),
    ],
)
def test_bad_stand_in_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.SmoothReLU(**kwargs)


# keras.applications at 32x32, weights=None. The rewrite is graph surgery,
# the same on every backend, and the small models above check the
# stand-ins' numbers on all three; the nested MobileNetV2 (the
# transfer-learning pattern) runs on JAX and PyTorch in CI too, the others
# on TensorFlow only (on JAX, eager dispatch takes about a minute a model).
def _calibrate(model, seed):
    calibrate_batch_norm(model, _images(seed, n=16))


def _mobilenet_v2():
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)


def _transfer(backbone):
    inputs = keras.Input((32, 32, 3))
    h = backbone(inputs, training=False)
    h = L.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, L.Dense(10)(h))


@pytest.fixture(scope="module")
def nested_mobilenet():
    backbone = _mobilenet_v2()
    _calibrate(backbone, 0)
    return _transfer(backbone)


def _images(seed, n=4):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 32, 32, 3)).astype("float32")


def _check_large_beta(model, x, num_rewritten, prefix="", kept=None):
    before = [w.copy() for w in model.get_weights()]
    y = to_numpy(model(x))
    assert np.abs(y).max() > 1.0
    gaps = []
    for beta in (1e3, 1e4):
        smooth, report = models.with_softplus(model, beta, return_report=True)
        gaps.append(np.abs(to_numpy(smooth(x)) - y).max())
    assert gaps[1] <= 2e-4 * np.abs(y).max() and gaps[1] < gaps[0] / 5
    assert len(report.rewritten) == num_rewritten and report.kept == (kept or {})
    assert all(path.startswith(prefix) for path in report.rewritten)
    assert _family_left(smooth) == [] and len(_family_left(model)) == num_rewritten
    for a, b in zip(smooth.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert not {id(v) for v in smooth.weights} & {id(v) for v in model.weights}
    return smooth


def test_mobilenet_v2_flat_large_beta_reproduces_the_outputs():
    model = _mobilenet_v2()
    _calibrate(model, 1)
    smooth = _check_large_beta(model, _images(2), num_rewritten=35)
    relu6 = smooth.get_layer("Conv1_relu")
    assert isinstance(relu6, models.SmoothReLU) and relu6.max_value == 6.0


@pytest.mark.backends_in_ci
def test_mobilenet_v2_nested_large_beta_reproduces_the_outputs(nested_mobilenet):
    backbone = nested_mobilenet.layers[1].name
    smooth = _check_large_beta(nested_mobilenet, _images(3, n=2), 35, prefix=f"{backbone}/")
    assert f"{backbone}/Conv1_relu" in _family_left(nested_mobilenet)
    assert smooth.layers[1].name == backbone


def test_mobilenet_v2_nested_second_derivatives(nested_mobilenet):
    x = _images(4, n=2)
    np.testing.assert_array_equal(_curvature(nested_mobilenet, x), 0.0)
    assert np.abs(_curvature(models.with_softplus(nested_mobilenet, 10.0), x)).max() > 1.0


@pytest.mark.backends_in_ci
def test_mobilenet_v2_nested_save_and_load(nested_mobilenet, tmp_path):
    smooth = models.with_softplus(nested_mobilenet, 10.0)
    path = str(tmp_path / "mobilenet.keras")
    smooth.save(path)
    loaded = keras.models.load_model(path)
    x = _images(5, n=2)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(smooth(x)), rtol=1e-6, atol=1e-6)
    assert _family_left(loaded) == []


def test_resnet50_large_beta_reproduces_the_outputs():
    model = keras.applications.ResNet50(input_shape=(32, 32, 3), include_top=False, weights=None)
    _calibrate(model, 6)
    pool = {"pool1_pool": "MaxPooling2D (piecewise linear: its second derivative stays zero)"}
    smooth = _check_large_beta(model, _images(7, n=2), num_rewritten=49, kept=pool)
    assert isinstance(smooth.get_layer("conv1_relu"), layers.Softplus)


def test_efficientnet_b0_swish_is_kept_and_reported():
    model = keras.applications.EfficientNetB0(False, None, input_shape=(32, 32, 3))
    with pytest.warns(UserWarning, match="no ReLU-family activation.*kept: sigmoid, silu"):
        smooth, report = models.with_softplus(model, 10.0, return_report=True)
    assert report.rewritten == {}
    assert report.kept["stem_activation"] == "silu"
    assert report.kept["block1a_se_expand"] == "sigmoid"
    assert sum(v == "silu" for v in report.kept.values()) == 49
    x = _images(8, n=2)
    np.testing.assert_array_equal(to_numpy(smooth(x)), to_numpy(model(x)))
