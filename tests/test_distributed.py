"""Training under Keras' distribution APIs, 2 devices of one CPU.

Each case runs in a process of its own (tests/distributed/): the devices
are split before the backend starts, and the pytest process may run any
backend. One epoch on 2 devices gives the per-batch logs, the History
(validation terms included) and the weights of one device training on
the same global batch with the same seed: every replica takes its own
rows of draws made for the global batch (PGD's random start included),
and Keras' division of the loss by the number of replicas (tf.distribute)
applies to the terms too. The same holds for ATEX's distillation
(`ATEXDataset` + `Distillation`, the steps of `keras_interp.atex.fit`),
and the values ExplanationStabilityMonitor logs are one device's too (it
rides on one of the regulariser runs).
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
# The run of tests/distributed/train.py that also carries an
# ExplanationStabilityMonitor (prefix "expl_"), and the keys it logs.
MONITORED = "jacobian_norm"
MONITOR_KEYS = {"expl_max_sensitivity", "expl_sparseness"}
# Minutes of subprocesses on a 2-core CPU: `make test-slow`, which CI runs.
pytestmark = pytest.mark.slow


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
    batches = 7 if name == "atex" else 4
    assert len(one["batches"]) == len(distributed["batches"]) == batches
    for a, b in zip(one["batches"], distributed["batches"]):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, err_msg=f"{name}: {key}")
    if name == "atex":
        expected = {"loss", "agreement"}
    else:
        expected = {"loss", name, "val_loss", "val_" + name}
    if name == MONITORED:
        expected |= MONITOR_KEYS
    assert set(one["history"]) == set(distributed["history"]) == expected
    for key, value in one["history"].items():
        # The monitor's metrics are computed from the trained weights.
        rtol = 1e-4 if key in MONITOR_KEYS else 1e-5
        np.testing.assert_allclose(distributed["history"][key], value, rtol=rtol, err_msg=key)
    for a, b in zip(one["weights"], distributed["weights"]):
        # Two replicas sum their gradients in another order than one device:
        # float32 rounding, which a weight near 0 shows as a relative error
        # (1.3e-6 absolute on a weight of 3e-3, JAX, NsLoss, on this CPU
        # model; the landed code failed at atol 1e-6 too). A wrong split of
        # the draws moves weights by about 0.4.
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def tensorflow():
    return run_script("tests.distributed.train", "tensorflow", *TERMS, "atex")


@pytest.mark.parametrize("name", [*TERMS, "atex"])
def test_mirrored_strategy_trains_like_one_device(tensorflow, name):
    run = tensorflow["runs"][name]
    assert run["distributed"]["variable_replicas"] == 2
    assert_same_training(run, name)


def test_mirrored_replicas_take_their_rows_of_one_global_draw(tensorflow):
    draws = tensorflow["draws"]
    # 4 examples, 2 per replica, 2 perturbations: rows k * B + m.
    one = np.reshape(draws["one_device"], (2, 4, 3))
    replicas = [np.reshape(r, (2, 2, 3)) for r in draws["replicas"]]
    np.testing.assert_allclose(np.concatenate(replicas, axis=1), one, rtol=1e-6)
    assert not np.allclose(replicas[0], replicas[1], atol=1e-3)
    # The mirrored seed state advanced once, on every replica, as on one device.
    assert draws["seed_states"] == [draws["one_device_seed_state"]] * 2


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_mirrored_pgd_random_start_is_one_devices(tensorflow, norm):
    # 5 examples split 3 + 2: each replica attacks its rows from its rows
    # of the start one device draws for all 5.
    pgd = tensorflow["draws"]["pgd"][norm]
    replicas = [np.asarray(r) for r in pgd["replicas"]]
    assert [len(r) for r in replicas] == [3, 2]
    one = np.asarray(pgd["one_device"])
    np.testing.assert_allclose(np.concatenate(replicas), one, rtol=1e-5, atol=1e-6)
    # It started away from x: a step of 0.01 alone moves no row this far.
    delta = (one - np.asarray(pgd["clean"])).reshape(len(one), -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert size.max() > 0.05


@pytest.mark.parametrize(
    "names",
    [
        ("neuron_sensitivity", "jacobian_norm"),
        ("explanation_consistency", "adversarial_loss", "atex"),
    ],
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
