"""What each of the NsLoss paper's seven metrics costs at paper scale.

    KERAS_BACKEND=jax python benchmarks/metrics_scale.py
    KERAS_BACKEND=torch python benchmarks/metrics_scale.py --model vgg19 --images 16

On `preresnet10` (width 64) or `vgg19` with random weights and B random
224x224x3 images (`--size`, `--images`), `metrics.evaluate` with
Integrated Gradients (`--ig-steps` steps) is run one metric at a time, at
the paper's sample counts (Quantus 0.6.0's defaults: 200 noisy copies for
the sensitivity metrics and the local Lipschitz estimate, 100 runs of a
224-feature subset for faithfulness correlation) except
`faithfulness_estimate`, whose Quantus default of one input value per step
means one forward pass per value (150,528 per 224x224x3 image);
`--features-in-step` sets it (default 224x3, one 224-value row of pixels
per step, 224 steps per image). Each metric's time is printed beside the
time of one IG explanation of the same B images, as
`name: ratio (metric seconds / IG seconds)`, with the model rows it ran.
Each figure is one timed run after an identical warm-up run (which
traces); a metric that takes attributions includes the one IG explanation
of the batch that `evaluate` computes for it. The IG time is the best of
three. Random weights and inputs:
this measures cost only, not the scores.

`--smoke` runs a tiny configuration (32x32, 2 images, few samples) to
check that the script works; its figures mean nothing.
"""

import argparse
import functools
import time

import keras
import numpy as np

import keras_interp as ki


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="preresnet10", choices=["preresnet10", "vgg19"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--ig-steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=200, help="sensitivity and Lipschitz samples")
    parser.add_argument("--runs", type=int, default=100, help="faithfulness-correlation runs")
    parser.add_argument("--features-in-step", type=int, default=224 * 3)
    parser.add_argument("--batch-size", type=int, default=256, help="rows per model call")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.images, args.ig_steps, args.samples, args.runs = 32, 2, 4, 4, 3
        args.features_in_step = 32 * 3

    shape = (args.size, args.size, 3)
    keras.utils.set_random_seed(0)
    if args.model == "vgg19":
        model = ki.models.vgg19(shape, 10)
    else:
        model = ki.models.preresnet10(shape, 10, width=16 if args.smoke else 64)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (args.images,) + shape).astype("float32")
    y = rng.integers(0, 10, args.images)
    explain = functools.partial(
        ki.attribution.integrated_gradients, steps=args.ig_steps, batch_size=args.batch_size
    )
    values = int(np.prod(shape))
    options = {
        "max_sensitivity": {"num_samples": args.samples},
        "avg_sensitivity": {"num_samples": args.samples},
        "local_lipschitz_estimate": {"num_samples": args.samples},
        "faithfulness_correlation": {"num_runs": args.runs},
        "faithfulness_estimate": {"features_in_step": args.features_in_step},
        "complexity": {},
        "sparseness": {},
    }
    # Model rows per image: the explained metrics explain every noisy copy
    # (ig_steps rows each); faithfulness runs the model on every copy.
    rows = {
        "max_sensitivity": args.samples * args.ig_steps,
        "avg_sensitivity": args.samples * args.ig_steps,
        "local_lipschitz_estimate": args.samples * args.ig_steps,
        "faithfulness_correlation": args.runs,
        "faithfulness_estimate": -(-values // args.features_in_step),
        "complexity": 0,
        "sparseness": 0,
    }
    print(
        f"backend: {keras.config.backend()}, {args.model} on {args.size}x{args.size}x3, "
        f"{args.images} images, IG {args.ig_steps} steps, {args.samples} samples, "
        f"{args.runs} runs, features_in_step {args.features_in_step}, "
        f"{args.batch_size} rows per call; one timed run after an identical one",
        flush=True,
    )
    explain(model, x, y)
    ig_seconds = min(
        timed(lambda: keras.ops.convert_to_numpy(explain(model, x, y)))[0] for _ in range(3)
    )
    print(f"  integrated_gradients: {ig_seconds:.2f} s for {args.images} images", flush=True)
    table = []
    for name, kwargs in options.items():

        def run(kwargs=kwargs, name=name):
            return ki.metrics.evaluate(
                model, x, y, explain, name, batch_size=args.batch_size, seed=0, verbose=0,
                **{name: kwargs},
            )

        run()
        seconds, result = timed(run)
        table.append((name, seconds, rows[name], result[name]["nan_count"]))
        print(
            f"{name}: {seconds / ig_seconds:.2f} ({name} {seconds:.2f} s / IG {ig_seconds:.2f} s; "
            f"{rows[name]} model rows per image)",
            flush=True,
        )
    print("metric | seconds | / IG of the batch | model rows per image | NaN scores")
    for name, seconds, per_image, nans in table:
        print(f"{name} | {seconds:.2f} | {seconds / ig_seconds:.2f} | {per_image} | {nans}")


if __name__ == "__main__":
    main()
