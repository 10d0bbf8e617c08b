"""metrics.evaluate: the composed table equals the metrics called one by one."""

import functools

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
