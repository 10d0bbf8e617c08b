"""One-epoch fits on one device and on 2 devices of one CPU; prints JSON.

Run by tests/test_distributed.py in a process of its own, as
`python -m tests.distributed.train REGULARIZER...` from the repository root
with KERAS_BACKEND set: the devices must be split before the backend
starts, which a pytest process that already imported it cannot do.

- jax: `XLA_FLAGS=--xla_force_host_platform_device_count=2`, then
  `keras.distribution.DataParallel` over both devices;
- tensorflow: 2 logical CPU devices, `tf.distribute.MirroredStrategy`,
  the model built and compiled in `strategy.scope()`.

For each regulariser named on the command line the same model (weights
from NumPy), data, seed and global batch are fitted for one epoch on one
device and then distributed, recording the per-batch logs, the epoch's
History (validation terms included) and the final weights. The run of
`MONITORED` also carries `keras_interp.callbacks.ExplanationStabilityMonitor`,
whose values land in its History. The name `atex` trains an ATEX student
the same way (`ATEXDataset`, `Distillation` and a plain Keras student,
as `keras_interp.atex.fit` does). The last line of stdout is one JSON object.
"""

import functools
import json
import os
import sys

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
DEVICES = 2
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={DEVICES}"
    )
if BACKEND == "tensorflow":
    import tensorflow as tf

    # Before anything initialises TensorFlow's devices.
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * DEVICES,
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_interp as ki  # noqa: E402
from keras_interp import attacks  # noqa: E402
from tests.conftest import small_cnn  # noqa: E402

# 28 examples at a global batch of 8: batches 8, 8, 8, 4, each split evenly
# over 2 replicas (Keras' per-batch logs average the replicas' running
# means, which is the global mean when the replicas' batches are equal).
EXAMPLES, BATCH, SEED = 28, 8, 3
# The regulariser whose run also carries the callbacks (in every process).
MONITORED = "jacobian_norm"
# ATEX: 4 seed instances and 4 samples each per batch, 8 rows, 7 batches.
ATEX = dict(batch_size=4, num_along=2, num_across=2, smoothgrad_samples=4, delta1=2.0)


def regularizer(name):
    return {
        "neuron_sensitivity": ki.regularizers.NeuronSensitivity(
            0.5, epsilon=0.3, num_perturbations=2
        ),
        "jacobian_norm": ki.regularizers.JacobianNorm(0.3, num_projections=2),
        "explanation_consistency": ki.regularizers.ExplanationConsistency(
            0.5, epsilon=0.1, num_neighbors=2
        ),
        "adversarial_loss": ki.regularizers.AdversarialTraining(0.1, steps=2, clip=(0, 1)),
    }[name]


def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (EXAMPLES, 10, 10, 2)).astype("float32")
    return x, rng.integers(0, 4, EXAMPLES).astype("int32")


class BatchLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})


def build(name):
    model = ki.RegularizedModel(
        small_cnn(0), [regularizer(name)], seed=SEED, evaluate_regularizers=True
    )
    model.compile(
        keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def monitor():
    """The explanation monitor on a probe batch (max sensitivity draws noise)."""
    x, y = data()
    return ki.callbacks.ExplanationStabilityMonitor(
        x[:4],
        y[:4],
        "vanilla_gradient",
        metrics=("max_sensitivity", "sparseness"),
        # One noisy copy per example: the same shape as the probe, one trace.
        metric_kwargs={"max_sensitivity": {"num_samples": 1}},
        prefix="expl_",
    )


def fit(model, name):
    x, y = data()
    batches = BatchLogs()
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        validation_data=(x[:8], y[:8]),
        # The monitor first: Keras calls callbacks in order with one `logs`.
        callbacks=([monitor()] if name == MONITORED else []) + [batches],
        verbose=0,
    ).history
    return {
        "batches": batches.logs,
        "history": {k: float(v[-1]) for k, v in history.items()},
        "weights": [w.tolist() for w in model.model.get_weights()],
    }


@functools.lru_cache(maxsize=None)
def atex_directions():
    """The teacher's SmoothGrad directions, as `ATEXDataset` computes them
    from `SEED`; computed once (most of the dataset's cost) for both runs."""
    return ki.atex.explanation_directions(
        small_cnn(0), data()[0], num_samples=ATEX["smoothgrad_samples"], seed=SEED
    )


def fit_atex():
    """`keras_interp.atex.fit`'s steps, with Keras' batch order fixed.

    `atex.fit` leaves `fit(shuffle=True)`, which shuffles the order of the
    dataset's batches with Python's global `random`, and a tf.distribute
    fit starts the generator once more than one device does, so the two
    runs would take the (same) batches in different orders.
    """
    x, _ = data()
    batches = BatchLogs()
    teacher = small_cnn(0)
    dataset = ki.atex.ATEXDataset(
        teacher, x, seed=SEED, directions=atex_directions(), verbose=0, **ATEX
    )
    student = ki.atex.student_of(teacher)
    student.compile(
        keras.optimizers.SGD(0.1),
        ki.atex.Distillation(),
        metrics=[keras.metrics.CategoricalAccuracy(name="agreement")],
    )
    history = student.fit(dataset, epochs=1, shuffle=False, callbacks=[batches], verbose=0)
    return {
        "batches": batches.logs,
        "history": {k: float(v[-1]) for k, v in history.history.items()},
        "weights": [w.tolist() for w in student.get_weights()],
    }, student


def train(name):
    if name == "atex":
        return fit_atex()
    model = build(name)
    return fit(model, name), model.model


def jax_run(name):
    devices = keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    try:
        result, model = train(name)
    finally:
        keras.distribution.set_distribution(None)
    kernel = model.trainable_variables[0].value
    result["devices"] = len(devices)
    result["variable_devices"] = len(kernel.sharding.device_set)
    return result


def tensorflow_run(name):
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(DEVICES)])
    if name == "atex":
        # The student is built and compiled, and the dataset made, in the scope.
        with strategy.scope():
            result, model = train(name)
    else:
        with strategy.scope():
            model = build(name)
        result = fit(model, name)
        model = model.model
    result["devices"] = strategy.num_replicas_in_sync
    result["variable_replicas"] = len(model.trainable_variables[0].value.values)
    return result


def tensorflow_draws():
    """Each replica's draws, next to one device's draw for the global batch."""
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(DEVICES)])
    x = np.zeros((4, 3), "float32")
    local = strategy.experimental_distribute_values_from_function(
        lambda context: x[2 * context.replica_id_in_sync_group :][:2]
    )

    with strategy.scope():
        layer = ki.layers.SpherePerturbation(2, 0.5, seed=7)

    @tf.function
    def step(local):
        def replica(rows):
            return layer(rows, training=True)

        return strategy.run(replica, args=(local,))

    perturbed = step(local)
    out = {
        "replicas": [v.numpy().tolist() for v in perturbed.values],
        "seed_states": [v.numpy().tolist() for v in layer.seed_generator.state.value.values],
    }
    one = ki.layers.SpherePerturbation(2, 0.5, seed=7)
    out["one_device"] = keras.ops.convert_to_numpy(one(x, training=True)).tolist()
    out["one_device_seed_state"] = keras.ops.convert_to_numpy(one.seed_generator.state.value).tolist()

    out["pgd"] = {norm: pgd_draws(strategy, norm) for norm in attacks.NORMS}
    return out


def pgd_draws(strategy, norm):
    """PGD (random start: one draw in L-inf, two in L2) on an uneven batch
    of 5 examples, 3 + 2 per replica, next to one device's attack."""
    images = np.asarray(data()[0][:5])
    labels = np.arange(5, dtype="int32") % 4
    split = [slice(0, 3), slice(3, 5)]
    rows, classes = (
        strategy.experimental_distribute_values_from_function(
            lambda context, a=a: a[split[context.replica_id_in_sync_group]]
        )
        for a in (images, labels)
    )
    target = small_cnn(1)
    # A small step, so that the start, not the step, sets where each row ends.
    options = dict(epsilon=0.2, steps=1, step_size=0.01, norm=norm)
    with strategy.scope():
        generator = keras.random.SeedGenerator(11)

    @tf.function
    def attack(rows, classes):
        return strategy.run(
            lambda r, c: attacks.pgd(target, r, c, seed=generator, **options),
            args=(rows, classes),
        )

    replicas = attack(rows, classes)
    one = attacks.pgd(target, images, labels, seed=keras.random.SeedGenerator(11), **options)
    return {
        "replicas": [v.numpy().tolist() for v in replicas.values],
        "one_device": keras.ops.convert_to_numpy(one).tolist(),
        "clean": images.tolist(),
    }


def main(names):
    distributed = {"jax": jax_run, "tensorflow": tensorflow_run}[BACKEND]
    out = {"backend": BACKEND, "runs": {}}
    for name in names:
        keras.utils.set_random_seed(0)
        one, _ = train(name)
        keras.utils.set_random_seed(0)
        out["runs"][name] = {"one_device": one, "distributed": distributed(name)}
    if BACKEND == "tensorflow":
        out["draws"] = tensorflow_draws()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
