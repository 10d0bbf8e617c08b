"""RegularizedModel under Keras' distribution APIs, 2 devices of one CPU.

Each case runs in a process of its own (tests/distributed/): the devices
are split before the backend starts, and the pytest process may run any
backend. One epoch on 2 devices gives the per-batch logs, the History
(validation terms included) and the weights of one device training on
the same global batch with the same seed: every replica takes its own
rows of draws made for the global batch, and Keras' division of the
loss by the number of replicas (tf.distribute) applies to the terms too.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TERMS = ("neuron_sensitivity", "jacobian_norm", "explanation_consistency", "adversarial_loss")


def run_script(module, backend, *args):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"{module} on {backend} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_same_training(run, name):
    one, distributed = run["one_device"], run["distributed"]
    assert distributed["devices"] == 2
    assert len(one["batches"]) == len(distributed["batches"]) == 4
    for a, b in zip(one["batches"], distributed["batches"]):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, err_msg=f"{name}: {key}")
    assert set(one["history"]) == {"loss", name, "val_loss", "val_" + name}
    for key, value in one["history"].items():
        np.testing.assert_allclose(distributed["history"][key], value, rtol=1e-5, err_msg=key)
    for a, b in zip(one["weights"], distributed["weights"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def tensorflow():
    return run_script("tests.distributed.train", "tensorflow", *TERMS)


@pytest.mark.parametrize("name", ["neuron_sensitivity", "jacobian_norm", "explanation_consistency"])
def test_mirrored_strategy_trains_like_one_device(tensorflow, name):
    assert_same_training(tensorflow["runs"][name], name)


def test_mirrored_strategy_adversarial_term_is_the_global_loss(tensorflow):
    # PGD's random start is folded per replica (backend.replica_seed), so
    # the run is not one device's; its term replaces the loss and must
    # read as the same global mean as `loss`, not the per-replica share.
    run = tensorflow["runs"]["adversarial_loss"]["distributed"]
    for logs in run["batches"]:
        np.testing.assert_allclose(logs["adversarial_loss"], logs["loss"], rtol=1e-6)
    one = tensorflow["runs"]["adversarial_loss"]["one_device"]["history"]["loss"]
    np.testing.assert_allclose(run["history"]["loss"], one, rtol=0.05)


def test_mirrored_replicas_take_their_rows_of_one_global_draw(tensorflow):
    draws = tensorflow["draws"]
    # 4 examples, 2 per replica, 2 perturbations: rows k * B + m.
    one = np.reshape(draws["one_device"], (2, 4, 3))
    replicas = [np.reshape(r, (2, 2, 3)) for r in draws["replicas"]]
    np.testing.assert_allclose(np.concatenate(replicas, axis=1), one, rtol=1e-6)
    assert not np.allclose(replicas[0], replicas[1], atol=1e-3)
    # The mirrored seed state advanced once, on every replica, as on one device.
    assert draws["seed_states"] == [draws["one_device_seed_state"]] * 2
    # Folded seeds: different per replica, the same again for the same seed.
    folded = np.asarray(draws["folded"])
    assert not np.allclose(folded[0], folded[1])
    np.testing.assert_array_equal(folded, draws["folded_again"])


@pytest.mark.parametrize(
    "names", [("neuron_sensitivity", "jacobian_norm"), ("explanation_consistency", "adversarial_loss")]
)
def test_jax_data_parallel_trains_like_one_device(names):
    out = run_script("tests.distributed.train", "jax", *names)
    for name in names:
        run = out["runs"][name]
        assert run["distributed"]["variable_devices"] == 2
        assert_same_training(run, name)


def test_distribution_on_torch_is_an_error_not_one_device():
    out = run_script("tests.distributed.unsupported", "torch")
    assert out["backend"] == "torch"
    assert out["error"] is not None and out["error"]["type"] == "ValueError"
    message = out["error"]["message"]
    assert "JAX" in message and "PyTorch" in message and "'torch'" in message


def test_distribution_on_a_backend_that_ignores_it_is_an_error():
    # In this process, whatever its backend: only JAX applies keras.distribution.
    import keras

    import keras_interp as ki
    from tests.conftest import small_cnn

    if keras.config.backend() == "jax":
        pytest.skip("keras.distribution applies on JAX (see the test above)")
    model = ki.RegularizedModel(small_cnn(0), [ki.regularizers.JacobianNorm(0.1)], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=["cpu:0", "cpu:1"])
    )
    try:
        with pytest.raises(ValueError, match="JAX trainer only"):
            model.fit(np.zeros((4, 10, 10, 2), "float32"), np.zeros(4, "int32"), verbose=0)
    finally:
        keras.distribution.set_distribution(None)
