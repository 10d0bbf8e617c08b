"""complexity and sparseness against literal NumPy transcriptions of Quantus."""

import warnings

import numpy as np
import pytest

from keras_interp.metrics.complexity import complexity
from keras_interp.metrics.complexity import sparseness

pytestmark = pytest.mark.backends_in_ci


def quantus_preprocess(a, abs=True, normalise=True, per_example=False):
    """Quantus 0.6.0 `general_preprocess`: `normalise_by_max`, then `np.abs`."""
    a = np.asarray(a, dtype="float64")
    if normalise and not np.all(a == 0.0):
        axes = tuple(range(1, a.ndim)) if per_example else None
        peak = np.max(np.abs(a), axis=axes, keepdims=True)
        a = a / np.where(peak > 0, peak, 1.0)
    if abs:
        a = np.abs(a)
    return a


def bhatt_entropy(a):
    """`quantus.Complexity.evaluate_batch`, line for line."""
    a = a.reshape(a.shape[0], -1).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        a /= np.abs(a).sum(-1, keepdims=True)
        return -(a * np.log(a + 1e-12)).sum(-1)


def gini(a):
    """`quantus.Sparseness.evaluate_batch`, line for line."""
    a = a.reshape(a.shape[0], -1).copy()
    n_features = a.shape[-1]
    a += 1e-7
    a = np.sort(a, axis=-1)
    a_arange = np.stack([np.arange(1, n_features + 1) for _ in a])
    return ((2 * a_arange - n_features - 1) * a).sum(axis=-1) / (
        n_features * a.sum(axis=-1)
    )


def signed_maps(shape, seed=0):
    rng = np.random.default_rng(seed)
    # Heavy-tailed, signed, a few exact zeros: like real gradients.
    scale = rng.uniform(0.01, 3.0, (shape[0],) + (1,) * (len(shape) - 1))
    a = rng.standard_t(2, size=shape) * scale
    a[rng.random(shape) < 0.2] = 0.0
    return a.astype("float32")


# Every map has 784 features and every batch 4 maps: JAX compiles each op
# once per shape, so sharing shapes keeps the suite fast on all backends.
@pytest.mark.parametrize("shape", [(4, 28, 28, 1), (4, 28, 28), (4, 14, 14, 4), (4, 784)])
def test_quantus_defaults_equal_numpy_transcription(shape):
    a = signed_maps(shape)
    reference = quantus_preprocess(a)
    c, s = complexity(a), sparseness(a)
    assert c.dtype == np.float64 and c.shape == (shape[0],)
    assert s.dtype == np.float64 and s.shape == (shape[0],)
    np.testing.assert_allclose(c, bhatt_entropy(reference), rtol=1e-5)
    np.testing.assert_allclose(s, gini(reference), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("per_example", [False, True])
@pytest.mark.parametrize("abs_", [False, True])
@pytest.mark.parametrize("normalise", [False, True])
def test_options_equal_numpy_transcription(normalise, abs_, per_example):
    # Positive maps so that abs=False stays finite.
    a = np.abs(signed_maps((4, 28, 28)))
    reference = quantus_preprocess(a, abs_, normalise, per_example)
    kwargs = dict(abs=abs_, normalise=normalise, per_example=per_example)
    np.testing.assert_allclose(complexity(a, **kwargs), bhatt_entropy(reference), rtol=1e-5)
    np.testing.assert_allclose(sparseness(a, **kwargs), gini(reference), rtol=1e-5, atol=1e-7)


def test_batch_normalisation_changes_sparseness_through_the_offset_only():
    # The second map is the first times 1e-6: after the batch-wide division
    # its values are comparable to the 1e-7 offset, which evens it out.
    m = signed_maps((2, 28, 28))
    a = np.concatenate([m, 1e-6 * m])
    batch = sparseness(a)
    np.testing.assert_allclose(batch, gini(quantus_preprocess(a)), rtol=1e-5)
    assert np.all(batch[2:] < batch[:2] - 0.1)
    own = sparseness(a, per_example=True)
    np.testing.assert_allclose(own[2:], own[:2], rtol=1e-5)
    # The entropy divides by each map's own total: no dependence at all.
    np.testing.assert_allclose(complexity(a), complexity(a, per_example=True), rtol=1e-5)


def test_even_and_one_hot_maps():
    f = 784
    a = np.zeros((4, 28, 28), "float32")
    a[0] = 0.3  # constant
    a[1, 14, 14] = -2.0  # one feature
    a[2, :, :14] = 1.0  # half the features
    a[3] = np.arange(f).reshape(28, 28)
    expected = [np.log(f), 0.0, np.log(f / 2), bhatt_entropy(a[3:] / a[3].sum())[0]]
    np.testing.assert_allclose(complexity(a), expected, rtol=1e-5, atol=1e-6)
    s = sparseness(a)
    assert s[0] == 0.0  # exactly: the weights of the Gini sum cancel
    np.testing.assert_allclose(s, gini(quantus_preprocess(a)), rtol=1e-5, atol=1e-7)
    # 1 - 1/F, but for the 1e-7 offset on the F - 1 zeros (which weighs
    # more after the batch-wide division by 783: use the map's own max).
    np.testing.assert_allclose(sparseness(a, per_example=True)[1], 1 - 1 / f, atol=1e-4)


def test_all_zero_map_is_nan_complexity_and_zero_sparseness_like_quantus():
    a = signed_maps((4, 28, 28))
    a[1] = 0.0
    reference = quantus_preprocess(a)
    c = complexity(a)
    # Quantus divides 0 by 0: NaN for that map only.
    assert np.isnan(c[1]) and np.isnan(bhatt_entropy(reference)[1])
    np.testing.assert_allclose(c, bhatt_entropy(reference), rtol=1e-5)
    s = sparseness(a)
    assert s[1] == 0.0
    np.testing.assert_allclose(s, gini(reference), rtol=1e-5, atol=1e-7)
    # A batch of zeros is left unnormalised, as Quantus' normalise_by_max does.
    assert np.all(np.isnan(complexity(np.zeros((4, 28, 28)))))
    np.testing.assert_array_equal(sparseness(np.zeros((4, 28, 28))), np.zeros(4))


def test_negative_values_without_abs_give_nan_like_quantus():
    a = signed_maps((4, 28, 28))
    reference = bhatt_entropy(quantus_preprocess(a, abs=False))
    assert np.all(np.isnan(reference))
    assert np.all(np.isnan(complexity(a, abs=False)))


def test_integer_maps_are_accepted():
    a = np.random.default_rng(0).integers(0, 5, (4, 28, 28))
    np.testing.assert_allclose(complexity(a), bhatt_entropy(quantus_preprocess(a)), rtol=1e-5)


def test_direction():
    assert complexity.higher_is_better is False
    assert sparseness.higher_is_better is True


@pytest.mark.parametrize("fn", [complexity, sparseness])
def test_bad_input(fn):
    with pytest.raises(ValueError, match=r"attributions.shape=\(5,\)"):
        fn(np.ones(5, "float32"))
    bad = np.ones((4, 28, 28), "float32")
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`attributions` must be finite"):
        fn(bad)
    with pytest.raises(TypeError, match="attributions.dtype=bool"):
        fn(np.ones((2, 3), bool))


@pytest.mark.tensorflow_only
def test_equals_quantus_itself():
    quantus = pytest.importorskip("quantus")
    a = signed_maps((4, 28, 28, 1))
    a[2] = 0.0
    a_quantus = np.transpose(a, (0, 3, 1, 2)).copy()  # Quantus wants (N, 1, H, W)
    x = np.zeros_like(a_quantus)
    y = np.zeros(len(a), "int64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_c = quantus.Complexity(disable_warnings=True)(
            model=None, x_batch=x, y_batch=y, a_batch=a_quantus.copy()
        )
        expected_s = quantus.Sparseness(disable_warnings=True)(
            model=None, x_batch=x, y_batch=y, a_batch=a_quantus.copy()
        )
    np.testing.assert_allclose(complexity(a), expected_c, rtol=1e-5)
    np.testing.assert_allclose(sparseness(a), expected_s, rtol=1e-5, atol=1e-7)
