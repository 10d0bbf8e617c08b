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
History (validation terms included) and the final weights. The last line
of stdout is one JSON object.
"""

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
from keras_interp import backend  # noqa: E402
from tests.conftest import small_cnn  # noqa: E402

# 28 examples at a global batch of 8: batches 8, 8, 8, 4, each split evenly
# over 2 replicas (Keras' per-batch logs average the replicas' running
# means, which is the global mean when the replicas' batches are equal).
EXAMPLES, BATCH, SEED = 28, 8, 3


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


def fit(model):
    x, y = data()
    batches = BatchLogs()
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        validation_data=(x[:8], y[:8]),
        callbacks=[batches],
        verbose=0,
    ).history
    return {
        "batches": batches.logs,
        "history": {k: float(v[-1]) for k, v in history.items()},
        "weights": [w.tolist() for w in model.model.get_weights()],
    }


def jax_run(name):
    devices = keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    try:
        model = build(name)
        result = fit(model)
    finally:
        keras.distribution.set_distribution(None)
    kernel = model.model.trainable_variables[0].value
    result["devices"] = len(devices)
    result["variable_devices"] = len(kernel.sharding.device_set)
    return result


def tensorflow_run(name):
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(DEVICES)])
    with strategy.scope():
        model = build(name)
    result = fit(model)
    result["devices"] = strategy.num_replicas_in_sync
    return result


def tensorflow_draws():
    """Each replica's draws, next to one device's draw for the global batch."""
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(DEVICES)])
    x = np.zeros((4, 3), "float32")
    local = strategy.experimental_distribute_values_from_function(
        lambda context: x[2 * context.replica_id_in_sync_group :][:2]
    )

    def draw():
        with strategy.scope():
            layer = ki.layers.SpherePerturbation(2, 0.5, seed=7)
            generator = keras.random.SeedGenerator(11)

        @tf.function
        def step(local):
            def replica(rows):
                folded = keras.random.uniform((2,), seed=backend.replica_seed(generator))
                return layer(rows, training=True), folded

            return strategy.run(replica, args=(local,))

        perturbed, folded = step(local)
        return {
            "replicas": [v.numpy().tolist() for v in perturbed.values],
            "seed_states": [v.numpy().tolist() for v in layer.seed_generator.state.value.values],
            "folded": [v.numpy().tolist() for v in folded.values],
        }

    out = draw()
    out["folded_again"] = draw()["folded"]
    one = ki.layers.SpherePerturbation(2, 0.5, seed=7)
    out["one_device"] = keras.ops.convert_to_numpy(one(x, training=True)).tolist()
    out["one_device_seed_state"] = keras.ops.convert_to_numpy(one.seed_generator.state.value).tolist()
    return out


def main(names):
    distributed = {"jax": jax_run, "tensorflow": tensorflow_run}[BACKEND]
    out = {"backend": BACKEND, "runs": {}}
    for name in names:
        keras.utils.set_random_seed(0)
        one = fit(build(name))
        keras.utils.set_random_seed(0)
        out["runs"][name] = {"one_device": one, "distributed": distributed(name)}
    if BACKEND == "tensorflow":
        out["draws"] = tensorflow_draws()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
