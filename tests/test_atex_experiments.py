"""The ATEX paper's experiments on a tiny softplus model: limits that have
closed forms (an attack too small to move anything, SmoothGrad without
noise) and the shape of their results."""

import json

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import experiments
from tests.conftest import to_numpy


def _softplus_cnn(seed, size=12, classes=3):
    model = keras.Sequential(
        [
            keras.Input((size, size, 1)),
            keras.layers.Conv2D(4, 3, activation="softplus"),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="softplus"),
            keras.layers.Dense(classes),
        ]
    )
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _images(n, seed=0, size=12):
    return np.random.default_rng(seed).uniform(size=(n, size, size, 1)).astype("float32")


def test_manipulation_table_tiny_epsilon_changes_nothing():
    a, b = _softplus_cnn(0), _softplus_cnn(1)
    x = _images(5)
    y = np.array([0, 1, 2, 0, 1])
    table = experiments.manipulation_table(
        {"A": a, "B": {1e-7: b, 0.3: b}}, x, y, epsilons=(1e-7, 0.3), top_k=10, steps=3,
    )
    json.dumps(table)
    tiny, large = table["rows"]
    for name, model in (("A", a), ("B", b)):
        predicted = np.argmax(model.predict(x, verbose=0), -1)
        assert tiny["accuracy"][name] == large["accuracy"][name] == np.mean(predicted == y)
    for name in ("A", "B"):
        assert tiny["rank_correlation"][name] > 0.999
        assert tiny["top_k_intersection"][name] > 0.99
        assert tiny["ssim"][name] > 0.999
        assert large["rank_correlation"][name] < tiny["rank_correlation"][name]


def test_manipulation_table_rejects_missing_epsilon():
    model = _softplus_cnn(0)
    with pytest.raises(ValueError, match="one model for each"):
        experiments.manipulation_table({"A": {0.1: model}}, _images(2), epsilons=(0.1, 0.2))


def test_smoothgrad_without_noise_is_the_gradient():
    a, b = _softplus_cnn(0), _softplus_cnn(1)
    result = experiments.smoothness_vs_smoothgrad(
        {"standard": a, "other": b}, _images(4), reference="standard", num_samples=1, noise=0.0
    )
    np.testing.assert_allclose(result["ssim"]["standard"], 1.0, atol=1e-5)
    assert result["ssim"]["other"] < 0.99
    with pytest.raises(ValueError, match="reference"):
        experiments.smoothness_vs_smoothgrad({"a": a}, _images(2), reference="b")


def test_atex_defences_and_efficacy_run_end_to_end():
    model = _softplus_cnn(0)
    x = _images(16)
    y = np.argmax(to_numpy(model(x)), -1).astype("int32")
    models = experiments.atex_defences(
        model, x, y, epsilons=(0.05, 0.1), epochs=1, smoothgrad_samples=2, batch_size=8
    )
    assert set(models) == {"ATEX", "B-smoothing", "Naive"}
    assert set(models["ATEX"]) == {0.05, 0.1}
    assert models["B-smoothing"] is model
    for student in [*models["ATEX"].values(), models["Naive"]]:
        assert student is not model
        assert any(
            not np.allclose(w, v) for w, v in zip(student.get_weights(), model.get_weights())
        )

    data = ((x, y), (x[:8], y[:8]))
    result = experiments.adversarial_training_efficacy(
        model, data, atex_iterations=(0, 1), batch_size=8, smoothgrad_samples=2
    )
    json.dumps(result)
    assert result["iterations"] == [0, 1]
    for key in ("clean_accuracy", "robust_accuracy"):
        assert len(result[key]) == 2 and all(0.0 <= v <= 1.0 for v in result[key])
    with pytest.raises(ValueError, match="atex_iterations"):
        experiments.adversarial_training_efficacy(model, data, atex_iterations=(-1,))


def test_saliency_sums_absolute_gradients_over_channels():
    model = ki.models.small_cnn((12, 12, 3), 2, activation="softplus")
    x = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype("float32")
    phi = to_numpy(ki.attribution.vanilla_gradient(model, x, 1))
    np.testing.assert_allclose(
        experiments.atex_paper.saliency(model, x, 1), np.abs(phi).sum(-1), rtol=1e-6
    )
