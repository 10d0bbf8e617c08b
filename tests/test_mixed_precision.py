"""RegularizedModel under Keras mixed precision: float16/bfloat16 layers, float32 loss.

Marked `backends_in_ci`: TensorFlow in `make test`, JAX and PyTorch in
`make test-backends`.
"""

import keras
import numpy as np
import pytest

import keras_interp as ki
from keras_interp import regularizers
from tests.conftest import small_cnn
from tests.conftest import to_numpy

pytestmark = pytest.mark.backends_in_ci

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

REGULARIZERS = {
    "neuron_sensitivity": lambda: regularizers.NeuronSensitivity(1.0, 0.3, num_perturbations=2),
    "chunked": lambda: regularizers.NeuronSensitivity(1.0, 0.3, num_perturbations=2, chunk_size=1),
    "jacobian_norm": lambda: regularizers.JacobianNorm(0.1, num_projections=2),
    "adversarial_loss": lambda: regularizers.AdversarialTraining(0.05, steps=2, clip=(0.0, 1.0)),
    "explanation_consistency": lambda: regularizers.ExplanationConsistency(1.0),
}


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def data(n=16):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (n, 10, 10, 2)).astype("float32"), rng.integers(0, 4, n).astype("int32")


def step(make, lr=0.0):
    """One step at small_cnn(0)'s weights: the logs and the loss's dtype."""
    x, y = data()
    model = small_cnn(0)
    reg = make()
    wrapped = ki.RegularizedModel(model, [reg], seed=5)
    wrapped.compile(keras.optimizers.SGD(lr), CE)
    logs = wrapped.train_on_batch(x, y, return_dict=True)
    loss = wrapped.compute_loss(x, y, wrapped(x), training=False)
    return reg.name, logs, keras.backend.standardize_dtype(loss.dtype), model


# float16 keeps 11 significant bits, bfloat16 8: the terms agree with the
# float32 run to about 1% and 5%.
@pytest.mark.parametrize("policy,rtol", [("mixed_float16", 0.02), ("mixed_bfloat16", 0.08)], indirect=["policy"])
@pytest.mark.parametrize("kind", sorted(REGULARIZERS))
def test_terms_match_float32_and_the_loss_is_float32(policy, rtol, kind):
    name, logs, loss_dtype, model = step(REGULARIZERS[kind])
    assert model.layers[0].compute_dtype == policy.split("_")[1]
    assert loss_dtype == "float32"
    keras.mixed_precision.set_global_policy("float32")
    _, reference, _, _ = step(REGULARIZERS[kind])
    for key in ("loss", name):
        np.testing.assert_allclose(logs[key], reference[key], rtol=rtol, err_msg=key)


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_fit_trains_with_a_loss_scale_under_float16(policy):
    x, y = data(32)
    model = small_cnn(1)
    before = [to_numpy(w) for w in model.weights]
    wrapped = ki.RegularizedModel(model, [regularizers.NeuronSensitivity(1.0, 0.3, num_perturbations=2)], seed=0)
    wrapped.compile(keras.optimizers.SGD(0.1), CE)
    # Keras wraps the optimizer in a LossScaleOptimizer for float16.
    assert isinstance(wrapped.optimizer, keras.optimizers.LossScaleOptimizer)
    # SGD at 0.1 on 32 examples is noisy: on JAX the losses of one draw of
    # the perturbations went 1.454, 1.395, 1.379, 1.464, so the check is
    # that training lowered the loss, not that the last epoch is the lowest.
    history = wrapped.fit(x, y, batch_size=8, epochs=4, verbose=0).history
    assert np.isfinite(history["loss"]).all() and min(history["loss"][1:]) < history["loss"][0]
    assert all(w.dtype == "float32" for w in model.weights)
    assert all(not np.allclose(to_numpy(w), b) for w, b in zip(model.weights, before))
