"""RegularizedModel: composed equals manual, training on every backend, evaluation."""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import _seeds
from keras_interp import regularizers
from tests.conftest import small_cnn
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def batch(seed=0, n=8, classes=4):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 10, 10, 2)).astype("float32")
    return x, rng.integers(0, classes, n).astype("int32")


def wrap(model, regs, seed=5, **kwargs):
    wrapped = ki.RegularizedModel(model, regs, seed=seed, **kwargs)
    # lr 0: the logged loss is the loss at the initial weights, and the
    # weights stay those the manual computation reads.
    wrapped.compile(keras.optimizers.SGD(0.0), CE)
    return wrapped


def test_nsloss_composed_equals_manual():
    model = small_cnn(0)
    x, y = batch()
    reg = regularizers.NeuronSensitivity(0.7, epsilon=0.3, num_perturbations=3)
    logs = wrap(model, [reg]).train_on_batch(x, y, return_dict=True)

    # By hand: the regulariser's documented seed (mix(seed, 0, 0) for the
    # training stream of regulariser 0), N separate passes through the
    # hooked layers, the public formula.
    perturbed = ki.layers.SpherePerturbation(3, 0.3, seed=_seeds.mix(5, 0, 0))(x, training=True)
    probe = keras.Model(model.inputs[0], [layer.output for layer in reg.hooked_layers(model)])
    clean = probe(x)
    copies = [probe(p) for p in np.split(to_numpy(perturbed), 3)]
    stacked = [np.stack([to_numpy(c[i]) for c in copies]) for i in range(len(clean))]
    term = float(to_numpy(regularizers.neuron_sensitivity_loss(clean, stacked, 0.3)))
    cross_entropy = float(to_numpy(CE(y, model(x))))

    np.testing.assert_allclose(logs["neuron_sensitivity"], term, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], cross_entropy + 0.7 * term, rtol=1e-4)


def test_default_hooks_every_layer_with_weights_logits_included():
    model = small_cnn(0)
    hooked = regularizers.NeuronSensitivity(1.0, 0.1).hooked_layers(model)
    assert [layer.name for layer in hooked] == [
        layer.name for layer in model.layers if layer.weights
    ]
    assert hooked[-1] is model.layers[-1]


def test_jacobian_and_nsloss_composed_equals_manual():
    model = small_cnn(1)
    x, y = batch(1)
    ns = regularizers.NeuronSensitivity(0.5, epsilon=0.2, num_perturbations=2)
    jac = regularizers.JacobianNorm(0.3, num_projections=2)
    logs = wrap(model, [ns, jac]).train_on_batch(x, y, return_dict=True)

    # JacobianNorm is regulariser 1: the training stream's seed mix(5, 0, 1).
    term = float(
        to_numpy(
            regularizers.jacobian_norm_estimate(
                model, x, 2, seed=_seeds.generator(_seeds.mix(5, 0, 1))
            )
        )
    )
    np.testing.assert_allclose(logs["jacobian_norm"], term, rtol=1e-4)
    cross_entropy = float(to_numpy(CE(y, model(x))))
    expected = cross_entropy + 0.5 * logs["neuron_sensitivity"] + 0.3 * term
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)


def test_adversarial_training_loss_is_the_loss_on_the_pgd_batch():
    model = small_cnn(2)
    x, y = batch(2)
    reg = regularizers.AdversarialTraining(0.05, steps=3, clip=(0.0, 1.0))
    logs = wrap(model, [reg]).train_on_batch(x, y, return_dict=True)

    x_adv = ki.attacks.pgd(
        model, x, y, epsilon=0.05, steps=3, clip=(0.0, 1.0),
        seed=_seeds.generator(_seeds.mix(5, 0, 0)),
    )
    adversarial = float(to_numpy(CE(y, model(x_adv))))
    np.testing.assert_allclose(logs["adversarial_loss"], adversarial, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], adversarial, rtol=1e-4)
    assert adversarial > float(to_numpy(CE(y, model(x))))


@pytest.mark.parametrize(
    "reg",
    [
        regularizers.NeuronSensitivity(1.0, epsilon=0.5),
        regularizers.JacobianNorm(0.1),
        regularizers.AdversarialTraining(0.1, steps=2, clip=(0.0, 1.0)),
    ],
    ids=lambda r: r.name,
)
def test_one_epoch_fit(reg):
    x, y = batch(3, n=40)
    model = small_cnn(3)
    before = [w.copy() for w in model.get_weights()]
    wrapped = ki.RegularizedModel(model, [reg], seed=0, evaluate_regularizers=True)
    wrapped.compile("adam", CE, metrics=["accuracy"])
    # 40 rows at batch 16: the last batch is partial.
    history = wrapped.fit(
        x, y, batch_size=16, epochs=1, validation_data=(x[:16], y[:16]), verbose=0
    ).history
    for key in ("loss", reg.name, "accuracy", "val_loss", "val_" + reg.name):
        assert key in history and np.isfinite(history[key]).all(), key
    after = model.get_weights()
    assert all(not np.allclose(a, b) for a, b in zip(before, after))


def test_same_seed_same_training_and_other_seed_differs():
    x, y = batch(4, n=32)

    def run(seed):
        wrapped = ki.RegularizedModel(
            small_cnn(4), [regularizers.NeuronSensitivity(1.0, epsilon=0.5)], seed=seed
        )
        wrapped.compile(keras.optimizers.SGD(0.1), CE)
        history = wrapped.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return history.history["neuron_sensitivity"], wrapped.get_weights()

    (a, wa), (b, wb), (c, _) = run(7), run(7), run(8)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    for u, v in zip(wa, wb):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)
    assert not np.allclose(a, c)


def test_predict_and_evaluate_are_the_wrapped_models():
    x, y = batch(5, n=24)
    model = small_cnn(5)
    wrapped = ki.RegularizedModel(model, [regularizers.NeuronSensitivity(1.0, 0.5)], seed=0)
    wrapped.compile(loss=CE, metrics=["accuracy"])
    model.compile(loss=CE, metrics=["accuracy"])
    np.testing.assert_allclose(
        wrapped.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
    ours = wrapped.evaluate(x, y, verbose=0, return_dict=True)
    theirs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(ours) == set(theirs)  # no term reported as 0
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-5)

    asked = ki.RegularizedModel(
        model, [regularizers.NeuronSensitivity(2.0, 0.5)], seed=0, evaluate_regularizers=True
    )
    asked.compile(loss=CE)
    logs = asked.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["neuron_sensitivity"] > 0
    np.testing.assert_allclose(
        logs["loss"], theirs["loss"] + 2.0 * logs["neuron_sensitivity"], rtol=1e-5
    )


def test_one_hot_labels_train_like_class_indices():
    x, y = batch(6, n=16)
    one_hot = np.eye(4, dtype="float32")[y]
    results = []
    for labels, loss in ((y, CE), (one_hot, keras.losses.CategoricalCrossentropy(from_logits=True))):
        wrapped = ki.RegularizedModel(
            small_cnn(6), [regularizers.AdversarialTraining(0.05, steps=2)], seed=0
        )
        wrapped.compile(keras.optimizers.SGD(0.0), loss)
        results.append(wrapped.train_on_batch(x, labels, return_dict=True)["loss"])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_bad_input_is_rejected_before_training():
    model = small_cnn(7)
    x, y = batch(7)
    with pytest.raises(ValueError, match="Received: epsilon=0.0"):
        regularizers.NeuronSensitivity(1.0, epsilon=0)
    with pytest.raises(ValueError, match="Received: num_perturbations=0"):
        regularizers.NeuronSensitivity(1.0, 0.1, num_perturbations=0)
    with pytest.raises(ValueError, match="Received: chunk_size=0"):
        regularizers.NeuronSensitivity(1.0, 0.1, chunk_size=0)
    with pytest.raises(ValueError, match="Available layers: .*dense"):
        ki.RegularizedModel(model, [regularizers.NeuronSensitivity(1.0, 0.1, layers=["nope"])])
    with pytest.raises(ValueError, match="at most one"):
        ki.RegularizedModel(
            model, [regularizers.NeuronSensitivity(1.0, 0.1), regularizers.NeuronSensitivity(1.0, 0.2)]
        )
    with pytest.raises(ValueError, match="Unknown regularizer.*Received: identifier='l2'"):
        ki.RegularizedModel(model, ["l2"])

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (keras.ops.shape(x)[0], -1)))

    with pytest.raises(ValueError, match="symbolic inputs"):
        ki.RegularizedModel(Subclassed(), [regularizers.NeuronSensitivity(1.0, 0.1)])

    inputs = keras.Input((3,))
    two_heads = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)])
    with pytest.raises(ValueError, match="Received: a model with 2 outputs"):
        ki.RegularizedModel(two_heads, [regularizers.JacobianNorm(1.0)])

    wrapped = ki.RegularizedModel(model, [regularizers.JacobianNorm(1.0)])
    wrapped.compile("sgd", CE)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\).*Received: y=4 \(6 of 8 labels outside\)"):
        wrapped.fit(x, np.arange(8) + 2, verbose=0)
    with pytest.raises(ValueError, match=r"4 columns.*Received: y.shape=\(8, 3\)"):
        wrapped.fit(x, np.zeros((8, 3), "float32"), verbose=0)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="Received: x with 1 NaN and 0 infinite values"):
        wrapped.fit(bad, y, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_validation_neither_shifts_training_draws_nor_varies():
    x, y = batch(8, n=32)

    def run(validation):
        wrapped = ki.RegularizedModel(
            small_cnn(8),
            [regularizers.NeuronSensitivity(1.0, 0.5), regularizers.JacobianNorm(0.1)],
            seed=0,
            evaluate_regularizers=True,
        )
        wrapped.compile(keras.optimizers.SGD(0.0), CE)
        history = wrapped.fit(
            x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=validation
        ).history
        return wrapped, history

    wrapped, with_validation = run((x[:16], y[:16]))
    _, without = run(None)
    for key in ("neuron_sensitivity", "jacobian_norm"):
        np.testing.assert_allclose(with_validation[key], without[key], rtol=1e-6)
        # lr 0 and a restarted stream: both epochs score the same draws.
        assert with_validation["val_" + key][0] == with_validation["val_" + key][1]
    again = [wrapped.evaluate(x, y, verbose=0, return_dict=True) for _ in range(2)]
    assert again[0] == again[1]
