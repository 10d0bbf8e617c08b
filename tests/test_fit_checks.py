"""`RegularizedModel.fit` names bad data before training, and a bad dataset batch when read."""

import keras
import numpy as np
import pytest

import keras_interp as ki

pytestmark = pytest.mark.backends_in_ci


def classifier(classes=3):
    return keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(classes)]
    )


def regularized(base=None, reg=None):
    model = ki.RegularizedModel(
        base if base is not None else classifier(),
        [reg if reg is not None else ki.regularizers.NeuronSensitivity(1.0, 0.1, num_perturbations=2)],
        seed=0,
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, 4, 4, 1)).astype("float32"), rng.integers(0, 3, n).astype("int32")


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch=4):
        super().__init__()
        self.x, self.y, self.batch = x, y, batch

    def __len__(self):
        return len(self.x) // self.batch

    def __getitem__(self, i):
        rows = slice(i * self.batch, (i + 1) * self.batch)
        return self.x[rows], self.y[rows]


def unchanged(model, before):
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_validation_labels_out_of_range_fail_before_the_first_epoch():
    model, (x, y) = regularized(), data()
    before = model.get_weights()
    bad = y.copy()
    bad[5] = 3
    with pytest.raises(ValueError, match=r"validation_data\[1\].*\[0, 3\).*=3"):
        model.fit(x, y, validation_data=(x, bad), epochs=1, verbose=0)
    unchanged(model, before)


def test_non_finite_validation_inputs_fail_before_the_first_epoch():
    model, (x, y) = regularized(), data()
    bad = x.copy()
    bad[2, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"`validation_data\[0\]` must be finite"):
        model.fit(x, y, validation_data=(bad, y), epochs=1, verbose=0)


def test_a_bad_pydataset_batch_is_named_by_its_index():
    model, (x, y) = regularized(), data()
    x[9, 0, 0, 0] = np.inf  # row 9: batch 2 of 4 rows
    with pytest.raises(ValueError, match=r"Batch 2 \(counting from 0\).*`x` must be finite"):
        model.fit(Batches(x, y), epochs=1, verbose=0)


def test_a_pydataset_batch_with_a_bad_label_is_named():
    model, (x, y) = regularized(), data()
    y[1] = -1
    with pytest.raises(ValueError, match=r"Batch 0 \(counting from 0\).*\[0, 3\)"):
        model.fit(Batches(x, y), epochs=1, verbose=0)


def test_a_bad_tf_data_batch_is_named_by_its_index():
    tf = pytest.importorskip("tensorflow")
    model, (x, y) = regularized(), data()
    x[9, 0, 0, 0] = np.nan
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with pytest.raises(ValueError, match=r"Batch 2 \(counting from 0\) of the dataset is bad"):
        model.fit(dataset, epochs=1, verbose=0)


def test_good_datasets_train_as_before():
    model, (x, y) = regularized(), data()
    history = model.fit(Batches(x, y), epochs=1, verbose=0)
    assert np.isfinite(history.history["neuron_sensitivity"][0])


def test_an_empty_batch_is_named():
    with pytest.raises(ValueError, match=r"`x` must hold at least one example"):
        regularized().fit(np.zeros((0, 4, 4, 1), "float32"), np.zeros(0, "int32"), verbose=0)


@pytest.mark.parametrize(
    "reg",
    [ki.regularizers.NeuronSensitivity(1.0, 0.1, num_perturbations=2), ki.regularizers.JacobianNorm(1.0)],
    ids=["nsloss", "jacobian"],
)
def test_integer_inputs_name_the_problem_and_the_fix(reg):
    x, y = data()
    with pytest.raises(TypeError, match=r"floating-point inputs.*x / 255.0.*Rescaling.*Received: x.dtype=uint8"):
        regularized(reg=reg).fit((x * 255).astype("uint8"), y, verbose=0)


def test_inputs_of_another_shape_name_the_model_input():
    with pytest.raises(ValueError, match=r"shaped like the model's input, \(batch, 4, 4, 1\)"):
        regularized().fit(np.zeros((6, 5, 4, 1), "float32"), np.zeros(6, "int32"), verbose=0)


def test_a_regression_model_is_told_what_is_supported():
    base = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"classifiers.*classes >= 2.*single output unit.*Dense\(2\)"):
        ki.RegularizedModel(base, [ki.regularizers.JacobianNorm(1.0)])
