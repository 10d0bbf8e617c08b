"""Explanation-metric speed: keras_interp against Quantus 0.6.0, side by side in one run.

    KERAS_BACKEND=tensorflow python benchmarks/metrics.py

On 64 MNIST test digits (mnist5k) and the ATEX small CNN (one epoch of
training, so the scores mean something), each of the NsLoss paper's seven
metrics at Quantus' defaults, computed by keras_interp and by Quantus run
as a user runs it: the Keras model itself (Quantus' `TensorFlowModel`
wrapper, one `model.predict` per perturbation), `x` channels last,
`a_batch` as (N, H, W). Both get the same Integrated Gradients maps
(ours, batched, precomputed); the sensitivity metrics, which re-explain
every noisy copy, get the same `explain` function (ours, batched: IG, and
vanilla gradients, where the metric machinery rather than the
explanations dominates). Also: our `ssim` against a loop of skimage's
`structural_similarity` over 1,000 pairs of gradient maps.

Fast figures are the best of `--repeats` runs after a warm-up run; slow
ones (a run of tens of seconds or more: Quantus' faithfulness metrics and
both sides of the sensitivity metrics) the best of `--slow-repeats`
after a warm-up on all digits with a few samples (or runs, or steps),
which calls the same functions on the same shapes. Quantus runs on the TensorFlow backend only; on JAX or
PyTorch only our side is timed.
"""

import argparse
import functools
import time
import warnings

import keras
import numpy as np

import keras_interp as ki
from keras_interp import metrics


def best_time(fn, repeats, warmup=None):
    """(best seconds of `repeats` calls of `fn`, its last result), after a warm-up."""
    (warmup or fn)()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="IG steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1)
    parser.add_argument(
        "--sensitivity-explain",
        choices=["integrated_gradients", "vanilla_gradient", "both", "none"],
        default="both",
    )
    parser.add_argument("--ssim-pairs", type=int, default=1000)
    args = parser.parse_args()
    backend = keras.config.backend()
    with_quantus = backend == "tensorflow"
    if with_quantus:
        import quantus

    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = ki.data.load("mnist5k")
    model = ki.models.small_cnn()
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    x, y = x_test[: args.images], y_test[: args.images].astype("int64")
    to_np = keras.ops.convert_to_numpy
    ig = functools.partial(ki.attribution.integrated_gradients, steps=args.steps)
    a = to_np(ig(model, x, y))
    a_hw = a[..., 0]  # Quantus' layout for maps of a one-channel image

    def quantus_call(metric, n=None, **kwargs):
        n = slice(None) if n is None else n
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(
                metric(model=model, x_batch=x[n], y_batch=y[n], a_batch=a_hw[n].copy(), **kwargs),
                dtype="float64",
            )

    quiet = {"disable_warnings": True, "display_progressbar": False}
    rows = []  # (name, ours (s), ours scores, quantus (s) or None, quantus scores)

    def bench(name, ours, quantus_fn=None, ours_warmup=None, quantus_warmup=None, slow=False):
        repeats = args.slow_repeats if slow else args.repeats
        t_ours, s_ours = best_time(ours, args.repeats if ours_warmup is None else repeats, ours_warmup)
        t_q, s_q = (None, None)
        if with_quantus and quantus_fn:
            t_q, s_q = best_time(quantus_fn, repeats, quantus_warmup)
        rows.append((name, t_ours, s_ours, t_q, s_q))
        print(f"  timed {name}", flush=True)

    print(f"backend: {backend}; {len(x)} MNIST digits, IG {args.steps} steps", flush=True)

    # Complexity: a_batch only.
    for name, cls in [("complexity", "Complexity"), ("sparseness", "Sparseness")]:
        fn = getattr(metrics, name)
        bench(
            name,
            functools.partial(fn, a),
            with_quantus and (lambda cls=cls: quantus_call(getattr(quantus, cls)(**quiet))),
        )

    # Faithfulness: the model scores every perturbed copy.
    bench(
        "faithfulness_estimate",
        lambda: metrics.faithfulness_estimate(model, x, y, a, verbose=0),
        with_quantus and (lambda: quantus_call(quantus.FaithfulnessEstimate(**quiet))),
        quantus_warmup=with_quantus
        and (lambda: quantus_call(quantus.FaithfulnessEstimate(features_in_step=392, **quiet))),
        slow=True,
    )
    bench(
        "faithfulness_correlation",
        lambda: metrics.faithfulness_correlation(model, x, y, a, seed=0, verbose=0),
        with_quantus
        and (lambda: quantus_call(quantus.FaithfulnessCorrelation(return_aggregate=False, **quiet))),
        quantus_warmup=with_quantus
        and (
            lambda: quantus_call(
                quantus.FaithfulnessCorrelation(nr_runs=2, return_aggregate=False, **quiet)
            )
        ),
        slow=True,
    )

    # Sensitivity: both sides call the same explain function on every noisy copy.
    # The warm-up: every digit, few samples, so that it sees the shapes the
    # timed run sees (ours explains 256 rows at a time, Quantus 64).
    warm_samples = max(2, -(-256 // len(x)))
    explainers = {
        "integrated_gradients": ig,
        "vanilla_gradient": ki.attribution.vanilla_gradient,
    }
    chosen = {
        "both": list(explainers),
        "none": [],
    }.get(args.sensitivity_explain, [args.sensitivity_explain])
    for explain_name in chosen:
        explain = explainers[explain_name]

        def quantus_explain(model, inputs, targets, explain=explain, **kwargs):
            return to_np(explain(model, inputs, targets))

        if explain_name == "integrated_gradients":
            a_sens = a_hw
        else:
            a_sens = to_np(explain(model, x, y))[..., 0]
        for name, cls in [
            ("max_sensitivity", "MaxSensitivity"),
            ("avg_sensitivity", "AvgSensitivity"),
            ("local_lipschitz_estimate", "LocalLipschitzEstimate"),
        ]:
            fn = getattr(metrics, name)

            def quantus_run(samples=200, cls=cls, a_sens=a_sens, qe=quantus_explain):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    metric = getattr(quantus, cls)(nr_samples=samples, **quiet)
                    return np.asarray(
                        metric(model=model, x_batch=x, y_batch=y, a_batch=a_sens.copy(), explain_func=qe),
                        dtype="float64",
                    )

            bench(
                f"{name} ({explain_name})",
                lambda fn=fn, explain=explain: fn(model, x, y, explain, seed=0, verbose=0),
                with_quantus and quantus_run,
                ours_warmup=lambda fn=fn, explain=explain: fn(
                    model, x, y, explain, num_samples=warm_samples, seed=0, verbose=0
                ),
                quantus_warmup=with_quantus and (lambda q=quantus_run: q(2)),
                slow=True,
            )

    # SSIM: gradient maps of digits against those of the digits plus noise.
    from skimage.metrics import structural_similarity

    n = min(args.ssim_pairs, len(x_test))
    reps = -(-args.ssim_pairs // n)
    digits = np.concatenate([x_test[:n]] * reps)[: args.ssim_pairs]
    labels = np.concatenate([y_test[:n]] * reps)[: args.ssim_pairs]
    noisy = digits + np.random.default_rng(0).normal(0, 0.05, digits.shape).astype("float32")
    m1 = to_np(ki.attribution.vanilla_gradient(model, digits, labels, batch_size=1000))[..., 0]
    m2 = to_np(ki.attribution.vanilla_gradient(model, noisy, labels, batch_size=1000))[..., 0]
    joint = np.maximum(m1.max((1, 2)), m2.max((1, 2))) - np.minimum(m1.min((1, 2)), m2.min((1, 2)))

    def skimage_loop():
        return np.array(
            [structural_similarity(p, q, data_range=r) for p, q, r in zip(m1, m2, joint)]
        )

    t_ssim, s_ssim = best_time(lambda: metrics.ssim(m1, m2), args.repeats)
    t_sk, s_sk = best_time(skimage_loop, args.repeats)

    print()
    print(
        f"{'metric':48s} {'ours (s)':>9s} {'Quantus (s)':>12s} {'ratio':>7s}"
        f"   mean score: ours / Quantus"
    )
    for name, t_ours, s_ours, t_q, s_q in rows:
        quantus_t = f"{t_q:12.3f}" if t_q is not None else f"{'n/a':>12s}"
        ratio = f"{t_q / t_ours:6.1f}x" if t_q is not None else f"{'':7s}"
        means = f"{np.nanmean(s_ours):.4f}" + (f" / {np.nanmean(s_q):.4f}" if s_q is not None else "")
        print(f"{name:48s} {t_ours:9.3f} {quantus_t} {ratio}   {means}")
    ssim_name = f"ssim ({args.ssim_pairs} pairs; vs skimage loop)"
    print(f"{ssim_name:48s} {t_ssim:9.3f} {t_sk:12.3f} {t_sk / t_ssim:6.1f}x")
    print()
    print("ratios:")
    for name, t_ours, _, t_q, _ in rows:
        if t_q is not None:
            print(f"  {name}: {t_q / t_ours:.1f}x (Quantus {t_q:.3f} s / ours {t_ours:.3f} s)")
    print(
        f"  ssim: {t_sk / t_ssim:.1f}x (skimage loop {t_sk:.3f} s / ours {t_ssim:.3f} s;"
        f" max |difference| {np.abs(s_ssim - s_sk).max():.1e})"
    )


if __name__ == "__main__":
    main()
