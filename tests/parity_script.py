"""Computes attributions and metrics on the active backend and saves them; run by
tests/test_backend_parity.py once per backend, each in its own process."""

import functools
import sys

import numpy as np

from keras_interp import attribution
from keras_interp import metrics
from tests.conftest import small_cnn
from tests.conftest import to_numpy


def main(path):
    model = small_cnn(seed=0, classes=4)
    x = np.random.default_rng(0).uniform(size=(6, 10, 10, 2)).astype("float32")
    target = np.array([0, 1, 2, 3, 0, 1])
    out = {
        "logits": to_numpy(model(x)),
        "vanilla_gradient": attribution.vanilla_gradient(model, x, target),
        "input_x_gradient": attribution.input_x_gradient(model, x),
        "integrated_gradients": attribution.integrated_gradients(
            model, x, target, steps=32, baseline=0.5, batch_size=50
        ),
        "smooth_zero_noise": attribution.smooth(
            attribution.integrated_gradients, num_samples=2, noise=0.0
        )(model, x, target, steps=8),
    }
    ig = out["integrated_gradients"]
    vanilla = functools.partial(attribution.vanilla_gradient)
    options = dict(seed=3, verbose=0)
    out.update(
        {
            "max_sensitivity": metrics.max_sensitivity(model, x, target, vanilla, num_samples=4, **options),
            "avg_sensitivity": metrics.avg_sensitivity(model, x, target, vanilla, num_samples=4, **options),
            "local_lipschitz_estimate": metrics.local_lipschitz_estimate(
                model, x, target, vanilla, num_samples=4, **options
            ),
            "faithfulness_correlation": metrics.faithfulness_correlation(
                model, x, target, ig, num_runs=10, subset_size=20, **options
            ),
            "faithfulness_estimate": metrics.faithfulness_estimate(
                model, x, target, ig, features_in_step=5, verbose=0
            ),
            "complexity": metrics.complexity(ig),
            "sparseness": metrics.sparseness(ig),
            "rank_correlation": metrics.rank_correlation(ig, out["vanilla_gradient"]),
            "ssim": metrics.ssim(ig[..., 0], out["vanilla_gradient"][..., 0]),
        }
    )
    np.savez(path, **{k: to_numpy(v) for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
