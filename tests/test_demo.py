"""The demo job end to end (one short epoch), the CLI and the figure."""

import json
import subprocess
import sys

import numpy as np
import pytest

from keras_interp import experiments
from keras_interp import models
from keras_interp import report


def test_small_cnn_returns_logits_and_rejects_unknown_activation():
    model = models.small_cnn()
    out = model(np.zeros((2, 28, 28, 1), "float32"))
    assert tuple(out.shape) == (2, 10)
    assert [type(l).__name__ for l in model.layers].count("Conv2D") == 2
    assert [type(l).__name__ for l in model.layers].count("Dense") == 2
    with pytest.raises(ValueError, match="Received: activation='tanh'"):
        models.small_cnn(activation="tanh")


@pytest.mark.backends_in_ci
def test_demo_trains_and_writes_the_figure(tmp_path):
    results = experiments.demo(str(tmp_path), epochs=1, num_images=3, verbose=0)
    # One epoch on 4,000 digits is far above chance (10%).
    assert results["test_accuracy"] > 0.8
    assert json.loads((tmp_path / "results.json").read_text())["epochs"] == 1
    png = (tmp_path / "attributions.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_figure_has_a_row_per_image_and_a_column_per_method(tmp_path):
    from matplotlib.image import imread

    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1))
    path = report.attribution_figure(x, {"a": x, "b": -x, "c": x}, tmp_path / "f.png", dpi=50)
    height, width = imread(path).shape[:2]
    assert width > 1.5 * height  # 4 columns, 2 rows


def test_cli_help_lists_demo():
    out = subprocess.run(
        [sys.executable, "-m", "keras_interp", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "demo" in out.stdout
