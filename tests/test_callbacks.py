"""Callbacks: explanation metrics in the epoch logs, attribution snapshots."""

import csv
import struct
import warnings

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import callbacks

pytestmark = pytest.mark.multibackend

SHAPE = (6, 6, 1)
CLASSES = 3


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n,) + SHAPE).astype("float32")
    y = rng.integers(0, CLASSES, n).astype("int32")
    return x, y


def _model(last_activation=None, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(CLASSES, activation=last_activation),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=last_activation is None),
    )
    return model


def _png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_metrics_in_history_equal_direct_calls(tmp_path):
    x, y = _data()
    probe_x, probe_y = x[:4], y[:4]
    model = _model()
    monitor = callbacks.ExplanationStabilityMonitor(
        probe_x,
        probe_y,
        "vanilla_gradient",
        metrics=("max_sensitivity", "sparseness"),
        metric_kwargs={"max_sensitivity": {"num_samples": 4}},
    )
    log = tmp_path / "log.csv"
    # The monitor goes first: Keras hands one `logs` dict to the callbacks in order.
    history = model.fit(
        x, y, epochs=2, batch_size=8, verbose=0,
        callbacks=[monitor, keras.callbacks.CSVLogger(str(log))],
    )
    for name in ("max_sensitivity", "sparseness"):
        assert len(history.history[name]) == 2
        assert monitor.history[name] == history.history[name]
    assert monitor.epochs == [0, 1]

    # Independent check: the metric functions on the trained model.
    expected_ms = ki.metrics.max_sensitivity(
        model, probe_x, probe_y, ki.attribution.vanilla_gradient,
        num_samples=4, seed=0, verbose=0,
    ).mean()
    maps = ki.attribution.vanilla_gradient(model, probe_x, probe_y)
    expected_sp = ki.metrics.sparseness(maps).mean()
    np.testing.assert_allclose(history.history["max_sensitivity"][-1], expected_ms, rtol=1e-5)
    np.testing.assert_allclose(history.history["sparseness"][-1], expected_sp, rtol=1e-5)

    # Same seed, same noise: recomputing on the same weights gives the same value.
    again = monitor.compute()
    np.testing.assert_allclose(again["max_sensitivity"], history.history["max_sensitivity"][-1], rtol=1e-6)

    rows = list(csv.DictReader(open(log)))
    assert len(rows) == 2 and "max_sensitivity" in rows[0] and "sparseness" in rows[0]
    assert monitor.higher_is_better == {"max_sensitivity": False, "sparseness": True}
    assert monitor.mode("max_sensitivity") == "min" and monitor.mode("sparseness") == "max"


def test_every_leaves_other_epochs_out(capsys):
    x, y = _data()
    model = _model()
    monitor = callbacks.ExplanationStabilityMonitor(
        x[:3], y[:3], "vanilla_gradient", metrics=("complexity",), every=2, prefix="expl_",
        verbose=1,
    )
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append("expl_complexity" in logs)

    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[monitor, Spy()])
    assert seen == [False, True, False]
    assert monitor.epochs == [1]
    assert history.history["expl_complexity"] == monitor.history["expl_complexity"]
    assert len(history.history["expl_complexity"]) == 1
    assert capsys.readouterr().out.startswith("Epoch 2: expl_complexity: ")


def _steps_so_far(model, x, y, explain):
    """Minus the optimizer steps taken: falls by the steps per epoch every epoch."""
    return -float(keras.ops.convert_to_numpy(model.optimizer.iterations))


@pytest.mark.parametrize("higher_is_better, epochs_run", [(True, 2), (False, 4)])
def test_early_stopping_follows_direction(higher_is_better, epochs_run):
    def steps(model, x, y, explain):
        return _steps_so_far(model, x, y, explain)

    steps.higher_is_better = higher_is_better
    x, y = _data()
    model = _model()
    monitor = callbacks.ExplanationStabilityMonitor(x[:2], y[:2], "vanilla_gradient", metrics=(steps,))
    assert monitor.mode("steps") == ("max" if higher_is_better else "min")
    stop = keras.callbacks.EarlyStopping(monitor="steps", mode=monitor.mode("steps"), patience=0)
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[monitor, stop])
    # Values -2, -4, -6, ...: worse every epoch when higher is better, so
    # patience 0 stops after the second; better every epoch otherwise.
    assert history.history["steps"] == [-2.0 * (i + 1) for i in range(epochs_run)]
    assert len(history.epoch) == epochs_run


def test_regularized_model_explains_the_wrapped_model():
    x, y = _data()
    base = _model(last_activation="softmax")
    wrapped = ki.RegularizedModel(base, [ki.regularizers.JacobianNorm(0.01)], seed=0)
    wrapped.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy())
    monitor = callbacks.ExplanationStabilityMonitor(
        x[:4], y[:4], "vanilla_gradient", metrics=("max_sensitivity",),
        metric_kwargs={"max_sensitivity": {"num_samples": 3}},
    )
    history = wrapped.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[monitor])
    # Logits of the wrapped model (its final softmax bypassed), its trained weights.
    expected = ki.metrics.max_sensitivity(
        base, x[:4], y[:4], "vanilla_gradient", num_samples=3, seed=0, verbose=0
    ).mean()
    np.testing.assert_allclose(history.history["max_sensitivity"][0], expected, rtol=1e-5)
    assert callbacks.explained_model(wrapped) is base


def test_snapshot_pngs(tmp_path, monkeypatch):
    x, y = _data()
    model = _model()
    written = []

    def image_summary(log_dir, tag, images, step):
        written.append((log_dir, tag, images.shape, images.dtype, step))
        return True

    # The TensorBoard writer lives in backend.py (the one framework-aware
    # file); here a stand-in checks what the callback hands it.
    monkeypatch.setattr(ki.backend, "image_summary", image_summary, raising=False)
    snapshot = callbacks.AttributionSnapshot(
        x[:3], "smoothgrad", path=str(tmp_path / "snaps" / "epoch_{epoch:03d}.png"),
        log_dir=str(tmp_path / "tb"), every=2, explain_kwargs={"num_samples": 2}, dpi=50,
    )
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[snapshot])
    files = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert files == ["epoch_002.png"]
    assert snapshot.paths == [str(tmp_path / "snaps" / "epoch_002.png")]
    width, height = _png_size(snapshot.paths[0])
    assert (width, height) == (round(1.8 * 2 * 50), round(1.8 * 3 * 50))
    assert written == [(str(tmp_path / "tb"), "attributions/smoothgrad", (1, height, width, 3), np.uint8, 1)]


def test_snapshot_warns_once_without_tensorboard(tmp_path, monkeypatch):
    x, y = _data()
    model = _model()
    monkeypatch.setattr(ki.backend, "image_summary", lambda *a: False, raising=False)
    snapshot = callbacks.AttributionSnapshot(
        x[:2], path=str(tmp_path / "a.png"), log_dir=str(tmp_path / "tb"), y=y[:2], dpi=40
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[snapshot])
    assert sum("image_summary" in str(w.message) for w in caught) == 1
    assert _png_size(tmp_path / "a.png") == (round(1.8 * 2 * 40), round(1.8 * 2 * 40))


def test_snapshot_writes_tensorboard_images(tmp_path):
    """The real writer: an event file with one image per computed epoch,
    read back with TensorBoard's own reader."""
    pytest.importorskip("tensorboard")
    summary_iterator = pytest.importorskip("tensorflow.compat.v1.train").summary_iterator
    x, y = _data()
    model = _model()
    snapshot = callbacks.AttributionSnapshot(x[:2], log_dir=str(tmp_path / "tb"), dpi=30)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[snapshot])
    (events,) = (tmp_path / "tb").iterdir()
    steps = [
        (e.step, v.tag)
        for e in summary_iterator(str(events))
        for v in e.summary.value
    ]
    assert steps == [(0, "attributions/vanilla_gradient"), (1, "attributions/vanilla_gradient")]


def _no_direction(model, x, y, explain):
    return 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"every": 0},
        {"metrics": ("nope",)},
        {"metrics": ("ssim",)},
        {"metrics": ()},
        {"metrics": (_no_direction,)},
        {"metrics": ("max_sensitivity", "max_sensitivity")},
        {"metric_kwargs": {"sparseness": {}}},
        {"explain": "nope"},
        {"verbose": 2},
        {"y": np.zeros(3, "int32")},
    ],
)
def test_monitor_bad_arguments(kwargs):
    x, y = _data()
    args = {"x": x[:4], "y": y[:4], **kwargs}
    with pytest.raises(ValueError, match="Received:"):
        callbacks.ExplanationStabilityMonitor(**args)


def test_monitor_mode_of_unknown_key():
    x, y = _data()
    monitor = callbacks.ExplanationStabilityMonitor(x[:2], y[:2])
    with pytest.raises(ValueError, match="Received: name='loss'"):
        monitor.mode("loss")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"path": "a_{step}.png"},
        {"path": "a.png", "every": -1},
        {"path": "a.png", "explain": "nope"},
        {"path": "a.png", "x": np.zeros((2, 5), "float32")},
        {"path": "a.png", "y": np.zeros(5, "int32")},
    ],
)
def test_snapshot_bad_arguments(kwargs):
    x, _ = _data()
    args = {"x": x[:2], **kwargs}
    with pytest.raises(ValueError, match="Received:"):
        callbacks.AttributionSnapshot(**args)
