"""The library on real architectures (issue 15, item 6).

keras.applications backbones at 32x32 with `weights=None` and a 3-class
head, nested in a classifier (the transfer-learning pattern) and built
flat, each frozen and unfrozen. Every check compares with something the
code under test does not produce itself:

- nested == flat: the nested classifier and its flat twin (the same
  application built with `input_tensor=`, given the same weights and the
  same dropout seeds) compute the same function, so each regulariser's
  term (same seed) and the whole update of one training step agree;
- frozen means frozen: after a step the frozen kernels and batch-norm
  statistics are bit-identical while the head moved;
- closed forms: Integrated Gradients' completeness within the quadrature
  error, a ReLU network's explanation that no attack can move;
- invariances: GradientSHAP and the metrics do not depend on `batch_size`;
  a saved-then-loaded model predicts and trains on as the original.

Each architecture is built once per module (`twins`); tests reset its
weights from a snapshot. The initial batch-norm statistics (mean 0,
variance 1) let the signal fade layer after layer (MobileNetV2's input
gradient is ~1e-12, where every comparison would pass on noise), so each
backbone is calibrated first: one pass in training mode with momentum 0
sets the statistics to a batch's; VGG16, without batch norm, gets He
initialisation instead of Glorot (with which its logits are ~1e-5).

`make test-applications` runs every test here on TensorFlow, and those
marked `multibackend` (MobileNetV2 nested and ResNet50: the NsLoss and
Jacobian steps against the flat twin, frozen and unfrozen, and saving) on
JAX and PyTorch. The rest (attributions, the attack on explanations,
ATEX, the callbacks, the metrics) runs on TensorFlow only, to keep JAX and
PyTorch within about 2 minutes: its logic does not depend on the backend,
and the suites marked `multibackend` and `backends_in_ci` run it on small
models there.
ConvNeXtTiny is in the NsLoss matrix only: its double-backprop steps and
Integrated Gradients take 10-30 s each on TensorFlow.

keras-hub is not tested: keras-hub 0.32 requires tensorflow-text, which
requires the full `tensorflow` package beside the pinned `tensorflow-cpu`.
"""

import functools

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import hooks
from tests.conftest import calibrate_batch_norm
from tests.conftest import to_numpy

pytestmark = pytest.mark.applications

SHAPE = (32, 32, 3)
CLASSES = 3
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
L = keras.layers
A = keras.applications

ARCHITECTURES = {
    "MobileNetV2": A.MobileNetV2,
    "ResNet50": A.ResNet50,
    "EfficientNetB0": A.EfficientNetB0,
    "VGG16": A.VGG16,
    "ConvNeXtTiny": A.ConvNeXtTiny,
}


def _images(seed, n=4):
    return np.random.default_rng(seed).uniform(0, 1, (n,) + SHAPE).astype("float32")


def _labels(seed, n=4):
    return np.random.default_rng(seed).integers(0, CLASSES, n).astype("int32")


def _calibrate(backbone, seed):
    if calibrate_batch_norm(backbone, _images(seed, n=16)):
        return
    # Without batch norm (VGG16) Glorot's kernels shrink the logits to
    # ~1e-5; He's keep them of order 1.
    rng = np.random.default_rng(seed)
    for layer in backbone.layers:
        if isinstance(layer, L.Conv2D):
            kernel = layer.kernel
            fan_in = np.prod(kernel.shape[:-1])
            kernel.assign(rng.normal(0, np.sqrt(2 / fan_in), kernel.shape).astype("float32"))


def _head(h, seed):
    h = L.GlobalAveragePooling2D(name="pool")(h)
    init = keras.initializers.GlorotUniform(seed=seed)
    return L.Dense(CLASSES, kernel_initializer=init, name="logits")(h)


class Twins:
    """One architecture nested in a classifier and built flat, same weights.

    `nested` calls the application as one layer with `training=False`
    (Keras' transfer-learning pattern); `flat` is the application built
    with `input_tensor=`, its layers in the classifier's own graph. `reset`
    gives both the snapshot's weights and dropout seeds, and freezes the
    backbone in both, or in neither.

    In Keras 3 `fit`'s `training=True` reaches the layers of a nested model
    called with `training=False` (keras-team/keras#20285; Keras' transfer
    learning guide says so since): a frozen batch-norm layer runs in
    inference mode because it is frozen, an unfrozen one normalises with
    the batch and updates its statistics, nested or flat alike, and dropout
    (EfficientNetB0's stochastic depth) draws in both.
    """

    def __init__(self, name, seed=0):
        make = ARCHITECTURES[name]
        self.name = name
        # The initial weights whatever was built before (Keras' global seed).
        keras.utils.set_random_seed(seed)
        self.backbone = make(include_top=False, weights=None, input_shape=SHAPE)
        _calibrate(self.backbone, seed)
        inputs = keras.Input(SHAPE)
        h = self.backbone(inputs, training=False)
        self.nested = keras.Model(inputs, _head(h, seed), name="classifier")
        inputs = keras.Input(SHAPE)
        base = make(include_top=False, weights=None, input_tensor=inputs)
        self.flat = keras.Model(inputs, _head(base.output, seed), name="flat")
        self.prefix = self.backbone.name + "/"

        # (path in nested, nested layer, flat layer) of the layers with
        # weights and the dropout layers, paired in network order: layers
        # named by Keras' counters ("layer_normalization_3") are named
        # otherwise in the second build.
        def kept(model):
            return [(p, l) for p, l in hooks.layer_paths(model) if l.weights or isinstance(l, L.Dropout)]

        nested, flat = kept(self.nested), kept(self.flat)
        assert len(nested) == len(flat)
        self.pairs = []
        for (path, layer), (_, twin) in zip(nested, flat):
            assert type(layer) is type(twin)
            assert [w.shape for w in layer.weights] == [w.shape for w in twin.weights]
            self.pairs.append((path, layer, twin))
        self.snapshot = self.nested.get_weights()
        self.seeds = [
            (layer, twin, to_numpy(layer.seed_generator.state.value))
            for _, layer, twin in self.pairs
            if isinstance(layer, L.Dropout)
        ]

    def reset(self, frozen):
        self.nested.set_weights(self.snapshot)
        for layer, twin, state in self.seeds:
            layer.seed_generator.state.assign(state)
            twin.seed_generator.state.assign(state)
        for path, layer, twin in self.pairs:
            twin.set_weights(layer.get_weights())
            twin.trainable = not (frozen and self.in_backbone(path))
        self.backbone.trainable = not frozen
        return self

    def in_backbone(self, path):
        return path.startswith(self.prefix)

    def statistics(self):
        """The nested model's batch-norm moving statistics."""
        return [
            v
            for _, l, _ in self.pairs
            if isinstance(l, L.BatchNormalization)
            for v in (l.moving_mean, l.moving_variance)
        ]


_TWINS = {}


def twins(name):
    """The module's one build of `name` (made on first use)."""
    if name not in _TWINS:
        _TWINS[name] = Twins(name)
    return _TWINS[name]


def _values(model):
    """`{id(variable): value}` of every variable of `model`."""
    return {id(v): np.array(to_numpy(v.value)) for v in model.weights}


def _wrap(model, regularizer, rate, seed=0, eager=False):
    wrapped = ki.RegularizedModel(model, [regularizer], seed=seed)
    wrapped.compile(keras.optimizers.SGD(rate), CE, run_eagerly=eager)
    return wrapped


def _logit_of(model, x, classes):
    out = to_numpy(model(x, training=False)).astype("float64")
    return out[np.arange(len(x)), classes]


def _params(cases, multibackend):
    """pytest params, the ones in `multibackend` marked to run on every backend."""
    out = []
    for case in cases:
        marks = [pytest.mark.multibackend] if case in multibackend else []
        out.append(pytest.param(*case, marks=marks, id="-".join(map(str, case))))
    return out


# --- Regularisers: one step of the nested model and of its flat twin. ---

REGULARIZERS = {
    "nsloss": lambda: ki.regularizers.NeuronSensitivity(1.0, 0.05, num_perturbations=2),
    "jacobian": lambda: ki.regularizers.JacobianNorm(1.0),
    "adversarial": lambda: ki.regularizers.AdversarialTraining(0.03, steps=2),
    "consistency": lambda: ki.regularizers.ExplanationConsistency(1.0, 0.05, num_neighbors=1),
}


def _check_step(t, kind, frozen, eager):
    """One SGD step of both twins: the same term and loss, the same update,
    the frozen part bit-identical, and every trained variable moved."""
    t.reset(frozen)
    x, y = _images(1), _labels(1)
    before = {**_values(t.nested), **_values(t.flat)}
    nested = _wrap(t.nested, REGULARIZERS[kind](), rate=0.05, eager=eager).train_on_batch(x, y, return_dict=True)
    flat = _wrap(t.flat, REGULARIZERS[kind](), rate=0.05, eager=eager).train_on_batch(x, y, return_dict=True)
    (term,) = set(nested) - {"loss"}
    assert np.isfinite(nested[term]) and nested[term] > 0
    assert nested[term] == pytest.approx(flat[term], rel=1e-4)
    assert nested["loss"] == pytest.approx(flat["loss"], rel=1e-4)
    moved = {"backbone": 0, "head": 0}
    for path, layer, twin in t.pairs:
        for a, b in zip(layer.weights, twin.weights):
            da = to_numpy(a.value) - before[id(a)]
            db = to_numpy(b.value) - before[id(b)]
            if frozen and t.in_backbone(path):
                # Frozen kernels and batch-norm statistics: bit-identical.
                np.testing.assert_array_equal(da, 0.0, err_msg=a.path)
                np.testing.assert_array_equal(db, 0.0, err_msg=b.path)
            else:
                # The same update in both twins, moving statistics included.
                scale = np.abs(da).max()
                np.testing.assert_allclose(da, db, rtol=1e-3, atol=1e-3 * scale + 1e-12, err_msg=a.path)
                moved["backbone" if t.in_backbone(path) else "head"] += bool(scale > 0)
    assert moved["head"] == 2
    # Unfrozen: every kernel moved, and every batch-norm statistic (a
    # normalisation layer's fixed mean and variance do not).
    expected = len(t.backbone.trainable_weights) + len(t.statistics())
    assert moved["backbone"] == (0 if frozen else expected)


@pytest.mark.parametrize(
    "name, frozen",
    _params(
        [(name, frozen) for name in ARCHITECTURES for frozen in ("frozen", "unfrozen")],
        multibackend=[("MobileNetV2", "frozen"), ("ResNet50", "unfrozen")],
    ),
)
def test_nsloss_step_nested_equals_flat(name, frozen):
    # The frozen step compiled, as `fit` runs it; the unfrozen one eagerly
    # (the NsLoss sum is compiled on its own either way): the same checks
    # at a third of the time.
    frozen = frozen == "frozen"
    _check_step(twins(name), "nsloss", frozen, eager=not frozen)


@pytest.mark.parametrize(
    "kind, name, frozen",
    _params(
        [
            ("jacobian", "ResNet50", "frozen"),
            ("jacobian", "EfficientNetB0", "unfrozen"),
            ("adversarial", "MobileNetV2", "unfrozen"),
            ("adversarial", "VGG16", "frozen"),
            ("consistency", "MobileNetV2", "frozen"),
            ("consistency", "VGG16", "unfrozen"),
        ],
        multibackend=[("jacobian", "ResNet50", "frozen")],
    ),
)
def test_regularizer_step_nested_equals_flat(kind, name, frozen):
    # Eager: tracing a double-backprop step of these networks takes 10-20 s.
    _check_step(twins(name), kind, frozen == "frozen", eager=True)


# --- Attribution. ---


def _smooth(t):
    """The nested classifier with smooth activations: softplus (beta 3) for
    the ReLU family; EfficientNetB0 (swish) and ConvNeXtTiny (GELU) as they are."""
    if t.name in ("EfficientNetB0", "ConvNeXtTiny"):
        return t.nested
    return ki.models.with_softplus(t.nested, 3.0)


@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50", "EfficientNetB0", "VGG16"])
def test_integrated_gradients_completeness_within_the_quadrature_error(name):
    # Sum of IG = f(x) - f(x') up to the trapezoid rule's error, estimated
    # by halving the step (Richardson: for a smooth path the error of 8
    # steps is about 4/3 of S_8 - S_16), with a floor of 0.1% for float32
    # rounding. Randomly initialised ReLU networks are piecewise linear
    # with a kink every few thousandths along any path, where 8 points
    # say nothing: the rule is checked on the smooth copy, over a short
    # path (x' = x moved by 0.003 per pixel).
    t = twins(name).reset(frozen=True)
    model = _smooth(t)
    x = _images(3)
    baseline = x + 0.003 * np.sign(np.random.default_rng(4).normal(size=x.shape)).astype("float32")
    classes = to_numpy(model(x)).argmax(-1)
    delta = _logit_of(model, x, classes) - _logit_of(model, baseline, classes)
    maps, sums = {}, {}
    for steps in (8, 16):
        maps[steps] = to_numpy(ki.attribution.integrated_gradients(model, x, classes, baseline=baseline, steps=steps))
        sums[steps] = maps[steps].reshape(len(x), -1).sum(-1).astype("float64")
    error = np.abs(sums[8] - delta).max()
    estimate = np.abs(sums[8] - sums[16]).max()
    scale = np.abs(delta).max()
    assert scale > 1e-4 * np.abs(to_numpy(model(x))).max()  # more than rounding
    assert error <= 2 * estimate + 1e-3 * scale
    assert error <= 0.05 * scale
    # Batched == unbatched: the 32 path points in gradient calls of 8 rows.
    a = to_numpy(ki.attribution.integrated_gradients(model, x, classes, baseline=baseline, steps=8, batch_size=8))
    np.testing.assert_allclose(a, maps[8], rtol=1e-4, atol=1e-5 * np.abs(maps[8]).max())


@pytest.mark.parametrize(
    "name, variant",
    _params([("MobileNetV2", "nested"), ("ResNet50", "flat")], multibackend=[]),
)
def test_gradient_shap_does_not_depend_on_batch_size(name, variant):
    # The draws are made per sample for a fixed block of examples, so a
    # seed gives the same maps in chunks of 8 rows as in one call of 16.
    t = twins(name).reset(frozen=True)
    model = t.nested if variant == "nested" else t.flat
    x = _images(5)
    shap = functools.partial(ki.attribution.gradient_shap, model, x, baselines=_images(6, n=3), num_samples=4)
    whole = to_numpy(shap(seed=3)).reshape(len(x), -1)
    assert np.all(np.isfinite(whole)) and np.abs(whole).max() > 0
    chunked = to_numpy(shap(seed=3, batch_size=8)).reshape(len(x), -1)
    # Per example, the relative L2 distance of the maps: ~1e-6 (rounding
    # differs with the call's shape), and for the rare example with a path
    # point at a ReLU's kink, where rounding flips the unit, up to ~1e-2
    # (seen on JAX for ResNet50); another draw moves a map by ~100%.
    distance = np.linalg.norm(chunked - whole, axis=1) / np.linalg.norm(whole, axis=1)
    assert np.median(distance) < 1e-4 and distance.max() < 3e-2
    other = to_numpy(shap(seed=4)).reshape(len(x), -1)
    assert np.all(np.linalg.norm(other - whole, axis=1) / np.linalg.norm(whole, axis=1) > 0.1)


# --- Metrics. ---

METRIC_OPTIONS = {
    "max_sensitivity": {"num_samples": 3},
    "avg_sensitivity": {"num_samples": 3},
    "local_lipschitz_estimate": {"num_samples": 3},
    "faithfulness_correlation": {"num_runs": 4, "subset_size": 64},
    "faithfulness_estimate": {"features_in_step": 256},
}


def test_metrics_evaluate_does_not_depend_on_batch_size():
    # The metrics' noise and subsets are NumPy draws, the same on every
    # backend; the backends_in_ci suites run them on JAX and PyTorch.
    t = twins("MobileNetV2").reset(frozen=True)
    x, y = _images(7), _labels(7)
    explain = functools.partial(ki.attribution.integrated_gradients, steps=4)
    tables = [
        ki.metrics.evaluate(t.nested, x, y, explain, batch_size=size, seed=0, verbose=0, **METRIC_OPTIONS)
        for size in (None, 3)
    ]
    assert set(tables[0]) == set(ki.metrics.PAPER_METRICS)
    for metric in ki.metrics.PAPER_METRICS:
        scores = tables[0][metric]["scores"]
        assert scores.shape == (len(x),) and np.all(np.isfinite(scores)), metric
        np.testing.assert_allclose(tables[1][metric]["scores"], scores, rtol=1e-4, atol=1e-7, err_msg=metric)
    # Max- and avg-sensitivity see the same noisy copies (the same seed):
    # the maximum is at least the mean, example by example.
    assert np.all(tables[0]["max_sensitivity"]["scores"] >= tables[0]["avg_sensitivity"]["scores"] - 1e-12)


# --- ATEX and explanation manipulation. ---


def _share_of_top(model, x, x_adv, classes, k):
    """The share of the saliency of x_adv on the k most salient pixels of x."""

    def saliency(z):
        phi = to_numpy(ki.attribution.vanilla_gradient(model, z, classes))
        return np.abs(phi).sum(-1).reshape(len(z), -1)

    clean, moved = saliency(x), saliency(x_adv)
    top = np.argsort(-clean, axis=1)[:, :k]
    share = lambda s: np.take_along_axis(s, top, 1).sum(1) / s.sum(1)  # noqa: E731
    return share(clean), share(moved)


def test_manipulate_explanation_moves_the_softplus_copy_and_not_the_relu_network():
    t = twins("MobileNetV2").reset(frozen=True)
    smooth = ki.models.with_softplus(t.nested, 3.0)
    x = _images(8)
    attack = functools.partial(ki.attacks.manipulate_explanation, x=x, epsilon=0.05, steps=4, top_k=40, seed=0)
    x_adv = to_numpy(attack(smooth))
    classes = to_numpy(smooth(x)).argmax(-1)
    assert np.abs(x_adv - x).max() <= 0.05 + 1e-6
    np.testing.assert_array_equal(to_numpy(smooth(x_adv)).argmax(-1), classes)
    # Every example's top-40 pixels lost a good part of their share (from
    # 0.12 to 0.06-0.07 here).
    before, after = _share_of_top(smooth, x, x_adv, classes, 40)
    assert np.all(after < 0.8 * before)
    # The ReLU6 network's explanation is piecewise constant in x: the
    # attack's gradient is exactly zero and x comes back unchanged.
    np.testing.assert_array_equal(to_numpy(attack(t.nested)), x)


def test_atex_fit_trains_the_head_of_a_frozen_backbone_and_leaves_the_teacher():
    t = twins("MobileNetV2").reset(frozen=True)
    teacher = t.nested
    before = [np.array(w) for w in teacher.get_weights()]
    student, history = ki.atex.fit(
        teacher, _images(9, n=8), epochs=1, batch_size=4, seed=0, verbose=0,
        num_along=1, num_across=1, smoothgrad_samples=4,
    )
    for a, b in zip(teacher.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert student is not teacher
    assert not {id(v) for v in student.weights} & {id(v) for v in teacher.weights}
    assert 0.0 <= history.history["agreement"][0] <= 1.0 and np.isfinite(history.history["loss"][0])
    # The clone keeps the backbone frozen: its kernels and statistics are
    # the teacher's, bit for bit, while the head moved.
    backbone = student.layers[1]
    assert isinstance(backbone, keras.Model) and not backbone.trainable
    for a, b in zip(backbone.get_weights(), t.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    head = [m.get_layer("logits").get_weights()[0] for m in (student, teacher)]
    assert not np.array_equal(*head)


# --- Callbacks. ---


def test_callbacks_log_the_wrapped_models_explanations(tmp_path):
    t = twins("VGG16").reset(frozen=True)
    x, y = _images(10, n=8), _labels(10, n=8)
    probe_x, probe_y = x[:2], y[:2]
    monitor = ki.callbacks.ExplanationStabilityMonitor(
        probe_x, probe_y, "integrated_gradients", metrics=("max_sensitivity", "sparseness"),
        metric_kwargs={"max_sensitivity": {"num_samples": 2}}, explain_kwargs={"steps": 4},
    )
    snapshot = ki.callbacks.AttributionSnapshot(
        probe_x, "integrated_gradients", path=str(tmp_path / "epoch_{epoch}.png"),
        explain_kwargs={"steps": 4}, y=probe_y, dpi=20,
    )
    wrapped = _wrap(t.nested, REGULARIZERS["nsloss"](), rate=0.05)
    history = wrapped.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[monitor, snapshot])
    # The values logged are those of the wrapped (inner) classifier after
    # the epoch, computed here directly with the same settings.
    explain = functools.partial(ki.attribution.integrated_gradients, steps=4)
    reference = ki.metrics.max_sensitivity(t.nested, probe_x, probe_y, explain, num_samples=2, seed=0, verbose=0)
    assert history.history["max_sensitivity"] == [pytest.approx(reference.mean(), rel=1e-5)]
    maps = explain(t.nested, probe_x, probe_y)
    sparseness = ki.metrics.sparseness(maps)
    assert history.history["sparseness"] == [pytest.approx(np.mean(to_numpy(sparseness)), rel=1e-5)]
    import matplotlib.pyplot as plt

    (path,) = snapshot.paths
    assert path == str(tmp_path / "epoch_1.png")
    assert plt.imread(path).shape[:2] == (round(1.8 * len(probe_x) * 20), round(1.8 * 2 * 20))


# --- Saving. ---


@pytest.mark.parametrize(
    "name, frozen",
    _params(
        [("MobileNetV2", "frozen"), ("ResNet50", "unfrozen")],
        multibackend=[("MobileNetV2", "frozen"), ("ResNet50", "unfrozen")],
    ),
)
def test_saved_then_loaded_predicts_and_trains_on_as_the_original(name, frozen, tmp_path):
    t = twins(name).reset(frozen == "frozen")
    inner = {"MobileNetV2": "block_16_project", "ResNet50": "conv5_block3_3_conv"}[name]
    layers = [f"{t.backbone.name}/{inner}", L.Dense]  # a path and a class
    reg = ki.regularizers.NeuronSensitivity(1.0, 0.05, num_perturbations=2, layers=layers)
    wrapped = _wrap(t.nested, reg, rate=0.05, seed=3, eager=True)
    x, y = _images(11), _labels(11)
    wrapped.train_on_batch(x, y)
    path = str(tmp_path / "model.keras")
    wrapped.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded.predict(x, verbose=0)), to_numpy(wrapped.predict(x, verbose=0)))
    assert loaded.model.layers[1].trainable == (frozen != "frozen")
    assert loaded.regularizers[0].layers == layers
    # The next step: the same loss and NsLoss term (the same perturbations:
    # the seed streams were saved), and the same weights after it.
    steps = []
    for model in (wrapped, loaded):
        model.compile(keras.optimizers.SGD(0.05), CE, run_eagerly=True)
        steps.append(model.train_on_batch(x, y, return_dict=True))
    assert steps[1] == pytest.approx(steps[0], rel=1e-5)
    for a, b in zip(loaded.get_weights(), wrapped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
