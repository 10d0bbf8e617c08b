"""NsLoss on the models users bring: nested backbones, frozen layers, dropout (issue 15)."""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import hooks

pytestmark = pytest.mark.backends_in_ci

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def backbone(name="backbone"):
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Activation("tanh", name="act")(h)
    h = keras.layers.Conv2D(3, 3, name="conv_2")(h)
    return keras.Model(inputs, h, name=name)


def nested(frozen=False, dropout=0.0):
    base = backbone()
    base.trainable = not frozen
    inputs = keras.Input((8, 8, 2))
    h = base(inputs, training=False)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(dropout, name="drop")(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(h), name="classifier")


def flat_twin(model):
    """The same network built flat, with the nested model's weights."""
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h, training=False)
    h = keras.layers.Activation("tanh", name="act")(h)
    h = keras.layers.Conv2D(3, 3, name="conv_2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    flat = keras.Model(inputs, keras.layers.Dense(3, name="logits")(h))
    flat.set_weights(model.get_weights())
    return flat


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, 8, 8, 2)).astype("float32"), rng.integers(0, 3, n).astype("int32")


def term(model, epsilon=0.1, seed=0, layers=None):
    """The NsLoss term of one batch, before any update (SGD with rate 0)."""
    reg = ki.RegularizedModel(
        model, [ki.regularizers.NeuronSensitivity(1.0, epsilon, num_perturbations=3, layers=layers)], seed=seed
    )
    reg.compile(keras.optimizers.SGD(0.0), CE)
    x, y = data()
    return float(reg.train_on_batch(x, y, return_dict=True)["neuron_sensitivity"])


def test_default_hooks_see_every_weighted_layer_at_any_depth():
    model = nested()
    chosen = ki.regularizers.NeuronSensitivity(1.0, 0.1).hooked_layers(model)
    assert [hooks.path_of(model, layer) for layer in chosen] == [
        "backbone/conv", "backbone/bn", "backbone/conv_2", "logits"
    ]


def test_layers_by_path_bare_name_and_class_at_any_depth():
    model = nested()
    select = lambda specs: [hooks.path_of(model, l) for l in hooks.select_layers(model, specs)]  # noqa: E731
    assert select(["backbone/act", "conv_2"]) == ["backbone/act", "backbone/conv_2"]
    assert select([keras.layers.Conv2D]) == ["backbone/conv", "backbone/conv_2"]
    with pytest.raises(ValueError, match=r"Available layers: backbone/conv, backbone/bn"):
        hooks.select_layers(model, ["nope"])


def test_a_name_shared_by_nested_layers_must_be_given_as_a_path():
    inputs = keras.Input((8, 8, 2))
    h = backbone("first")(inputs)
    h = backbone("second")(keras.layers.Conv2D(2, 1)(keras.layers.ZeroPadding2D(1)(h)))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(h)))
    with pytest.raises(ValueError, match=r"several nested layers share.*'first/conv', 'second/conv'"):
        hooks.select_layers(model, ["conv"])


def test_the_probe_is_one_pass_over_the_same_weights():
    model = nested()
    layers = hooks.select_layers(model, None)
    probe = hooks.probe(model, layers)
    x, _ = data()
    outputs = probe(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs[0]), keras.ops.convert_to_numpy(model(x)))
    assert {id(v) for v in probe.weights} == {id(v) for v in model.weights}
    # Each layer is called once: the probe has one node per layer.
    inner = keras.Model(model.layers[1].inputs, model.layers[1].get_layer("bn").output)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs[2]), keras.ops.convert_to_numpy(inner(x)), rtol=1e-6)


def test_nested_term_equals_the_flat_networks():
    model = nested()
    assert term(model) == pytest.approx(term(flat_twin(model)), rel=1e-5)


def test_a_frozen_backbone_trains_the_head_and_keeps_its_weights_and_statistics():
    model = nested(frozen=True)
    frozen = [w.copy() for w in model.layers[1].get_weights()]
    head = model.get_layer("logits").get_weights()[0].copy()
    x, y = data(16)
    for reg in (
        ki.regularizers.NeuronSensitivity(1.0, 0.1, num_perturbations=2),
        ki.regularizers.JacobianNorm(1.0),
        ki.regularizers.AdversarialTraining(0.1, steps=2),
    ):
        wrapped = ki.RegularizedModel(model, [reg], seed=0)
        wrapped.compile(keras.optimizers.SGD(0.1), CE)
        history = wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    for a, b in zip(frozen, model.layers[1].get_weights()):
        np.testing.assert_array_equal(a, b)  # kernels and batch-norm statistics
    assert not np.allclose(head, model.get_layer("logits").get_weights()[0])
    # Unfreezing for a second phase: recompile and continue.
    model.layers[1].trainable = True
    wrapped = ki.RegularizedModel(model, [ki.regularizers.NeuronSensitivity(1.0, 0.1, num_perturbations=2)], seed=0)
    wrapped.compile(keras.optimizers.SGD(0.1), CE)
    wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(frozen[0], model.layers[1].get_weights()[0])


def linear_with(random_layer):
    """A network linear in its input but for one random layer, seeded: the same draws each time."""
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.Dense(16, name="hidden")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(random_layer(h)))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.mark.parametrize(
    "random_layer",
    [
        lambda: keras.layers.Dropout(0.5, seed=3),
        lambda: keras.layers.GaussianNoise(1.0, seed=3),
        lambda: keras.layers.GaussianDropout(0.3, seed=3),
    ],
    ids=["dropout", "gaussian_noise", "gaussian_dropout"],
)
def test_with_random_layers_the_term_does_not_depend_on_epsilon_in_the_linear_regime(random_layer):
    # MD scales with epsilon and NS divides it out, so the term must not
    # change with epsilon, as long as an example and its copies share one
    # draw (with a mask per row it was 88 times larger at epsilon 0.01).
    small = term(linear_with(random_layer()), epsilon=0.01)
    large = term(linear_with(random_layer()), epsilon=1.0)
    assert small == pytest.approx(large, rel=1e-3)


def test_dropout_of_rate_zero_gives_the_term_without_dropout():
    with_layer = nested(dropout=0.0)
    without = flat_twin(with_layer)
    assert term(with_layer) == pytest.approx(term(without), rel=1e-5)


def test_random_augmentation_inside_the_model_is_refused_for_nsloss():
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.RandomFlip()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(h)))
    with pytest.raises(ValueError, match=r"augment in the data pipeline.*random_flip"):
        ki.RegularizedModel(model, [ki.regularizers.NeuronSensitivity(1.0, 0.1)])


def test_a_regularized_nested_model_round_trips(tmp_path):
    model = nested()
    wrapped = ki.RegularizedModel(
        model, [ki.regularizers.NeuronSensitivity(1.0, 0.1, num_perturbations=2, layers=["backbone/bn", "logits"])],
        seed=0,
    )
    wrapped.compile(keras.optimizers.SGD(0.1), CE)
    x, y = data()
    wrapped.fit(x, y, epochs=1, verbose=0)
    wrapped.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(wrapped(x)), rtol=1e-6)
    assert loaded.regularizers[0].layers == ["backbone/bn", "logits"]
