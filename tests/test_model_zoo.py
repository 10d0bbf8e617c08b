"""preresnet10 and vgg19: shapes, structure against independent counts and
keras.applications, activations, weight files, and training with NsLoss."""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import models
from keras_interp import regularizers
from tests.conftest import to_numpy

pytestmark = pytest.mark.backends_in_ci

SMALL = (32, 32, 3)


def _images(n=2, shape=SMALL, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype("float32")


def _activation_names(model):
    names = set()
    for layer in model.layers:
        activation = getattr(layer, "activation", None)
        if activation is not None:
            names.add(getattr(activation, "__name__", str(activation)))
    return names


def _conv_params(k, c_in, c_out, bias):
    return k * k * c_in * c_out + (c_out if bias else 0)


def test_preresnet10_output_shape_and_logits():
    model = models.preresnet10(input_shape=SMALL, num_classes=3, width=4)
    out = to_numpy(model(_images(3)))
    assert out.shape == (3, 3)
    assert model.name == "preresnet10"
    assert model.get_layer("logits").activation is keras.activations.linear
    # Logits, not probabilities.
    assert not np.allclose(out.sum(axis=1), 1.0)


def test_preresnet10_structure():
    """Ten weighted layers on the main path: stem, 4 x 2 block convs and the
    Dense; 1x1 projection shortcuts on stages 2-4 only (stage 1 keeps the
    stem's width and resolution), counted apart."""
    width = 4
    model = models.preresnet10(input_shape=SMALL, num_classes=3, width=width)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    shortcuts = [l.name for l in convs if l.kernel_size == (1, 1)]
    main = [l for l in convs if l.kernel_size != (1, 1)] + dense
    assert len(main) == 10
    assert shortcuts == ["stage2_shortcut", "stage3_shortcut", "stage4_shortcut"]
    assert len([l for l in model.layers if isinstance(l, keras.layers.Add)]) == 4
    # 4 blocks x 2 BNs + the final one.
    assert len([l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]) == 9
    # Pre-activation: each block conv reads a BN -> activation output.
    for stage in range(1, 5):
        for i in (1, 2):
            conv = model.get_layer(f"stage{stage}_conv{i}")
            assert conv._inbound_nodes[0].parent_nodes[0].operation.name == f"stage{stage}_act{i}"
    # Parameters, counted by hand: convs have no bias; a BN has 4 per channel.
    w = (width, 2 * width, 4 * width, 8 * width)
    expected = _conv_params(7, 3, w[0], False)
    c_in = w[0]
    for c in w:
        expected += 4 * c_in + _conv_params(3, c_in, c, False)
        expected += 4 * c + _conv_params(3, c, c, False)
        if c != c_in:
            expected += _conv_params(1, c_in, c, False)
        c_in = c
    expected += 4 * w[-1] + w[-1] * 3 + 3
    assert model.count_params() == expected
    # Strides (1, 2, 2, 2) after the stride-4 stem: 32 -> 8 -> 8, 4, 2, 1.
    sizes = [model.get_layer(f"stage{s}_add").output.shape[1:] for s in range(1, 5)]
    assert sizes == [(8, 8, w[0]), (4, 4, w[1]), (2, 2, w[2]), (1, 1, w[3])]


def test_vgg19_matches_keras_applications_base():
    model = models.vgg19(input_shape=SMALL, num_classes=3, head_units=(8, 8))
    reference = keras.applications.VGG19(include_top=False, weights=None, input_shape=SMALL)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 16
    ref_names = [l.name for l in reference.layers[1:]]
    assert [l.name for l in model.layers[1 : len(ref_names) + 1]] == ref_names
    base_params = sum(l.count_params() for l in model.layers[1 : len(ref_names) + 1])
    assert base_params == reference.count_params() == 20_024_384
    for ours, theirs in zip(model.layers[1:], reference.layers[1:]):
        assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    # Head: flatten (1x1x512 at 32x32), fc1, fc2, logits.
    assert model.count_params() - base_params == (512 * 8 + 8) + (8 * 8 + 8) + (8 * 3 + 3)
    assert to_numpy(model(_images(2))).shape == (2, 3)


def test_vgg19_default_head_matches_keras_applications_top():
    model = models.vgg19(input_shape=SMALL, num_classes=10)
    assert [l.name for l in model.layers[-4:]] == ["flatten", "fc1", "fc2", "logits"]
    assert model.get_layer("fc1").units == model.get_layer("fc2").units == 4096
    assert model.get_layer("logits").activation is keras.activations.linear


@pytest.mark.parametrize("builder", ["preresnet10", "vgg19"])
def test_softplus_variant_has_no_relu(builder):
    if builder == "preresnet10":
        kwargs = {"width": 4, "num_classes": 3}
    else:
        kwargs = {"head_units": (8,), "num_classes": 3}
    relu = getattr(models, builder)(input_shape=SMALL, **kwargs)
    soft = getattr(models, builder)(input_shape=SMALL, activation="softplus", **kwargs)
    assert "relu" in _activation_names(relu)
    names = _activation_names(soft)
    assert "relu" not in names and "softplus" in names
    assert soft.count_params() == relu.count_params()
    assert to_numpy(soft(_images(2))).shape == (2, 3)


@pytest.mark.parametrize("builder", [models.preresnet10, models.vgg19])
@pytest.mark.parametrize("activation", ["tanh", "ReLU", None])
def test_bad_activation_raises(builder, activation):
    with pytest.raises(ValueError, match="Received: activation="):
        builder(input_shape=SMALL, activation=activation)


def test_vgg19_own_weights_round_trip(tmp_path):
    kwargs = dict(input_shape=SMALL, num_classes=3, head_units=(8,))
    model = models.vgg19(**kwargs)
    x = _images(2)
    path = str(tmp_path / "vgg.weights.h5")
    model.save_weights(path)
    restored = models.vgg19(weights=path, **kwargs)
    np.testing.assert_array_equal(to_numpy(restored(x)), to_numpy(model(x)))
    fresh = models.vgg19(**kwargs)
    assert not np.allclose(to_numpy(fresh(x)), to_numpy(model(x)))


# keras.applications names its input "input_layer*"; calling it on an array
# warns about the input structure, harmlessly.
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_vgg19_loads_legacy_keras_applications_base(tmp_path):
    """A legacy .h5 file of keras.applications' VGG19 base (the format of
    Keras' notop ImageNet file) fills the 16 convolutions."""
    reference = keras.applications.VGG19(include_top=False, weights=None, input_shape=SMALL)
    path = str(tmp_path / "vgg19_notop.h5")
    reference.save(path)
    model = models.vgg19(input_shape=SMALL, num_classes=3, weights=path, head_units=(8,))
    for layer in reference.layers[1:]:
        for ours, theirs in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    x = _images(2)
    base = keras.Model(model.inputs, model.get_layer("block5_pool").output)
    np.testing.assert_array_equal(to_numpy(base(x)), to_numpy(reference(x)))


@pytest.mark.parametrize(
    "weights, error, match",
    [
        ("imagenet", ValueError, "never downloads"),
        ("model.keras", ValueError, "Received: weights="),
        ("missing.weights.h5", FileNotFoundError, "Received: weights="),
        (3, ValueError, "Received: weights=3"),
    ],
)
def test_vgg19_bad_weights(weights, error, match):
    with pytest.raises(error, match=match):
        models.vgg19(input_shape=SMALL, weights=weights)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="Received: width=0"):
        models.preresnet10(input_shape=SMALL, width=0)
    with pytest.raises(ValueError, match="Received: num_classes=0"):
        models.vgg19(input_shape=SMALL, num_classes=0)
    with pytest.raises(ValueError, match="Received: head_units="):
        models.vgg19(input_shape=SMALL, head_units=(0,))


def test_preresnet10_fits_with_neuron_sensitivity(seed):
    """NsLoss hooks every weighted layer, BatchNormalization included, and a
    training step runs and changes the weights."""
    model = models.preresnet10(input_shape=SMALL, num_classes=3, width=4)
    reg = regularizers.NeuronSensitivity(1.0, epsilon=0.1, num_perturbations=2)
    hooked = [l.name for l in reg.hooked_layers(model)]
    assert "stage1_bn1" in hooked and "stem_conv" in hooked and "logits" in hooked
    wrapped = ki.RegularizedModel(model, [reg], seed=0)
    wrapped.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = _images(4)
    y = np.array([0, 1, 2, 0])
    before = model.get_layer("stem_conv").get_weights()[0].copy()
    history = wrapped.fit(x, y, batch_size=4, epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss)
    assert not np.allclose(model.get_layer("stem_conv").get_weights()[0], before)
