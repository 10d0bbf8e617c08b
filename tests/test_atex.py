"""ATEX: the sampling geometry against a NumPy rewrite, the loss against its
closed form, and training on every backend."""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import _seeds
from keras_interp import atex
from tests.conftest import small_cnn
from tests.conftest import to_numpy

pytestmark = pytest.mark.multibackend


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 10, 10, 2)).astype("float32")


def _flat(a):
    return np.asarray(a, "float64").reshape(len(a), -1)


def _cosines(a, b):
    a, b = _flat(a), _flat(b)
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def teacher():
    return small_cnn(0)


@pytest.fixture(scope="module")
def dataset(teacher):
    return atex.ATEXDataset(
        teacher,
        _images(6),
        batch_size=4,
        delta1=0.1,
        delta2=0.2,
        num_along=3,
        num_across=2,
        alpha=0.5,
        smoothgrad_samples=4,
        seed=3,
        verbose=0,
    )


def _numpy_samples(x, phi, rng, delta1, delta2, n1, n2):
    """Eqs. 5-6 written independently, in float64."""
    b, d = len(x), x[0].size
    d1 = rng.uniform(-delta1, delta1, (b, n1))
    d2 = rng.uniform(-delta2, delta2, (b, n1, n2))
    u = rng.uniform(0.0, 1.0, (b, n1, n2, d))
    x, phi = _flat(x), _flat(phi)
    unit = phi / np.linalg.norm(phi, axis=1, keepdims=True)
    x_along = x[:, None] + d1[..., None] * unit[:, None] * np.sqrt(d)
    perp = u - np.einsum("bijd,bd->bij", u, unit)[..., None] * unit[:, None, None]
    perp = perp / np.linalg.norm(perp, axis=-1, keepdims=True) * np.sqrt(d)
    x_across = x_along[:, :, None] + d2[..., None] * perp
    return x_along.reshape(b * n1, d), x_across.reshape(b * n1 * n2, d)


def test_samples_match_the_equations(dataset):
    rows = dataset._order[:4]
    x, phi = dataset.x[rows], dataset.directions[rows]
    # The documented stream of batch 0: samples (key 1), epoch, batch index.
    rng = _seeds.numpy_generator(dataset.seed, 1, dataset.epoch, 0)
    x_along, x_across = _numpy_samples(x, phi, rng, 0.1, 0.2, 3, 2)

    inputs, targets, weights = dataset[0]
    np.testing.assert_array_equal(inputs[:4], x)
    np.testing.assert_allclose(_flat(inputs[4:]), x_across, atol=1e-5)
    # Soft labels: f(x) for seed rows, f(x') repeated for each x^p.
    logits = to_numpy(dataset.teacher(x_along.reshape((-1, 10, 10, 2)).astype("float32")))
    np.testing.assert_allclose(targets[:4], to_numpy(dataset.teacher(x)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(targets[4:], np.repeat(logits, 2, axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(weights, [1] * 4 + [0.5] * 24)


def test_geometry_along_and_across_the_explanation(dataset):
    rows = dataset._order[:4]
    x, phi = dataset.x[rows], dataset.directions[rows]
    x_along, x_across = atex.sample_around(
        x, phi, delta1=0.1, delta2=0.2, num_along=3, num_across=2,
        rng=np.random.default_rng(0),
    )
    x_along, x_across = to_numpy(x_along), to_numpy(x_across)
    step = x_along - np.repeat(x, 3, axis=0)
    side = x_across - np.repeat(x_along, 2, axis=0)
    phi_along, phi_across = np.repeat(phi, 3, axis=0), np.repeat(phi, 6, axis=0)
    np.testing.assert_allclose(np.abs(_cosines(step, phi_along)), 1.0, atol=1e-5)
    assert np.abs(_cosines(side, phi_across)).max() < 1e-5
    rms = lambda v: np.sqrt(np.mean(_flat(v) ** 2, axis=1))  # noqa: E731
    assert rms(step).max() <= 0.1 + 1e-6 and rms(side).max() <= 0.2 + 1e-6
    # Not all at the bound: the shifts are uniform draws.
    assert rms(step).min() < 0.09 and rms(side).min() < 0.18


def test_directions_are_smoothgrad_with_unit_rms(teacher):
    x = _images(3)
    phi = atex.explanation_directions(teacher, x, num_samples=4, seed=1)
    # The block starting at example 0 is seeded mix(seed, 0).
    smooth = to_numpy(ki.attribution.smoothgrad(teacher, x, num_samples=4, seed=_seeds.mix(1, 0)))
    np.testing.assert_allclose(_cosines(phi, smooth), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.mean(_flat(phi) ** 2, axis=1)), 1.0, rtol=1e-5)


def test_same_seed_same_batches_in_any_order(teacher, dataset):
    again = atex.ATEXDataset(
        teacher, _images(6), batch_size=4, delta1=0.1, delta2=0.2, num_along=3,
        num_across=2, alpha=0.5, smoothgrad_samples=4, seed=3, verbose=0,
    )
    last_first = again[1]
    for a, b in zip(dataset[0], again[0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(dataset[1], last_first):
        np.testing.assert_array_equal(a, b)
    assert len(dataset) == 2 and dataset[1][0].shape == (2 * 7, 10, 10, 2)


def test_epochs_draw_new_samples(teacher):
    data = atex.ATEXDataset(teacher, _images(4), batch_size=4, smoothgrad_samples=2, seed=0, verbose=0)
    first = data[0][0]
    data.on_epoch_end()
    second = data[0][0]
    assert not np.allclose(first[4:], second[4:])
    # The same seed instances, reshuffled.
    np.testing.assert_array_equal(np.sort(_flat(first[:4]), 0), np.sort(_flat(second[:4]), 0))


def test_distillation_is_scaled_kl_of_softened_outputs():
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    for temperature in (1.0, 3.0):
        p, q = softmax(t / temperature), softmax(s / temperature)
        expected = temperature**2 * np.sum(p * np.log(p / q), axis=1).mean()
        loss = atex.Distillation(temperature)(t.astype("float32"), s.astype("float32"))
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # Probabilities in, same value: log-probabilities are logits up to a shift.
    from_probs = atex.Distillation(2.0, from_logits=False)(
        t.astype("float32"), softmax(s).astype("float32")
    )
    np.testing.assert_allclose(
        float(from_probs), float(atex.Distillation(2.0)(t.astype("float32"), s.astype("float32"))),
        rtol=1e-4,
    )


def test_fit_trains_a_student_and_leaves_the_teacher(teacher):
    before = [w.copy() for w in teacher.get_weights()]
    student, history = atex.fit(
        teacher, _images(8), epochs=2, batch_size=4, smoothgrad_samples=2,
        delta1=0.5, optimizer=keras.optimizers.SGD(0.05), seed=0, verbose=0,
    )
    assert set(history.history) >= {"loss", "agreement"}
    assert np.all(np.isfinite(history.history["loss"]))
    for w, b in zip(teacher.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    moved = [not np.allclose(w, b) for w, b in zip(student.get_weights(), before)]
    assert any(moved)


def test_fit_composes_with_regularizers(teacher):
    student, history = atex.fit(
        teacher, (_images(4), None), batch_size=4, smoothgrad_samples=2, seed=0, verbose=0,
        regularizers=[ki.regularizers.NeuronSensitivity(1.0, 0.1, num_perturbations=2)],
    )
    assert "neuron_sensitivity" in history.history
    assert isinstance(student, keras.Sequential)


def test_bad_arguments(teacher):
    with pytest.raises(ValueError, match="delta1"):
        atex.ATEXDataset(teacher, _images(2), delta1=0.0, verbose=0)
    with pytest.raises(ValueError, match="num_across"):
        atex.ATEXDataset(teacher, _images(2), num_across=0, verbose=0)
    with pytest.raises(ValueError, match="temperature"):
        atex.Distillation(temperature=-1.0)
    data = atex.ATEXDataset(teacher, _images(2), smoothgrad_samples=1, verbose=0)
    with pytest.raises(IndexError, match="index=1"):
        data[1]


def test_distillation_serialises():
    loss = atex.Distillation(temperature=2.5, from_logits=False)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert (again.temperature, again.from_logits) == (2.5, False)


def test_directions_of_any_scale_give_the_same_samples(dataset):
    rows = dataset._order[:4]
    x, phi = dataset.x[rows], dataset.directions[rows]
    kwargs = dict(delta1=0.1, delta2=0.2, num_along=2, num_across=2)
    a = atex.sample_around(x, phi, rng=np.random.default_rng(0), **kwargs)
    b = atex.sample_around(x, 3.7 * phi, rng=np.random.default_rng(0), **kwargs)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_a_teacher_ending_in_softmax_trains_on_the_same_loss():
    """Same weights, with and without a final softmax: with a zero learning
    rate the distillation loss must be the same, since targets are logits."""
    logits_teacher = small_cnn(0)
    softmax_teacher = keras.Sequential(
        logits_teacher.layers[:-1]
        + [keras.layers.Dense(4, activation="softmax")]
    )
    softmax_teacher.build((None, 10, 10, 2))
    softmax_teacher.layers[-1].set_weights(logits_teacher.layers[-1].get_weights())
    losses = [
        atex.fit(
            teacher, _images(4), batch_size=4, smoothgrad_samples=2, delta1=0.5,
            optimizer=keras.optimizers.SGD(0.0), seed=0, verbose=0,
        )[1].history["loss"][0]
        for teacher in (logits_teacher, softmax_teacher)
    ]
    assert losses[0] > 1e-6
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)


def test_fit_rejects_regularizers_that_attack_labels(teacher):
    with pytest.raises(ValueError, match="teacher logits"):
        atex.fit(
            teacher, _images(4), batch_size=4, smoothgrad_samples=1, verbose=0,
            regularizers=[ki.regularizers.AdversarialTraining(0.1)],
        )


def test_bad_sampling_arguments(teacher):
    x, phi = _images(2), _images(2, seed=1)
    with pytest.raises(ValueError, match="across"):
        atex.sample_around(x, phi, delta1=0.1, delta2=0.1, num_along=1, num_across=1,
                           rng=np.random.default_rng(0), across="gaussian")
    with pytest.raises(ValueError, match="clip"):
        atex.ATEXDataset(teacher, x, clip=(1.0, 0.0), smoothgrad_samples=1, verbose=0)


def test_fit_is_reproducible_from_seed_alone(teacher):
    """Keras' own shuffle of a PyDataset reorders batches with Python's
    global `random`; the dataset's seeded shuffle must be the only one."""
    import random

    weights = []
    for python_seed in (1, 2):
        random.seed(python_seed)
        student, _ = atex.fit(
            teacher, _images(16), epochs=2, batch_size=2, smoothgrad_samples=2,
            delta1=0.5, optimizer=keras.optimizers.SGD(0.05), seed=0, verbose=0,
        )
        weights.append(student.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_fit_with_a_distribution_on_a_backend_that_ignores_it_is_an_error(teacher):
    # As tests/test_distributed.py does for RegularizedModel: only JAX's
    # trainer applies keras.distribution.
    if keras.config.backend() == "jax":
        pytest.skip("keras.distribution applies on JAX")
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=["cpu:0", "cpu:1"])
    )
    try:
        with pytest.raises(ValueError, match="JAX trainer only"):
            atex.fit(teacher, _images(4), batch_size=4, smoothgrad_samples=1, seed=0, verbose=0)
    finally:
        keras.distribution.set_distribution(None)
