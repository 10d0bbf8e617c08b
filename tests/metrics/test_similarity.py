"""rank_correlation, top_k_intersection and ssim against SciPy, sets, skimage."""

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from keras_interp import data
from keras_interp.metrics.similarity import rank_correlation
from keras_interp.metrics.similarity import ssim
from keras_interp.metrics.similarity import top_k_intersection

pytestmark = pytest.mark.backends_in_ci

# Most batches are [4, 28, 28]: JAX compiles each op once per shape, so
# sharing shapes keeps the suite fast on every backend.
B, H, W = 4, 28, 28


def rng(seed=0):
    return np.random.default_rng(seed)


def scipy_spearman(a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN and a warning
        return np.array(
            [spearmanr(a[i].ravel(), b[i].ravel()).statistic for i in range(len(a))]
        )


def set_top_k(a, b, k):
    """The k largest |value| of each map (earlier positions first on ties)."""
    result = []
    for u, v in zip(a.reshape(len(a), -1), b.reshape(len(b), -1)):
        top_u = set(sorted(range(u.size), key=lambda j: (-abs(u[j]), j))[:k])
        top_v = set(sorted(range(v.size), key=lambda j: (-abs(v[j]), j))[:k])
        result.append(len(top_u & top_v) / k)
    return np.array(result)


def skimage_ssim(a, b, data_range):
    data_range = np.broadcast_to(data_range, (len(a),))
    channel_axis = -1 if a.ndim == 4 else None
    return np.array(
        [
            structural_similarity(
                a[i].astype("float64"),
                b[i].astype("float64"),
                data_range=float(data_range[i]),
                channel_axis=channel_axis,
            )
            for i in range(len(a))
        ]
    )


@pytest.fixture(scope="module")
def mnist():
    (x, _), _ = data.load("mnist5k")
    return x[:B]  # [4, 28, 28, 1] in [0, 1]


# -- rank_correlation --------------------------------------------------------


def test_rank_correlation_equals_scipy_without_ties():
    a = rng(0).normal(size=(B, H, W)).astype("float32")
    b = (a + rng(1).normal(size=a.shape)).astype("float32")
    r = rank_correlation(a, b)
    assert r.dtype == np.float64 and r.shape == (B,)
    np.testing.assert_allclose(r, scipy_spearman(a, b), atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        # Integer maps: every value shared by ~100 features.
        lambda g: g.integers(-3, 4, size=(2, B, H, W)),
        # Mostly zeros, as after ReLU or clipping, plus a few repeated values.
        lambda g: g.choice([0.0, 0.0, 0.0, 0.0, 0.5, -1.25], size=(2, B, H, W))
        + (g.random((2, B, H, W)) < 0.1) * g.normal(size=(2, B, H, W)),
        # Two values only, and one map against a tie-free map.
        lambda g: np.stack(
            [g.integers(0, 2, size=(B, H, W)), g.normal(size=(B, H, W))]
        ),
    ],
    ids=["integers", "zeros", "binary_vs_continuous"],
)
def test_rank_correlation_averages_ties_like_scipy(make):
    a, b = make(rng(2)).astype("float32")
    np.testing.assert_allclose(rank_correlation(a, b), scipy_spearman(a, b), atol=1e-6)


def test_rank_correlation_on_large_maps_with_ties():
    g = rng(3)
    a = g.integers(0, 50, size=(2, 224, 224)).astype("float32")
    b = np.where(g.random(a.shape) < 0.5, a, g.integers(0, 50, size=a.shape)).astype("float32")
    np.testing.assert_allclose(rank_correlation(a, b), scipy_spearman(a, b), atol=1e-6)


def test_rank_correlation_channels_and_extremes():
    a = rng(4).normal(size=(B, 14, 14, 4)).astype("float32")  # 784 features
    np.testing.assert_allclose(rank_correlation(a, a**3), np.ones(B), atol=1e-6)
    np.testing.assert_allclose(rank_correlation(a, -a), -np.ones(B), atol=1e-6)
    b = rng(5).normal(size=a.shape).astype("float32")
    np.testing.assert_allclose(rank_correlation(a, b), scipy_spearman(a, b), atol=1e-6)


def test_rank_correlation_of_a_constant_map_is_nan_like_scipy():
    a = rng(6).normal(size=(B, H, W)).astype("float32")
    b = a.copy()
    b[1] = 0.0
    r = rank_correlation(a, b)
    assert np.isnan(r[1]) and np.isnan(scipy_spearman(a, b)[1])
    np.testing.assert_allclose(r[[0, 2, 3]], 1.0, atol=1e-6)


# -- top_k_intersection ------------------------------------------------------


@pytest.mark.parametrize("k", [1, 10, 100, 783, H * W])
def test_top_k_equals_set_computation(k):
    a = rng(7).normal(size=(B, H, W)).astype("float32")
    b = (a + 0.5 * rng(8).normal(size=a.shape)).astype("float32")
    t = top_k_intersection(a, b, k)
    assert t.dtype == np.float64 and t.shape == (B,)
    np.testing.assert_array_equal(t, set_top_k(a, b, k))


@pytest.mark.parametrize("k", [5, 50, 300])
def test_top_k_with_ties_equals_set_computation(k):
    # Signed integers: |a| ties everywhere, and -2 ranks with 2.
    a = rng(9).integers(-4, 5, size=(B, H, W)).astype("float32")
    b = rng(10).integers(-4, 5, size=(B, H, W)).astype("float32")
    np.testing.assert_array_equal(top_k_intersection(a, b, k), set_top_k(a, b, k))


def test_top_k_uses_magnitudes_and_constant_maps_agree():
    a = rng(11).normal(size=(B, H, W)).astype("float32")
    np.testing.assert_array_equal(top_k_intersection(a, -3 * a, 20), np.ones(B))
    zeros = np.zeros((B, H, W), "float32")
    np.testing.assert_array_equal(top_k_intersection(zeros, zeros + 2, 20), np.ones(B))


# -- ssim --------------------------------------------------------------------


def test_ssim_equals_skimage_on_random_maps():
    a = rng(12).random((B, H, W)).astype("float32")
    b = np.clip(a + 0.2 * rng(13).normal(size=a.shape), 0, 1).astype("float32")
    s = ssim(a, b, data_range=1.0)
    assert s.dtype == np.float64 and s.shape == (B,)
    np.testing.assert_allclose(s, skimage_ssim(a, b, 1.0), atol=1e-5)


def test_ssim_equals_skimage_on_mnist(mnist):
    noisy = np.clip(mnist + rng(14).normal(0, 0.1, mnist.shape), 0, 1).astype("float32")
    # Channels-last [B, 28, 28, 1] (skimage with channel_axis=-1) ...
    expected = skimage_ssim(mnist, noisy, 1.0)
    np.testing.assert_allclose(ssim(mnist, noisy, data_range=1.0), expected, atol=1e-5)
    # ... and [B, 28, 28] give the same numbers.
    np.testing.assert_allclose(ssim(mnist[..., 0], noisy[..., 0], 1.0), expected, atol=1e-5)
    assert np.all(expected < 0.99)  # the noise is seen
    np.testing.assert_allclose(ssim(mnist, mnist, 1.0), np.ones(B), atol=1e-6)


def test_ssim_averages_channels_like_skimage():
    a = rng(15).normal(size=(B, 20, 13, 3)).astype("float32")
    b = (a + 0.5 * rng(16).normal(size=a.shape)).astype("float32")
    np.testing.assert_allclose(ssim(a, b, data_range=4.0), skimage_ssim(a, b, 4.0), atol=1e-5)


def test_ssim_default_data_range_is_the_joint_range_per_example():
    # Signed maps on very different scales per example, far from [0, 1].
    scale = np.array([1e-3, 1.0, 50.0, 1e4]).reshape(-1, 1, 1)
    a = (rng(17).normal(size=(B, H, W)) * scale).astype("float32")
    b = (a + 0.3 * scale * rng(18).normal(size=a.shape)).astype("float32")
    joint = np.maximum(a.max((1, 2)), b.max((1, 2))) - np.minimum(a.min((1, 2)), b.min((1, 2)))
    np.testing.assert_allclose(ssim(a, b), skimage_ssim(a, b, joint), atol=1e-5)
    # The same range passed per example, explicitly.
    np.testing.assert_allclose(ssim(a, b, data_range=joint), skimage_ssim(a, b, joint), atol=1e-5)


def test_ssim_stays_accurate_on_offset_maps():
    a = (100.0 + rng(19).normal(size=(B, H, W))).astype("float32")
    b = (a + 0.5 * rng(20).normal(size=a.shape)).astype("float32")
    np.testing.assert_allclose(ssim(a, b, data_range=6.0), skimage_ssim(a, b, 6.0), atol=1e-5)


def test_ssim_of_constant_maps():
    c = np.full((B, H, W), 0.7, "float32")
    # Identical constant maps have no range; they score 1.0.
    np.testing.assert_allclose(ssim(c, c), np.ones(B), atol=1e-6)
    other = np.zeros_like(c)
    np.testing.assert_allclose(ssim(c, other, 1.0), skimage_ssim(c, other, 1.0), atol=1e-6)


def test_directions():
    for fn in (rank_correlation, top_k_intersection, ssim):
        assert fn.higher_is_better is True


# -- bad input ---------------------------------------------------------------


def test_bad_input():
    a = np.zeros((B, H, W), "float32")
    with pytest.raises(ValueError, match=r"a.shape=\(4, 28, 28\), b.shape=\(4, 28, 27\)"):
        rank_correlation(a, a[:, :, :-1])
    with pytest.raises(ValueError, match=r"a.shape=\(28,\)"):
        ssim(a[0, 0], a[0, 0])
    with pytest.raises(ValueError, match=r"b.shape=\(28,\)"):
        top_k_intersection(a[0], a[0, 0], 3)
    with pytest.raises(ValueError, match="k=0"):
        top_k_intersection(a, a, 0)
    with pytest.raises(ValueError, match=r"number of features of one map \(784\).*k=785"):
        top_k_intersection(a, a, 785)
    with pytest.raises(TypeError, match="k=2.5"):
        top_k_intersection(a, a, 2.5)
    with pytest.raises(ValueError, match=r"\[B, H, W\] or \[B, H, W, C\].*a.shape=\(4, 784\)"):
        ssim(a.reshape(B, -1), a.reshape(B, -1))
    with pytest.raises(ValueError, match=r"at least 7x7.*a.shape=\(4, 6, 28\)"):
        ssim(a[:, :6], a[:, :6])
    with pytest.raises(ValueError, match="data_range=0"):
        ssim(a, a, data_range=0)
    with pytest.raises(ValueError, match=r"shape \(4,\).*data_range.shape=\(3,\)"):
        ssim(a, a, data_range=[1.0, 1.0, 1.0])
    nan = a.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`b` must be finite"):
        rank_correlation(a, nan)
