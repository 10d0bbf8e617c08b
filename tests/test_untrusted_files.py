"""A `.keras` file is data: loading one never imports or runs code it names."""

import json
import sys
import zipfile

import keras
import pytest

import keras_interp as ki
from keras_interp import _layer_classes
from tests.test_cli import assert_usage_error
from tests.test_cli import run_cli

MODULE = "ki_untrusted_marker"


def _saved_model(path, layers):
    model = ki.RegularizedModel(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="logits")]),
        [ki.regularizers.NeuronSensitivity(1.0, 0.1, layers=layers)],
        seed=0,
    )
    model.save(path)
    return model


def _rewrite_config(path, old, new):
    """Replaces `old` by `new` in the file's config.json, keeping every other member."""
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    config = members["config.json"].decode()
    if old not in config:
        raise KeyError(f"{old!r} is not in the saved config")
    members["config.json"] = config.replace(old, new).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)


@pytest.fixture
def hostile_module(tmp_path, monkeypatch):
    """A module on the path that writes a marker file when imported."""
    marker = tmp_path / "imported"
    (tmp_path / f"{MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nimport keras\nAnything = keras.layers.Dense\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return marker


def _crafted(tmp_path):
    path = str(tmp_path / "crafted.keras")
    _saved_model(path, [keras.layers.Dense])
    saved = json.dumps({"class": _layer_classes.name_of(keras.layers.Dense)})
    _rewrite_config(path, saved, json.dumps({"class": f"{MODULE}.Anything"}))
    return path


def test_load_model_never_imports_a_module_named_in_the_file(tmp_path, hostile_module):
    path = _crafted(tmp_path)
    with pytest.raises(Exception, match=f"{MODULE}.Anything"):
        keras.saving.load_model(path)
    assert not hostile_module.exists()
    assert MODULE not in sys.modules


def test_cli_never_imports_a_module_named_in_the_file(tmp_path, hostile_module):
    path = _crafted(tmp_path)
    code, _, err = run_cli("attack", path, "--kind", "fgsm", "--eval-size", "4")
    assert_usage_error(code, err, "Could not load", f"{MODULE}.Anything")
    assert not hostile_module.exists()


def test_layer_classes_round_trip_through_keras_names(tmp_path):
    path = str(tmp_path / "m.keras")
    _saved_model(path, ["logits", keras.layers.Dense, ki.layers.Softplus])
    with zipfile.ZipFile(path) as z:
        config = z.read("config.json").decode()
    assert '"Dense"' in config and "keras_interp>Softplus" in config
    loaded = keras.saving.load_model(path)
    assert loaded.regularizers[0].layers == ["logits", keras.layers.Dense, ki.layers.Softplus]


def test_a_module_path_saved_by_an_earlier_version_loads_without_importing(tmp_path):
    path = str(tmp_path / "old.keras")
    _saved_model(path, [keras.layers.Dense])
    dense = keras.layers.Dense
    _rewrite_config(
        path,
        json.dumps({"class": "Dense"}),
        json.dumps({"class": f"{dense.__module__}.{dense.__qualname__}"}),
    )
    loaded = keras.saving.load_model(path)
    assert loaded.regularizers[0].layers == [keras.layers.Dense]


@pytest.mark.parametrize(
    "spec",
    [{"class": "os.system"}, {"class": "builtins.eval"}, {"class": 3}, {"class": "Dense", "x": 1}, 7],
)
def test_anything_but_a_registered_layer_class_is_refused(spec):
    config = {"weight": 1.0, "epsilon": 0.1, "layers": [spec]}
    with pytest.raises(ValueError, match="layers"):
        ki.regularizers.NeuronSensitivity.from_config(config)


def test_a_registered_class_that_is_not_a_layer_is_refused():
    # A registered name resolves only to a layer class, never to a function.
    assert "keras_interp>NeuronSensitivity" in keras.saving.get_custom_objects()
    with pytest.raises(ValueError, match="never imports"):
        _layer_classes.resolve("keras_interp>NeuronSensitivity")
