"""Saving, loading and resuming a RegularizedModel."""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import regularizers
from tests.conftest import small_cnn

pytestmark = pytest.mark.multibackend

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data(n=32):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (n, 10, 10, 2)).astype("float32"), rng.integers(0, 4, n)


def all_three(hooked="dense"):
    return [
        regularizers.NeuronSensitivity(
            0.5, 0.3, num_perturbations=2, layers=[hooked, keras.layers.Conv2D], chunk_size=1
        ),
        regularizers.JacobianNorm(0.2, num_projections=2),
        regularizers.AdversarialTraining(0.05, steps=2, norm="l2", clip=(0.0, 1.0)),
    ]


def compiled(model):
    model.compile(keras.optimizers.Adam(1e-3), CE, metrics=["accuracy"])
    return model


def test_save_load_round_trip_continues_identically(tmp_path):
    x, y = data()
    model = small_cnn(0)
    dense = model.layers[-2].name
    original = compiled(ki.RegularizedModel(model, all_three(dense), seed=3))
    original.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "m.keras"
    original.save(path)
    loaded = keras.models.load_model(path)

    assert isinstance(loaded, ki.RegularizedModel)
    assert [r.get_config() for r in loaded.regularizers] == [
        r.get_config() for r in original.regularizers
    ]
    assert loaded.regularizers[0].layers == [dense, keras.layers.Conv2D]
    for a, b in zip(original.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), original.predict(x, verbose=0), rtol=1e-6
    )
    # Optimizer state and the regularisers' random streams come back too:
    # one more epoch gives the same losses from either copy.
    more = [
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
        for m in (original, loaded)
    ]
    for key in ("loss", "neuron_sensitivity", "jacobian_norm", "adversarial_loss"):
        np.testing.assert_allclose(more[0][key], more[1][key], rtol=1e-5, err_msg=key)
    # And the weights are exactly those of the original.
    for a, b in zip(original.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


class Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_an_interrupted_run(tmp_path):
    x, y = data()

    def fresh():
        return compiled(
            ki.RegularizedModel(
                small_cnn(1), [regularizers.NeuronSensitivity(1.0, 0.3, num_perturbations=2)], seed=1
            )
        )

    fit = dict(batch_size=8, epochs=3, shuffle=False, verbose=0)
    straight = fresh().fit(x, y, **fit).history

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        fresh().fit(x, y, callbacks=[backup, Interrupt(2)], **fit)
    resumed = fresh().fit(x, y, callbacks=[backup], **fit).history

    assert len(resumed["loss"]) == 1  # only epoch 3 was left to run
    np.testing.assert_allclose(resumed["loss"][-1], straight["loss"][-1], rtol=1e-4)
    np.testing.assert_allclose(
        resumed["neuron_sensitivity"][-1], straight["neuron_sensitivity"][-1], rtol=1e-4
    )


def test_model_checkpoint_saves_a_loadable_regularized_model(tmp_path):
    x, y = data()
    model = compiled(
        ki.RegularizedModel(small_cnn(2), [regularizers.JacobianNorm(0.1)], seed=0)
    )
    path = tmp_path / "best.keras"
    model.fit(
        x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y),
        callbacks=[keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)],
    )
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, ki.RegularizedModel)
    assert loaded.regularizers[0].get_config() == {"weight": 0.1, "num_projections": 1}


def test_regularizer_configs_round_trip_through_get():
    for reg in all_three():
        config = keras.saving.serialize_keras_object(reg)
        again = regularizers.get(config)
        assert type(again) is type(reg) and again.get_config() == reg.get_config()
    built = regularizers.get("neuron_sensitivity", weight=2.0, epsilon=0.1)
    assert built.get_config()["weight"] == 2.0 and built.num_perturbations == 5
