"""The seven NsLoss-paper metrics against Quantus 0.6.0 itself, run as a user runs it.

One Keras 3 TensorFlow model (the small CNN, one epoch on 1,024 MNIST
digits), 8 MNIST test digits, their labels, and Integrated Gradients from
`keras_interp.attribution` (batched). Quantus gets the Keras model itself
(its `TensorFlowModel` wrapper, `model.predict`), `x` channels last,
`a_batch` as (N, H, W) (channels-last maps break its faithfulness
metrics) and, for the sensitivity metrics, an `explain_func` wrapping
ours.

Deterministic metrics (complexity, sparseness, faithfulness estimate)
are compared directly. For the Monte-Carlo ones, Quantus is made to use
*our* random draws, so the comparison is exact too:

- sensitivity metrics: our `explain` is wrapped to record the noisy
  inputs our metric explains; Quantus replays them through its documented
  `perturb_func` argument (it then explains them, normalises, takes norms
  and the max or mean itself);
- faithfulness correlation: the model is wrapped to record the perturbed
  inputs our metric scores; the replaced features of each run are read
  off them and Quantus' `np.random.choice` returns those subsets.

What a replay cannot show, the distribution of our draws, is tested
directly: the recorded noise against U(-0.2, 0.2) and N(0, 0.1^2) (KS
test), and the number of replaced features against its hypergeometric
mean.

Tolerances. Both sides see identical float32 inputs and attributions;
what differs is only float32 rounding: logits and attributions of the
same row computed in batches of another composition (Quantus explains or
predicts 8 rows at a time, we chunk up to 256), and sums of up to 784
float32 terms in another order (Quantus keeps the a_batch dtype, float32,
in complexity and sparseness). That is ~1e-7 relative per value and at
most ~1e-6 after the reductions (observed: <= 5e-7 everywhere), so 1e-5
(absolute for scores in [-1, 1] or O(5), relative for sensitivities) has
a 10-100x margin, while every semantic difference seen while writing this
(batch vs per-example normalisation, wrong noise, 64-row chunks) moves
scores by 1e-4 or more.
"""

import inspect
import warnings

import keras
import numpy as np
import pytest
from scipy import stats

import keras_interp as ki
from keras_interp import metrics

pytestmark = pytest.mark.tensorflow_only

if keras.config.backend() == "tensorflow":
    # Importing Quantus imports TensorFlow and torch: only where it runs.
    quantus = pytest.importorskip("quantus")

B = 8  # digits
IG_STEPS = 8  # path points of the explain function the sensitivity metrics call
SAMPLES = 50  # noisy copies per digit in the sensitivity replays
RUNS = 50  # subsets per digit in the faithfulness-correlation replay
QUIET = {"disable_warnings": True, "display_progressbar": False}


def to_np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def explain(model, x, target):
    """Ours, batched: the explanation the sensitivity metrics recompute."""
    return ki.attribution.integrated_gradients(model, x, target, steps=IG_STEPS)


def quantus_explain(model, inputs, targets, **kwargs):
    """Quantus' `explain_func` signature around ours."""
    return to_np(explain(model, inputs, targets))


@pytest.fixture(scope="module")
def case():
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = ki.data.load("mnist5k")
    model = ki.models.small_cnn()
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train[:1024], y_train[:1024], batch_size=64, epochs=1, verbose=0)
    x, y = x_test[:B], y_test[:B].astype("int64")
    a = to_np(ki.attribution.integrated_gradients(model, x, y))  # 50 steps
    return model, x, y, a


def run_quantus(metric, model, x, y, a, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(
            metric(model=model, x_batch=x, y_batch=y, a_batch=a[..., 0].copy(), **kwargs),
            dtype="float64",
        )


def test_defaults_are_quantus_defaults():
    def defaults(fn):
        return {
            k: p.default
            for k, p in inspect.signature(fn).parameters.items()
            if p.default is not p.empty
        }

    for ours, theirs in [
        (metrics.max_sensitivity, quantus.MaxSensitivity),
        (metrics.avg_sensitivity, quantus.AvgSensitivity),
    ]:
        mine, q = defaults(ours), defaults(theirs.__init__)
        assert mine["num_samples"] == q["nr_samples"] == 200
        assert mine["radius"] == q["lower_bound"] == 0.2 and q["upper_bound"] is None
        assert q["normalise"] is False and q["abs"] is False
        perturb = theirs(**QUIET).perturb_func
        assert perturb.func is quantus.functions.perturb_func.batch_uniform_noise
    mine, q = defaults(metrics.local_lipschitz_estimate), defaults(
        quantus.LocalLipschitzEstimate.__init__
    )
    assert mine["num_samples"] == q["nr_samples"] == 200
    assert mine["std"] == q["perturb_std"] == 0.1 and q["perturb_mean"] == 0.0
    assert q["normalise"] is True and mine["normalise"] == "batch"
    perturb = quantus.LocalLipschitzEstimate(**QUIET).perturb_func
    assert perturb.func is quantus.functions.perturb_func.batch_gaussian_noise
    mine, q = defaults(metrics.faithfulness_correlation), defaults(
        quantus.FaithfulnessCorrelation.__init__
    )
    assert mine["num_runs"] == q["nr_runs"] == 100
    assert mine["subset_size"] == q["subset_size"] == 224
    assert q["perturb_baseline"] == "black"
    mine, q = defaults(metrics.faithfulness_estimate), defaults(
        quantus.FaithfulnessEstimate.__init__
    )
    assert mine["features_in_step"] == q["features_in_step"] == 1
    assert q["perturb_baseline"] == "black"


# --- deterministic metrics ---------------------------------------------------


@pytest.mark.parametrize("name", ["complexity", "sparseness"])
def test_complexity_metrics(case, name):
    model, x, y, a = case
    ours, theirs = getattr(metrics, name), getattr(quantus, name.capitalize())(**QUIET)
    np.testing.assert_allclose(ours(a), run_quantus(theirs, None, x, y, a), rtol=0, atol=1e-5)
    # Maps five decades apart: Quantus divides by the max over the whole
    # batch, so the small maps' scale (against sparseness' 1e-7 offset)
    # depends on the others.
    scaled = a * np.logspace(0, -5, B, dtype="float32")[:, None, None, None]
    np.testing.assert_allclose(
        ours(scaled), run_quantus(theirs, None, x, y, scaled), rtol=0, atol=1e-5
    )


def test_faithfulness_estimate_in_steps_of_a_row(case):
    """28 features per step: 29 `model.predict` calls, Quantus' real path."""
    model, x, y, a = case
    theirs = quantus.FaithfulnessEstimate(features_in_step=28, **QUIET)
    expected = run_quantus(theirs, model, x, y, a)
    ours = metrics.faithfulness_estimate(model, x, y, a, features_in_step=28, verbose=0)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


def test_faithfulness_estimate_default(case, monkeypatch):
    """One feature per step (the default): 785 predictions of 8 rows.

    Through `model.predict` that is ~60 s of Keras' per-call overhead, so
    Quantus' wrapper predicts with `predict_on_batch` here: the same model
    on the same rows, nothing else changed. IG is exactly 0 where a pixel
    is 0 (the baseline), so the order of tied attributions (Quantus'
    unstable argsort, our stable one) changes nothing.
    """
    from quantus.helpers.model.tf_model import TensorFlowModel

    model, x, y, a = case
    monkeypatch.setattr(
        TensorFlowModel,
        "predict",
        lambda self, z, **kw: to_np(self.get_softmax_arg_model().predict_on_batch(z)),
    )
    expected = run_quantus(quantus.FaithfulnessEstimate(**QUIET), model, x, y, a)
    ours = metrics.faithfulness_estimate(model, x, y, a, verbose=0)
    # Both score float32 logits, in batches of other sizes (ours 256 rows,
    # Quantus' 8): on a 2-core AVX2 machine the correlations then differed
    # by up to 1.2e-5, within float32 rounding of 785 logit drops.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=3e-5)


# --- faithfulness correlation: Quantus replays our subsets ---------------------


class RecordingModel(keras.Model):
    """The model, keeping a copy of every batch it scores (also inside tf.function)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.seen = []

    def call(self, z, training=False):
        import tensorflow as tf

        if isinstance(z, tf.Tensor):

            def keep(t):
                self.seen.append(t.numpy().copy())
                return t

            kept = tf.py_function(keep, [z], z.dtype)
            kept.set_shape(z.shape)
            z = kept
        return self.inner(z, training=training)


def test_faithfulness_correlation_on_our_subsets(case, monkeypatch):
    model, x, y, a = case
    recording = RecordingModel(model)
    ours = metrics.faithfulness_correlation(recording, x, y, a, num_runs=RUNS, seed=3, verbose=0)

    # Read each run's replaced features off the rows our metric scored.
    flat_x = x.reshape(B, -1)
    black = flat_x.min(axis=1)
    rows = np.concatenate(recording.seen).reshape(-1, flat_x.shape[1])
    differing = (rows[:, None, :] != flat_x[None]).sum(-1)  # [rows, B]
    owner = differing.argmin(1)
    changed = [[] for _ in range(B)]
    for r in np.flatnonzero(differing.min(1) > 0):  # the clean rows change nothing
        e = owner[r]
        replaced = rows[r] != flat_x[e]
        assert np.all(rows[r][replaced] == black[e]), "replaced by the example's min"
        changed[e].append(np.flatnonzero(replaced))
    assert [len(c) for c in changed] == [RUNS] * B

    # A feature already at the minimum is replaced invisibly; its IG is
    # exactly 0 (x = baseline), so it adds nothing to either side. Quantus
    # gets each visible subset padded with such features to 224.
    flat_a = a.reshape(B, -1)
    assert np.all(flat_a[flat_x == black[:, None]] == 0.0)
    subsets = []
    for run in range(RUNS):  # Quantus draws run by run, example by example
        for e in range(B):
            visible = changed[e][run]
            pad = np.setdiff1d(np.flatnonzero(flat_x[e] == black[e]), visible)
            subsets.append(np.concatenate([visible, pad[: 224 - len(visible)]]))
    replay = iter(subsets)

    def choice(n, size, replace=True, p=None):
        assert (n, size, replace) == (flat_x.shape[1], 224, False)
        return next(replay)

    monkeypatch.setattr(np.random, "choice", choice)
    expected = run_quantus(
        quantus.FaithfulnessCorrelation(nr_runs=RUNS, return_aggregate=False, **QUIET),
        model, x, y, a,
    )
    monkeypatch.undo()
    assert next(replay, None) is None
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)

    # Our subsets: 224 uniform features, so the visible ones are
    # hypergeometric: mean 224 K/F for K non-minimum features of F.
    features = flat_x.shape[1]
    k = (flat_x > black[:, None]).sum(1)
    p = k / features
    mean = 224 * p
    var = 224 * p * (1 - p) * (features - 224) / (features - 1)
    sizes = np.array([[len(c) for c in changed[e]] for e in range(B)])  # [B, RUNS]
    z = (sizes.sum(1) - RUNS * mean).sum() / np.sqrt(RUNS * var.sum())
    assert abs(z) < 5, z


# --- sensitivity metrics: Quantus replays our noise -----------------------------


class RecordingExplain:
    """Our `explain`, keeping every batch of inputs it is asked to explain."""

    def __init__(self):
        self.inputs, self.targets = [], []

    def __call__(self, model, x, target):
        self.inputs.append(to_np(x).copy())
        self.targets.append(to_np(target).reshape(-1).copy())
        return explain(model, x, target)

    def noisy_copies(self, x, y):
        """{example: [its noisy copies, in the order explained]}."""
        rows = np.concatenate(self.inputs)
        targets = np.concatenate(self.targets)
        flat_rows, flat_x = rows.reshape(len(rows), -1), x.reshape(len(x), -1)
        distance = np.abs(flat_rows[:, None, :] - flat_x[None]).max(-1)  # L_inf, [rows, B]
        owner = distance.argmin(1)
        copies = {e: [] for e in range(len(x))}
        for r in np.flatnonzero(distance.min(1) > 0):
            assert targets[r] == y[owner[r]]
            copies[owner[r]].append(rows[r])
        return {e: np.stack(c) for e, c in copies.items()}


def replayed(x, copies):
    """A Quantus `perturb_func` that returns our noisy copies.

    Quantus calls it once per sample with the (flattened, channel-first)
    rows of its current batch; each row is matched to its example, which
    gets its next copy of ours.
    """
    flat_x = x.reshape(len(x), -1)
    used = np.zeros(len(x), int)

    def perturb_func(arr, indices, **kwargs):
        examples = [int(np.flatnonzero((flat_x == row).all(1))[0]) for row in arr]
        out = np.stack([copies[e][used[e]] for e in examples]).reshape(arr.shape)
        used[examples] += 1
        return out

    perturb_func.used = used
    return perturb_func


@pytest.mark.parametrize(
    "name, quantus_name, noise",
    [
        ("max_sensitivity", "MaxSensitivity", stats.uniform(-0.2, 0.4)),
        ("avg_sensitivity", "AvgSensitivity", stats.uniform(-0.2, 0.4)),
        ("local_lipschitz_estimate", "LocalLipschitzEstimate", stats.norm(0, 0.1)),
    ],
)
def test_sensitivity_on_our_noise(case, name, quantus_name, noise):
    model, x, y, _ = case
    recording = RecordingExplain()
    ours = getattr(metrics, name)(model, x, y, recording, num_samples=SAMPLES, seed=1, verbose=0)
    copies = recording.noisy_copies(x, y)
    assert all(len(c) == SAMPLES for c in copies.values())

    perturb = replayed(x, copies)
    theirs = getattr(quantus, quantus_name)(nr_samples=SAMPLES, perturb_func=perturb, **QUIET)
    a = to_np(explain(model, x, y))
    expected = run_quantus(theirs, model, x, y, a, explain_func=quantus_explain)
    assert np.all(perturb.used == SAMPLES)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)

    # The noise itself: on every feature, independent, of the stated law.
    drawn = np.stack([copies[e] - x[e] for e in range(B)])  # [B, S, H, W, C]
    values = drawn.reshape(-1)
    if quantus_name != "LocalLipschitzEstimate":
        assert np.abs(values).max() <= 0.2 + 1e-6
    assert stats.kstest(values, noise.cdf).pvalue > 1e-4
    flat = drawn.reshape(B * SAMPLES, -1)
    assert len(np.unique(flat, axis=0)) == B * SAMPLES
    r = np.corrcoef(flat)[np.triu_indices(B * SAMPLES, 1)]
    assert np.abs(r).max() < 6 / np.sqrt(flat.shape[1])
