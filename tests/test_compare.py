"""The comparison protocol: its steps against manual runs, and `compare` end to end."""

import json
import os
import re

import keras
import numpy as np
import pytest

from keras_interp import attacks
from keras_interp import attribution
from keras_interp import metrics
from keras_interp import regularizers
from keras_interp.experiments import comparison as compare_module
from keras_interp.experiments import protocol
from keras_interp.model import RegularizedModel

# Backend-independent orchestration: `make test` runs it on TensorFlow, CI
# on JAX and PyTorch too (`make test-backends`).
pytestmark = pytest.mark.backends_in_ci


@pytest.fixture(scope="module")
def digits():
    from keras_interp import data

    (x_train, y_train), (x_test, y_test) = data.load("mnist5k")
    return x_train[:256], y_train[:256], x_test[:64], y_test[:64]


@pytest.fixture(scope="module")
def standard(digits):
    x, y, _, _ = digits
    model = protocol.build_model("small_cnn", x.shape[1:], 10)
    protocol.train_standard(model, x, y, epochs=1, verbose=0)
    return model


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def test_fine_tune_leaves_the_standard_model_untouched(digits, standard):
    x, y, _, _ = digits
    before = _weights(standard)
    tuned, history = protocol.fine_tune(standard, "jacobian", x, y, epochs=1, start_epoch=3, verbose=0)
    after = _weights(standard)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert not all(np.array_equal(a, b) for a, b in zip(before, _weights(tuned)))
    assert history["epoch"] == [3] and "jacobian_norm" in history
    assert not isinstance(tuned, RegularizedModel)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_nsloss_fine_tuning_equals_the_manual_composition(digits, standard, chunk_size):
    x, y, _, _ = digits
    tuned, _ = protocol.fine_tune(
        standard, "nsloss", x, y, epochs=1, seed=3, verbose=0, weight=2.0, chunk_size=chunk_size
    )

    keras.utils.set_random_seed(3)
    manual = protocol.copy_model(standard)
    reg = regularizers.NeuronSensitivity(2.0, 1.0, num_perturbations=5, chunk_size=chunk_size)
    wrapper = RegularizedModel(manual, [reg], seed=3)
    wrapper.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    wrapper.fit(x, y, epochs=1, batch_size=64, verbose=0)
    for a, b in zip(_weights(tuned), _weights(manual)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_evaluate_model_equals_its_parts_called_directly(digits, standard):
    _, _, x, y = digits
    result = protocol.evaluate_model(
        standard, x[:4], y[:4], explainers=("integrated_gradients",),
        metrics=("max_sensitivity", "sparseness"), ig_steps=8,
        metric_options={"max_sensitivity": {"num_samples": 3}}, robust=(x, y),
        pgd_epsilon=0.1, pgd_steps=3, seed=5, verbose=0,
    )
    logits = keras.ops.convert_to_numpy(standard(x))
    assert result["clean_accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))
    x_adv = keras.ops.convert_to_numpy(attacks.pgd(standard, x, y, epsilon=0.1, steps=3, clip=(0, 1), seed=5))
    adv_logits = keras.ops.convert_to_numpy(standard(x_adv))
    assert result["robust_accuracy"] == pytest.approx(np.mean(adv_logits.argmax(1) == y))

    def ig(model, inputs, target=None):
        return attribution.integrated_gradients(model, inputs, target, steps=8)

    sensitivity = metrics.max_sensitivity(standard, x[:4], y[:4], ig, num_samples=3, seed=5)
    sparse = metrics.sparseness(ig(standard, x[:4], y[:4]))
    scores = result["metrics"]["integrated_gradients"]
    assert scores["max_sensitivity"]["mean"] == pytest.approx(np.mean(sensitivity), rel=1e-5)
    assert scores["sparseness"]["mean"] == pytest.approx(np.mean(keras.ops.convert_to_numpy(sparse)), rel=1e-5)
    assert scores["sparseness"]["sem"] == pytest.approx(
        np.std(keras.ops.convert_to_numpy(sparse), ddof=1) / 2, rel=1e-4
    )
    assert result["higher_is_better"] == {"max_sensitivity": False, "sparseness": True}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s, x, y: protocol.fine_tune(s, "dropout", x, y), "method"),
        (lambda s, x, y: protocol.fine_tune(s, "standard", x, y), "train_standard"),
        (lambda s, x, y: protocol.fine_tune(s, "nsloss", x, y, radius=1.0), "radius"),
        (lambda s, x, y: protocol.build_model("resnet50", (28, 28, 1), 10), "resnet50"),
        (lambda s, x, y: compare_module.compare(methods=("standard", "dropout")), "dropout"),
        (lambda s, x, y: compare_module.compare(methods=()), "methods"),
        (lambda s, x, y: compare_module.compare(eval_size=0), "eval_size"),
        (lambda s, x, y: compare_module.compare(out_dir="/proc/self/keras_interp_test"),
         "Received: out_dir='/proc/self/keras_interp_test'"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(digits, standard, call, message):
    x, y, _, _ = digits
    with pytest.raises(ValueError, match=message):
        call(standard, x, y)


def test_merged_history_continues_the_standard_curves():
    first = {"epoch": [0, 1], "loss": [2.0, 1.0], "max_sensitivity": [0.5, 0.4]}
    second = {"epoch": [2], "loss": [0.9], "neuron_sensitivity": [0.1], "max_sensitivity": [0.3]}
    merged = compare_module._merge(first, second)
    assert merged["epoch"] == [0, 1, 2]
    assert merged["loss"] == [2.0, 1.0, 0.9]
    assert merged["neuron_sensitivity"] == [None, None, 0.1]


TINY = {
    "eval_size": 3,
    "ig_steps": 4,
    "shap_samples": 4,
    "metric_options": {
        "max_sensitivity": {"num_samples": 2},
        "avg_sensitivity": {"num_samples": 2},
        "local_lipschitz_estimate": {"num_samples": 2},
        "faithfulness_correlation": {"num_runs": 3},
    },
    "pgd": {"epsilon": 0.1, "steps": 2},
    "monitor": {"size": 3, "ig_steps": 2, "metrics": ("max_sensitivity", "sparseness")},
    "lambda_factors": (1.0, 3.0),
    "manipulation": {"epsilons": (0.04,), "size": 6, "steps": 3},
    "atex_train_size": 64,
    "atex": {"smoothgrad_samples": 2},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`keras-interp compare --quick` on 192 digits, one epoch each, tiny samples."""
    from keras_interp import cli

    if keras.config.backend() == "jax":
        # Four minutes of XLA compilation on a 2-core CPU for a job whose
        # logic is the library's: its parts run on JAX in the other suites,
        # the whole job on TensorFlow and PyTorch.
        pytest.skip("the comparison job end to end runs on TensorFlow and PyTorch")

    out = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in TINY.items():
            patch.setitem(compare_module.QUICK, key, value)
        code = cli.main(
            ["compare", "--quick", "--train-size", "192", "--epochs", "1", "--finetune-epochs", "1",
             "--chunk-size", "2", "--out", str(out), "--quiet"]
        )
    assert code == 0
    with open(os.path.join(out, "results.json")) as f:
        # JSON has no NaN: undefined scores must have become null.
        results = json.load(f, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    return out, results


def test_compare_writes_every_method_and_metric(run):
    out, saved = run
    assert saved["backend"] == keras.config.backend()
    assert saved["methods"] == list(protocol.METHODS)
    assert saved["num_train"] == 192 and saved["num_eval"] == 3
    assert saved["results"]["nsloss"]["config"]["chunk_size"] == 2
    for method in protocol.METHODS:
        entry = saved["results"][method]
        for explainer in protocol.EXPLAINERS:
            assert set(entry["metrics"][explainer]) == set(metrics.PAPER_METRICS)
        assert 0.0 <= entry["clean_accuracy"] <= 1.0 and 0.0 <= entry["robust_accuracy"] <= 1.0
        # Curves continue the standard model's epochs (Figure 4).
        assert entry["history"]["epoch"] == ([0] if method == "standard" else [0, 1])
        assert len(entry["history"]["max_sensitivity"]) == len(entry["history"]["epoch"])
    for name in ("attributions", "metrics_over_epochs"):
        with open(os.path.join(out, saved["figures"][name]), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    manipulation = saved["manipulation"]
    assert [row["epsilon"] for row in manipulation["rows"]] == [0.04]
    assert set(manipulation["rows"][0]["rank_correlation"]) == {protocol.LABELS[m] for m in protocol.METHODS}


def test_the_sweep_reuses_the_nsloss_model_at_its_default_weight(run):
    _, results = run
    rows = results["lambda_sweep"]["rows"]
    default = protocol.FINE_TUNING["nsloss"]["weight"]
    assert [row["weight"] for row in rows] == [default, 3 * default]
    nsloss = results["results"]["nsloss"]
    assert rows[0]["clean_accuracy"] == nsloss["clean_accuracy"]
    for name in ("max_sensitivity", "sparseness"):
        assert rows[0]["metrics"][name] == nsloss["metrics"]["integrated_gradients"][name]


def test_the_report_shows_the_numbers_of_results_json(run):
    out, results = run
    with open(os.path.join(out, "report.md")) as f:
        markdown = f.read()
    with open(os.path.join(out, "report.html")) as f:
        page = f.read()
    for method in protocol.METHODS:
        entry = results["results"][method]
        line = next(l for l in markdown.splitlines() if l.startswith(f"| {entry['label']} |"))
        assert f"{entry['clean_accuracy']:.3f}" in line
        sparseness = entry["metrics"]["integrated_gradients"]["sparseness"]["mean"]
        assert f"{sparseness:.3f}" in line
    images = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(images) == 2


def test_results_json_has_a_run_id_the_reports_show_and_is_written_last(run):
    out, results = run
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", results["run_id"])
    for name in ("report.md", "report.html"):
        with open(os.path.join(out, name), encoding="utf-8") as f:
            assert results["run_id"] in f.read()
    # A folder holding a results.json holds a finished run: it is written last.
    written = {name: os.stat(os.path.join(out, name)).st_mtime_ns for name in os.listdir(out)}
    assert sorted(written) == ["attributions.png", "metrics_over_epochs.png", "report.html", "report.md",
                               "results.json"]
    assert max(written, key=written.get) == "results.json"


def test_a_run_that_fails_before_its_results_leaves_no_results_json(tmp_path, monkeypatch):
    # The old run's results.json would vouch for the new run's half-written
    # figures and report: it goes before the first of them is written.
    (tmp_path / "results.json").write_text('{"run_id": "an older run"}')

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    # Only the training runs; the scores it would take minutes to measure
    # are stubs, and the run is killed at the first file it writes.
    monkeypatch.setattr(protocol, "evaluate_model", lambda *args, **kwargs: {
        "higher_is_better": {}, "clean_accuracy": 0.0, "robust_accuracy": 0.0})
    monkeypatch.setattr(compare_module, "_manipulation", lambda *args: {})
    monkeypatch.setattr(compare_module, "_attribution_figure", killed)
    for key, value in TINY.items():
        monkeypatch.setitem(compare_module.QUICK, key, value)
    with pytest.raises(KeyboardInterrupt):
        compare_module.compare(methods=("standard",), quick=True, epochs=1, train_size=64,
                               out_dir=str(tmp_path), verbose=0)
    assert not (tmp_path / "results.json").exists()
    assert all(not name.startswith(".") for name in os.listdir(tmp_path))


@pytest.mark.slow
def test_compare_runs_preresnet10_on_an_image_folder(tmp_path):
    # Paper 1's architecture on photographs of another size and channel
    # count, read from a class-per-folder tree (the ImageNette path without
    # the download): every stage, with softplus smoothing of a ResNet.
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog", "bird"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(20):
            pixels = (rng.random((48, 40, 3)) * 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / "photos" / label / f"{i}.png")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in TINY.items():
            patch.setitem(compare_module.QUICK, key, value)
        results = compare_module.compare(
            str(tmp_path / "photos"), model="preresnet10", image_size=32, quick=True,
            methods=("standard", "nsloss", "atex"), epochs=1, finetune_epochs=1,
            out_dir=str(tmp_path / "out"), verbose=0,
        )
    assert results["model"] == "preresnet10" and results["num_train"] + results["num_test"] == 60
    for method in ("standard", "nsloss", "atex"):
        scores = results["results"][method]["metrics"]["gradient_shap"]
        assert set(scores) == set(metrics.PAPER_METRICS)
    assert set(results["manipulation"]["rows"][0]["ssim"]) == {"Standard", "NsLoss", "ATEX"}
    assert os.path.exists(tmp_path / "out" / "report.html")
