"""Bad input gets an error that names the argument, before any work (issue 14 §2).

Each case went through the public API unnamed before: silent NaN, a label
that wrapped around, a failure deep inside the backend.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_interp as ki
from tests.conftest import linear
from tests.conftest import small_cnn

pytestmark = pytest.mark.backends_in_ci

METHODS = ("vanilla_gradient", "input_x_gradient", "smoothgrad", "integrated_gradients", "gradient_shap")


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(seed=0, classes=4)


def images(n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 10, 10, 2)).astype("float32")


def with_bad_value(x, value):
    x = x.copy()
    x[1, 2, 3, 0] = value
    return x


def cheap(name):
    hyper = {"smoothgrad": {"num_samples": 2}, "gradient_shap": {"num_samples": 2}}
    hyper["integrated_gradients"] = {"steps": 3}
    return name, hyper.get(name, {})


# --- non-finite values ------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("method", METHODS)
def test_attributions_refuse_non_finite_inputs(cnn, method, value):
    name, hyper = cheap(method)
    with pytest.raises(ValueError, match=r"`x` must be finite.*first in example 1"):
        ki.attribution.get(name)(cnn, with_bad_value(images(), value), seed=0, **hyper)


def test_gradient_shap_refuses_non_finite_baselines(cnn):
    with pytest.raises(ValueError, match="`baselines` must be finite"):
        ki.attribution.gradient_shap(cnn, images(), baselines=with_bad_value(images(), np.inf), num_samples=2)


def test_integrated_gradients_refuses_a_non_finite_baseline(cnn):
    baseline = with_bad_value(images(), np.nan)[1]
    with pytest.raises(ValueError, match="`baseline` must be finite"):
        ki.attribution.integrated_gradients(cnn, images(), baseline=baseline, steps=3)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x, y: ki.metrics.max_sensitivity(m, x, y, "vanilla_gradient", num_samples=2, verbose=0),
        lambda m, x, y: ki.metrics.local_lipschitz_estimate(m, x, y, "vanilla_gradient", num_samples=2, verbose=0),
        lambda m, x, y: ki.metrics.faithfulness_correlation(m, x, y, np.ones_like(x), num_runs=2, verbose=0),
        lambda m, x, y: ki.metrics.faithfulness_estimate(m, x, y, np.ones_like(x), features_in_step=50, verbose=0),
        lambda m, x, y: ki.attacks.pgd(m, x, y, epsilon=0.1, steps=1),
        lambda m, x, y: ki.attacks.fgsm(m, x, y, epsilon=0.1),
        lambda m, x, y: ki.attacks.manipulate_explanation(m, x, epsilon=0.1, steps=1, top_k=5),
    ],
    ids=["max_sensitivity", "lipschitz", "faith_corr", "faith_est", "pgd", "fgsm", "manipulate"],
)
def test_metrics_and_attacks_refuse_non_finite_inputs(cnn, call):
    with pytest.raises(ValueError, match="`x` must be finite"):
        call(cnn, with_bad_value(images(), np.inf), np.array([0, 1, 2]))


def test_metrics_refuse_non_finite_attributions(cnn):
    a = with_bad_value(np.ones((3, 10, 10, 2), "float32"), np.nan)
    with pytest.raises(ValueError, match="`attributions` must be finite"):
        ki.metrics.faithfulness_correlation(cnn, images(), [0, 1, 2], a, num_runs=2, verbose=0)


# --- labels -----------------------------------------------------------------------


@pytest.mark.parametrize("label", [-1, 4])
@pytest.mark.parametrize(
    "call",
    [
        lambda m, x, y: ki.metrics.faithfulness_correlation(m, x, y, np.ones_like(x), num_runs=2, verbose=0),
        lambda m, x, y: ki.metrics.faithfulness_estimate(m, x, y, np.ones_like(x), features_in_step=50, verbose=0),
        lambda m, x, y: ki.metrics.max_sensitivity(m, x, y, "vanilla_gradient", num_samples=2, verbose=0),
        lambda m, x, y: ki.attacks.pgd(m, x, y, epsilon=0.1, steps=1),
        lambda m, x, y: ki.attacks.fgsm(m, x, y, epsilon=0.1),
    ],
    ids=["faith_corr", "faith_est", "max_sensitivity", "pgd", "fgsm"],
)
def test_labels_out_of_range_are_refused_not_wrapped(cnn, call, label):
    with pytest.raises(ValueError, match=rf"\[0, 4\).*Received: y={label}"):
        call(cnn, images(), np.array([0, label, 2]))


def test_one_hot_labels_must_match_the_model(cnn):
    with pytest.raises(ValueError, match="4 columns"):
        ki.attacks.pgd(cnn, images(), np.eye(3, dtype="float32"), epsilon=0.1, steps=1)
    x_adv = ki.attacks.pgd(cnn, images(), np.eye(4, dtype="float32")[:3], epsilon=0.1, steps=1, seed=0)
    expected = ki.attacks.pgd(cnn, images(), np.array([0, 1, 2]), epsilon=0.1, steps=1, seed=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(x_adv), keras.ops.convert_to_numpy(expected))


def test_label_count_must_match_the_examples(cnn):
    with pytest.raises(ValueError, match=r"one int class index per example \(shape \(3,\)\)"):
        ki.attacks.pgd(cnn, images(), np.array([0, 1]), epsilon=0.1, steps=1)


def test_fractional_labels_are_refused(cnn):
    with pytest.raises(ValueError, match="whole numbers"):
        ki.metrics.faithfulness_correlation(cnn, images(), np.array([0.5, 1, 2]), images(), num_runs=2, verbose=0)


# --- empty batches, shapes, dtypes, None ------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: ki.attribution.integrated_gradients(m, x, steps=3),
        lambda m, x: ki.attribution.vanilla_gradient(m, x),
        lambda m, x: ki.attacks.pgd(m, x, epsilon=0.1),
        lambda m, x: ki.metrics.max_sensitivity(m, x, np.zeros(0, "int32"), "vanilla_gradient", verbose=0),
    ],
)
def test_empty_batches_are_named(cnn, call):
    with pytest.raises(ValueError, match=r"`x` must hold at least one example. Received: x.shape=\(0, 10, 10, 2\)"):
        call(cnn, np.zeros((0, 10, 10, 2), "float32"))


def test_empty_attribution_batches_are_named():
    with pytest.raises(ValueError, match="at least one map"):
        ki.metrics.sparseness(np.zeros((0, 5), "float32"))


def test_one_image_without_its_batch_axis_is_named(cnn):
    with pytest.raises(ValueError, match=r"one example without its batch axis.*\(batch, 10, 10, 2\).*x\[None\]"):
        ki.attribution.vanilla_gradient(cnn, images()[0])


@pytest.mark.parametrize("shape", [(3, 12, 10, 2), (3, 10, 10, 3), (3, 100, 2)])
def test_inputs_of_the_wrong_shape_name_the_expected_one(cnn, shape):
    x = np.zeros(shape, "float32")
    for call in (
        lambda: ki.attribution.vanilla_gradient(cnn, x),
        lambda: ki.attacks.fgsm(cnn, x, epsilon=0.1),
        lambda: ki.metrics.faithfulness_correlation(cnn, x, [0, 1, 2], x, num_runs=2, verbose=0),
    ):
        with pytest.raises(ValueError, match=r"shaped like the model's input, \(batch, 10, 10, 2\)"):
            call()


def test_integer_images_get_advice_that_fits_a_rescaling_model(cnn):
    with pytest.raises(TypeError, match=r"Rescaling.*astype\('float32'\).*Received: x.dtype=uint8"):
        ki.attribution.vanilla_gradient(cnn, (images() * 255).astype("uint8"))


@pytest.mark.parametrize(
    "call",
    [
        lambda x: ki.attribution.vanilla_gradient(None, x),
        lambda x: ki.attribution.gradient_shap(None, x),
        lambda x: ki.attacks.pgd(None, x, epsilon=0.1),
        lambda x: ki.metrics.max_sensitivity(None, x, [0, 1, 2], "vanilla_gradient"),
        lambda x: ki.metrics.faithfulness_estimate(None, x, [0, 1, 2], x),
    ],
)
def test_a_missing_model_is_named(call):
    with pytest.raises(TypeError, match=r"`model` must be a Keras model.*Received: model=None"):
        call(images())


def test_x_none_is_named(cnn):
    with pytest.raises(TypeError, match="Received: x=None"):
        ki.attribution.integrated_gradients(cnn, None)


# --- clip: one check for every attack ------------------------------------------------


@pytest.mark.parametrize("clip", [(1, 0), (0, 0), (0, np.inf), (0,), "01"])
@pytest.mark.parametrize(
    "call",
    [
        lambda m, x, clip: ki.attacks.fgsm(m, x, epsilon=0.1, clip=clip),
        lambda m, x, clip: ki.attacks.pgd(m, x, epsilon=0.1, steps=1, clip=clip),
        lambda m, x, clip: ki.attacks.manipulate_explanation(m, x, epsilon=0.1, steps=1, top_k=5, clip=clip),
        lambda m, x, clip: ki.regularizers.AdversarialTraining(0.1, clip=clip),
    ],
    ids=["fgsm", "pgd", "manipulate", "adversarial_training"],
)
def test_every_attack_checks_clip_the_same_way(cnn, call, clip):
    with pytest.raises(ValueError, match="`clip` must be None .no clipping. or a data range"):
        call(cnn, images(), clip)


def test_fgsm_no_longer_turns_a_reversed_clip_into_ones(cnn):
    # Before: fgsm(clip=(1, 0)) returned every pixel as 1.0.
    with pytest.raises(ValueError, match=r"Received: clip=\(1.0, 0.0\)"):
        ki.attacks.fgsm(cnn, images(), epsilon=0.1, clip=(1, 0))


# --- degenerate maps ----------------------------------------------------------------


def test_constant_maps_warn_with_the_metric_and_the_count():
    maps = np.random.default_rng(0).uniform(size=(4, 8, 8)).astype("float32")
    maps[[0, 2]] = 0.0
    for call, metric in (
        (lambda: ki.metrics.complexity(maps), "complexity"),
        (lambda: ki.metrics.ssim(maps, maps), "similarity: 4 of 8"),
        (lambda: ki.metrics.top_k_intersection(maps, maps, k=3), "similarity"),
    ):
        with pytest.warns(UserWarning, match=f"{metric}.*constant"):
            call()
    with pytest.warns(UserWarning, match="2 of 4 attribution maps are constant"):
        ki.metrics.sparseness(maps)


def test_an_all_zero_explainer_warns_in_the_sensitivity_metrics(cnn):
    def zero(model, x, target=None, **kwargs):
        return keras.ops.zeros_like(keras.ops.convert_to_tensor(x))

    with pytest.warns(UserWarning, match="local_lipschitz_estimate: 3 of 3"):
        scores = ki.metrics.local_lipschitz_estimate(cnn, images(), [0, 1, 2], zero, num_samples=2, verbose=0)
    np.testing.assert_array_equal(scores, 0.0)  # the definition is kept
    with pytest.warns(UserWarning, match="max/avg sensitivity"):
        ki.metrics.max_sensitivity(cnn, images(), [0, 1, 2], zero, num_samples=2, verbose=0)


def test_varied_maps_do_not_warn():
    maps = np.random.default_rng(0).uniform(size=(4, 6, 6)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ki.metrics.complexity(maps)
        ki.metrics.rank_correlation(maps, maps[::-1])


def test_linear_models_still_explain(seed):
    # The shape check reads the model's input; a flat model still works.
    model, w, _ = linear(seed=0, classes=3)
    a = ki.attribution.vanilla_gradient(model, np.ones((2, 5), "float32"), target=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), np.tile(w[:, 1], (2, 1)), rtol=1e-6)
