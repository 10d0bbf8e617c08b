"""`fit` with a keras.distribution set on a backend whose trainer ignores it.

Run by tests/test_distributed.py as `python -m tests.distributed.unsupported`
with KERAS_BACKEND=torch (or tensorflow). Prints one JSON object: the
error's type and message, or null when fit trained.
"""

import json

import keras
import numpy as np

import keras_interp as ki
from tests.conftest import small_cnn


def main():
    # Explicit devices: keras.distribution.list_devices() fails on PyTorch.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=["cpu:0", "cpu:1"])
    )
    model = ki.RegularizedModel(small_cnn(0), [ki.regularizers.JacobianNorm(0.1)], seed=0)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.zeros((4, 10, 10, 2), "float32")
    try:
        model.fit(x, np.zeros(4, "int32"), verbose=0)
        error = None
    except ValueError as e:
        error = {"type": type(e).__name__, "message": str(e)}
    print(json.dumps({"backend": keras.config.backend(), "error": error}))


if __name__ == "__main__":
    main()
