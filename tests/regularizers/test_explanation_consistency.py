"""ExplanationConsistency (ATEX Eq. 2, "Naive") against Eq. 2 written out in float64 NumPy."""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import _seeds
from keras_interp import regularizers
from tests.conftest import mlp

pytestmark = pytest.mark.multibackend

SEED = 5
CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data(seed, n=8, features=6, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, features)).astype("float32")
    return x, rng.integers(0, classes, n).astype("int32")


def neighbors(x, epsilon, k, seed):
    """The draw the docstring documents: one uniform draw, neighbour-major."""
    noise = keras.random.uniform(
        (k * len(x),) + x.shape[1:],
        minval=-epsilon,
        maxval=epsilon,
        dtype="float32",
        seed=_seeds.generator(seed),
    )
    stacked = np.tile(x, (k, 1)) + keras.ops.convert_to_numpy(noise)
    return stacked.reshape((k,) + x.shape)


def forward(params, x):
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1 + b1)
    return h, h @ w2 + b2


def cross_entropy(params, x, t):
    """Mean cross-entropy against target distributions `t` [B, C]."""
    _, z = forward(params, x)
    top = z.max(axis=1, keepdims=True)
    log_softmax = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    return np.mean(-np.sum(t * log_softmax, axis=1))


def explanation(params, x, t):
    """d z_c / dx of the tanh MLP, c = argmax t: W1 diag(1 - h^2) W2[:, c], per row."""
    w1, _, w2, _ = params
    h, _ = forward(params, x)
    return ((1 - h**2) * w2[:, t.argmax(1)].T) @ w1.T


def distance(params, x, t, near):
    """mean over k and b of ||phi(x_k) - phi(x)||^2."""
    clean = explanation(params, x, t)
    return np.mean([np.sum((explanation(params, xk, t) - clean) ** 2, 1) for xk in near])


def eq2_term(params, x, t, near, with_distance=True):
    """(1/K) sum_k [CE(g(x_k), t) + mean_b ||phi(x_k) - phi(x)||^2]."""
    term = np.mean([cross_entropy(params, xk, t) for xk in near])
    return term + distance(params, x, t, near) if with_distance else term


def eq2_gradient(params, x, t, near, weight, with_distance=True, h=1e-6):
    """Central differences of CE(x) + weight * term over every weight."""

    def total(flat):
        ps, start = [], 0
        for p in params:
            ps.append(flat[start : start + p.size].reshape(p.shape))
            start += p.size
        return cross_entropy(ps, x, t) + weight * eq2_term(ps, x, t, near, with_distance)

    flat = np.concatenate([p.ravel() for p in params])
    grad = np.empty_like(flat)
    for i in range(flat.size):
        step = np.zeros_like(flat)
        step[i] = h
        grad[i] = (total(flat + step) - total(flat - step)) / (2 * h)
    return grad


LABELS = {
    "indices": (lambda y: y, CE),
    "column": (lambda y: y[:, None], CE),
    # Soft labels: the explained class is their argmax, the loss their CE.
    "smoothed": (
        lambda y: 0.9 * np.eye(3, dtype="float32")[y] + 0.1 / 3,
        keras.losses.CategoricalCrossentropy(from_logits=True),
    ),
}


def distributions(labels, y):
    return LABELS["smoothed"][0](y) if labels == "smoothed" else np.eye(3)[y]


@pytest.mark.parametrize("labels", sorted(LABELS))
def test_composed_equals_eq2_by_hand_and_one_step_follows_its_gradient(labels):
    model, _ = mlp(0, in_shape=(6,), hidden=8, classes=3)
    params = [w.astype("float64") for w in model.get_weights()]
    x, y = data(1)
    reg = regularizers.ExplanationConsistency(0.7, epsilon=0.3, num_neighbors=3)
    wrapped = ki.RegularizedModel(model, [reg], seed=SEED)
    encode, loss = LABELS[labels]
    # SGD with rate 1: the logs hold the loss at the initial weights and
    # the update is minus the gradient of that loss.
    wrapped.compile(keras.optimizers.SGD(1.0), loss)
    logs = wrapped.train_on_batch(x, encode(y), return_dict=True)

    # The regulariser is the model's first: its neighbours come from the
    # training stream's seed, mix(seed, 0, 0).
    near = neighbors(x, 0.3, 3, _seeds.mix(SEED, 0, 0)).astype("float64")
    x64, t = x.astype("float64"), distributions(labels, y)
    term = eq2_term(params, x64, t, near)
    # Not a degenerate check: dropping the distance would fail the next one.
    assert distance(params, x64, t, near) > 1e-3 * term
    np.testing.assert_allclose(logs["explanation_consistency"], term, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], cross_entropy(params, x64, t) + 0.7 * term, rtol=1e-5)

    # Double backprop: the update equals the gradient of Eq. 2, second-order
    # terms of the explanation distance included.
    update = np.concatenate(
        [(b - a).ravel() for a, b in zip(model.get_weights(), params)]
    )
    expected = eq2_gradient(params, x64, t, near, 0.7)
    np.testing.assert_allclose(update, expected, rtol=1e-3, atol=2e-5)
    # A first-order-only step (explanations held constant) would miss this.
    first_order = eq2_gradient(params, x64, t, near, 0.7, with_distance=False)
    assert np.max(np.abs(expected - first_order)) > 100 * 2e-5


def test_training_keeps_explanations_consistent_while_fitting():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (64, 6)).astype("float32")
    y = (np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2] > 0).astype("int32") + (x[:, 3] > 0.5)
    near = neighbors(x, 0.3, 4, 9).astype("float64")
    x64, t = x.astype("float64"), np.eye(3)[y]

    def train(regs):
        model, _ = mlp(3, in_shape=(6,), hidden=16, classes=3)
        trained = ki.RegularizedModel(model, regs, seed=0) if regs else model
        trained.compile(keras.optimizers.Adam(0.1), CE)
        for _ in range(20):
            trained.train_on_batch(x, y)
        params = [w.astype("float64") for w in model.get_weights()]
        return distance(params, x64, t, near), cross_entropy(params, x64, t)

    initial, _ = mlp(3, in_shape=(6,), hidden=16, classes=3)
    initial = [w.astype("float64") for w in initial.get_weights()]
    plain, _ = train([])
    regularized, fitted = train([regularizers.ExplanationConsistency(3.0, epsilon=0.3)])
    # Plain training sharpens the explanations (about 50 times the
    # regularised distance here); the regularised model still learns.
    assert regularized < 0.2 * plain, (regularized, plain)
    assert fitted < 0.9 * cross_entropy(initial, x64, t)


def test_fit_with_partial_batches_and_validation():
    x, y = data(4, n=20)
    model, _ = mlp(4, in_shape=(6,), hidden=8, classes=3)
    before = [w.copy() for w in model.get_weights()]
    wrapped = ki.RegularizedModel(
        model, [regularizers.ExplanationConsistency(1.0)], seed=0, evaluate_regularizers=True
    )
    wrapped.compile("adam", CE)
    # 20 rows at batch 8: the last batch has 4 rows.
    history = wrapped.fit(
        x, y, batch_size=8, epochs=1, validation_data=(x[:6], y[:6]), verbose=0
    ).history
    for key in ("loss", "explanation_consistency", "val_loss", "val_explanation_consistency"):
        assert key in history and np.isfinite(history[key]).all(), key
    assert all(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def test_bad_arguments():
    with pytest.raises(ValueError, match="Received: weight=-1.0"):
        regularizers.ExplanationConsistency(-1.0)
    with pytest.raises(ValueError, match="Received: epsilon=0.0"):
        regularizers.ExplanationConsistency(epsilon=0)
    with pytest.raises(ValueError, match="Received: epsilon=nan"):
        regularizers.ExplanationConsistency(epsilon=float("nan"))
    with pytest.raises(ValueError, match="Received: num_neighbors=0"):
        regularizers.ExplanationConsistency(num_neighbors=0)
    with pytest.raises(TypeError, match="Received: num_neighbors=2.0"):
        regularizers.ExplanationConsistency(num_neighbors=2.0)


def test_config_registry_and_saving(tmp_path):
    reg = regularizers.ExplanationConsistency(0.5, epsilon=0.2, num_neighbors=2)
    config = {"weight": 0.5, "epsilon": 0.2, "num_neighbors": 2}
    assert reg.get_config() == config
    assert regularizers.get(keras.saving.serialize_keras_object(reg)).get_config() == config
    assert regularizers.get("explanation_consistency", **config).get_config() == config
    assert regularizers.REGISTRY["explanation_consistency"] is regularizers.ExplanationConsistency
    assert (
        keras.saving.get_registered_object("keras_interp>ExplanationConsistency")
        is regularizers.ExplanationConsistency
    )
    assert reg.name == "explanation_consistency"

    model, _ = mlp(5)
    wrapped = ki.RegularizedModel(model, [reg], seed=1)
    wrapped.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.regularizers[0], regularizers.ExplanationConsistency)
    assert loaded.regularizers[0].get_config() == config
