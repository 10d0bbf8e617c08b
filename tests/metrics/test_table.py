"""metrics.evaluate: the composed table equals the metrics called one by one."""

import functools
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import keras_interp as ki
from keras_interp import metrics
from tests.conftest import small_cnn

pytestmark = pytest.mark.backends_in_ci


def test_table_equals_each_metric_called_alone():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (5, 10, 10, 2)).astype("float32")
    y = rng.integers(0, 4, 5)
    model = small_cnn(0)
    explain = functools.partial(ki.attribution.integrated_gradients, steps=4)
    options = dict(
        max_sensitivity={"num_samples": 3},
        avg_sensitivity={"num_samples": 3},
        local_lipschitz_estimate={"num_samples": 3},
        faithfulness_correlation={"num_runs": 8, "subset_size": 20},
        faithfulness_estimate={"features_in_step": 10},
    )
    table = metrics.evaluate(model, x, y, explain, seed=4, verbose=0, **options)
    assert list(table) == list(metrics.PAPER_METRICS)

    a = explain(model, x, y)
    alone = {
        "max_sensitivity": metrics.max_sensitivity(model, x, y, explain, num_samples=3, seed=4, verbose=0),
        "avg_sensitivity": metrics.avg_sensitivity(model, x, y, explain, num_samples=3, seed=4, verbose=0),
        "local_lipschitz_estimate": metrics.local_lipschitz_estimate(
            model, x, y, explain, num_samples=3, seed=4, verbose=0
        ),
        "faithfulness_correlation": metrics.faithfulness_correlation(
            model, x, y, a, num_runs=8, subset_size=20, seed=4, verbose=0
        ),
        "faithfulness_estimate": metrics.faithfulness_estimate(model, x, y, a, features_in_step=10, verbose=0),
        "complexity": metrics.complexity(a),
        "sparseness": metrics.sparseness(a),
    }
    for name, scores in alone.items():
        row = table[name]
        np.testing.assert_allclose(row["scores"], scores, rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(row["mean"], np.mean(scores), rtol=1e-5)
        np.testing.assert_allclose(row["sem"], np.std(scores, ddof=1) / np.sqrt(5), rtol=1e-5)
        assert row["higher_is_better"] == getattr(metrics, name).higher_is_better


def test_unknown_metric_names_are_rejected():
    x = np.zeros((2, 10, 10, 2), "float32")
    with pytest.raises(ValueError, match=r"Received: \['sharpness'\]"):
        metrics.evaluate(small_cnn(0), x, [0, 1], "vanilla_gradient", metrics=["sharpness"])
    with pytest.raises(ValueError, match=r"Received: \['complexity'\]"):
        metrics.evaluate(
            small_cnn(0), x, [0, 1], "vanilla_gradient", metrics=["sparseness"], complexity={}
        )


def _small_problem():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (4, 10, 10, 2)).astype("float32")
    return small_cnn(1), x, rng.integers(0, 4, 4)


SENSITIVITY = dict(
    metrics=["max_sensitivity", "sparseness"], max_sensitivity={"num_samples": 3}, verbose=0
)


@pytest.mark.parametrize(
    "explain",
    ["gradient_shap", functools.partial(ki.attribution.smoothgrad, num_samples=4)],
    ids=["gradient_shap_by_name", "smoothgrad_partial"],
)
def test_a_random_explainer_gives_the_same_table_for_the_same_seed(explain):
    model, x, y = _small_problem()
    tables = [metrics.evaluate(model, x, y, explain, seed=s, **SENSITIVITY) for s in (0, 0, 1)]
    for name in ("max_sensitivity", "sparseness"):
        np.testing.assert_array_equal(tables[0][name]["scores"], tables[1][name]["scores"])
        assert not np.allclose(tables[0][name]["scores"], tables[2][name]["scores"]), name


@pytest.mark.parametrize("metric", ["max_sensitivity", "avg_sensitivity", "local_lipschitz_estimate"])
def test_a_sensitivity_metric_called_alone_is_reproducible_and_equals_the_table(metric):
    model, x, y = _small_problem()
    fn = getattr(metrics, metric)
    alone = [fn(model, x, y, "gradient_shap", num_samples=3, seed=s, verbose=0) for s in (0, 0, 1)]
    np.testing.assert_array_equal(alone[0], alone[1])
    assert not np.allclose(alone[0], alone[2])
    table = metrics.evaluate(model, x, y, "gradient_shap", metrics=[metric], seed=0, verbose=0, **{metric: {"num_samples": 3}})
    np.testing.assert_array_equal(table[metric]["scores"], alone[0])


def test_a_seed_bound_by_the_caller_is_kept():
    model, x, y = _small_problem()
    explain = functools.partial(ki.attribution.gradient_shap, num_samples=4, seed=9)
    table = metrics.evaluate(model, x, y, explain, metrics="sparseness", seed=0, verbose=0)
    np.testing.assert_allclose(
        table["sparseness"]["scores"], metrics.sparseness(explain(model, x, y)), rtol=1e-6
    )


_IN_A_SUBPROCESS = """
import functools, sys
import numpy as np
import keras_interp as ki
from tests.conftest import small_cnn
rng = np.random.default_rng(1)
x = rng.uniform(0, 1, (4, 10, 10, 2)).astype("float32")
y = rng.integers(0, 4, 4)
explain = functools.partial(ki.attribution.gradient_shap, num_samples=4)
table = ki.metrics.evaluate(small_cnn(1), x, y, explain, metrics="max_sensitivity",
                            seed=0, verbose=0, max_sensitivity={"num_samples": 3})
np.save(sys.argv[1], table["max_sensitivity"]["scores"])
"""


def test_the_table_is_the_same_in_another_process(tmp_path):
    model, x, y = _small_problem()
    explain = functools.partial(ki.attribution.gradient_shap, num_samples=4)
    here = metrics.evaluate(
        model, x, y, explain, metrics="max_sensitivity", seed=0, verbose=0,
        max_sensitivity={"num_samples": 3},
    )
    out = tmp_path / "scores.npy"
    root = pathlib.Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-c", _IN_A_SUBPROCESS, str(out)],
        check=True, cwd=root, env={**os.environ, "PYTHONHASHSEED": "123"},
        capture_output=True, timeout=300,
    )
    np.testing.assert_array_equal(np.load(out), here["max_sensitivity"]["scores"])


def test_one_metric_name_is_a_one_metric_table():
    model, x, y = _small_problem()
    table = metrics.evaluate(model, x, y, "vanilla_gradient", metrics="sparseness", verbose=0)
    assert list(table) == ["sparseness"]
    np.testing.assert_allclose(
        table["sparseness"]["scores"],
        metrics.sparseness(ki.attribution.vanilla_gradient(model, x, y)),
        rtol=1e-6,
    )


def test_nan_scores_are_counted():
    model, x, y = _small_problem()

    def half_zero(model, x, target=None, **kwargs):
        # The entropy (complexity) of an all-zero map is 0/0: NaN.
        a = ki.attribution.vanilla_gradient(model, x, target)
        keep = np.arange(x.shape[0]) % 2 == 0
        return a * keep.reshape((-1,) + (1,) * (len(x.shape) - 1)).astype("float32")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = metrics.evaluate(model, x, y, half_zero, metrics=["complexity", "sparseness"], verbose=0)
    row = table["complexity"]
    assert row["nan_count"] == int(np.sum(np.isnan(row["scores"]))) == 2
    np.testing.assert_allclose(row["mean"], np.nanmean(row["scores"]), rtol=1e-6)
    assert table["sparseness"]["nan_count"] == 0
