"""The first job of a new install: train, test and explain on mnist5k."""

import json
import os
import time

import keras
import numpy as np

from keras_interp import attribution
from keras_interp import data
from keras_interp import models
from keras_interp import report


def demo(out_dir="demo_out", *, epochs=5, num_images=8, seed=0, verbose=1):
    """Trains `small_cnn` on mnist5k and draws IG and GradientSHAP maps.

    The first job of a new install, offline: train the ATEX paper's small
    CNN on the 4,000 training digits of `data.load("mnist5k")`, report test
    accuracy on the other 1,000, explain the first `num_images` test digits
    (their predicted class) with Integrated Gradients (50 steps, black
    baseline) and GradientSHAP (50 samples, black baseline, noise 0.1), and
    save the maps as `out_dir/attributions.png` and the figures as
    `out_dir/results.json`.

    Args:
        out_dir: output folder, created if missing. Defaults to `"demo_out"`.
        epochs: training epochs. Defaults to 5.
        num_images: test digits to explain. Defaults to 8.
        seed: seed of the data split, initialisation and attributions.
        verbose: 0 silent, 1 progress bars and one line per stage.

    Returns:
        A dict with the test accuracy, timings and the figure's path.
    """
    start = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    keras.utils.set_random_seed(seed)
    os.makedirs(out_dir, exist_ok=True)

    (x_train, y_train), (x_test, y_test) = data.load("mnist5k", seed=seed)
    say(f"[data] mnist5k: {len(x_train)} train, {len(x_test)} test digits")

    model = models.small_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    t = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=verbose)
    train_s = time.perf_counter() - t
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    say(f"[train] small_cnn, {epochs} epochs in {train_s:.1f}s: test accuracy {accuracy:.4f}")

    x = x_test[:num_images]
    t = time.perf_counter()
    ig = attribution.integrated_gradients(model, x, steps=50)
    shap = attribution.gradient_shap(model, x, num_samples=50, stdev=0.1, seed=seed)
    explain_s = time.perf_counter() - t
    predicted = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    figure = report.attribution_figure(
        x,
        {
            "Integrated Gradients": keras.ops.convert_to_numpy(ig),
            "GradientSHAP": keras.ops.convert_to_numpy(shap),
        },
        os.path.join(out_dir, "attributions.png"),
        labels=[f"label {t}, pred {p}" for t, p in zip(y_test[:num_images], predicted)],
    )
    say(f"[explain] IG and GradientSHAP for {num_images} digits in {explain_s:.1f}s -> {figure}")

    results = {
        "backend": keras.config.backend(),
        "dataset": "mnist5k",
        "model": "small_cnn",
        "epochs": epochs,
        "test_accuracy": float(accuracy),
        "train_seconds": round(train_s, 2),
        "explain_seconds": round(explain_s, 2),
        "figure": figure,
        "total_seconds": round(time.perf_counter() - start, 2),
    }
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    say(f"[done] total {results['total_seconds']:.1f}s; results in {out_dir}/results.json")
    return results
