"""Training-step cost of NsLoss and ATEX as the input resolution grows.

    KERAS_BACKEND=tensorflow python benchmarks/scale.py
    KERAS_BACKEND=jax python benchmarks/scale.py --sizes 32,64
    KERAS_BACKEND=torch python benchmarks/scale.py --models mobilenetv2,efficientnetb0 \
        --sizes 32,64,96 --perturbations 5 --batch-size 8 --no-atex

On each of `--models` (default `preresnet10`; also `vgg19`, `small_cnn`,
and keras.applications' `mobilenetv2` and `efficientnetb0` with
`weights=None`; 3 channels, 10 classes, logits) at 32x32, 64x64 and
160x160 random inputs, with the same global batch of B images at every
size (16 by default, `--batch-size`), the time of one compiled training
step (`train_on_batch`, SGD) for:

- standard: cross-entropy on the B images;
- nsloss N: `RegularizedModel` + `NeuronSensitivity` with N = 1, 3, 5
  perturbations (one (N+1)B-row forward pass, every weighted layer
  hooked). DESIGN.md §6's limit is N+1 forward-backward passes, so the
  ratio to the standard step should stay at or below N+1; that bound is
  printed beside each ratio;
- floor N: a standard step on (N+1)B rows, the same forward and backward
  work as NsLoss N without its loss (skip with `--no-floor`);
- atex: the ATEX student's distillation step on one prepared
  `ATEXDataset` batch, i.e. B seed instances plus their B n1 n2 samples
  (B (1 + n1 n2) rows, 80 by default). Only the compiled step is timed:
  drawing the batch (the teacher's pass over the x' points) is done once
  beforehand, and the teacher's SmoothGrad directions are not part of a
  step at all;
- atex directions: the one-off SmoothGrad cost (`--smoothgrad-samples`
  noisy copies) per seed instance, which `ATEXDataset` pays once when it
  is built (timed on a second build of the same B instances, after a
  first that traces; the build's one teacher pass over the B instances
  is included and negligible), shown apart and never folded into a step
  ratio.

Each step figure is the median of `--steps` timed steps on the same batch,
after two warm-up steps (the first compiles); the steps of one size are
timed interleaved, one of each per round, so load drifting on a shared
machine moves numerator and denominator alike. Ratios are printed as
`name: ratio (what / what)`, then one table per run. Nothing is trained
to convergence and the inputs are random: this measures cost only.
`--no-atex` leaves out both ATEX figures (its floor too). `--breakdown`
splits NsLoss's extra time over its floor in two: `hooks` is its
(N+1)B-row pass through the probe that outputs every hooked activation,
with a term that reads one value of each (the price of exposing the
activations), and the rest is the `|copy - clean|` arithmetic and its
gradient.
`--quick` runs a tiny configuration (32x32, width 8, N = 1, 2 steps) to
check that the script works; its figures mean nothing.
"""

import argparse
import os
import platform
import time

import keras
import numpy as np

import keras_interp as ki
from keras_interp import atex, regularizers

WARMUP = 2


def device_name():
    """The accelerator the backend trains on, else the CPU and its cores.

    A benchmark lives outside the package, so it may ask the framework.
    """
    backend, gpu = keras.config.backend(), None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            gpu = details.get("device_name", gpus[0].name)
    elif backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            gpu = device.device_kind
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    if gpu is not None:
        return f"GPU {gpu}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU {cpu}, {cores} cores, no GPU"


def median_steps(steps, rounds):
    """Seconds per call of each of `steps` (name -> callable), interleaved.

    Each is called `WARMUP` times untimed (the first compiles), then timed
    once per round, all of them in turn, for `rounds` rounds; the figure is
    the median over rounds. Interleaving makes the ratios fair on a shared
    machine whose load drifts during the run. `train_on_batch` returns
    NumPy values, so each call waits for its step to finish.
    """
    for step in steps.values():
        for _ in range(WARMUP):
            step()
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


class HooksOnly(regularizers.NeuronSensitivity):
    """NsLoss's pass without its arithmetic: the same (N+1)B-row pass through
    the probe that outputs every hooked activation, and a term that reads
    one value of each. Against the floor it prices exposing the
    activations; NsLoss against it prices the `|copy - clean|` sums."""

    def __call__(self, batch):
        total = 0.0
        for a in batch.activations:
            total = total + keras.ops.cast(keras.ops.reshape(a, (-1,))[0], "float32")
        return 0.0 * total


def builder(name, shape, width):
    """A function building a fresh 10-class logits network `name` on `shape`."""
    applications = {
        "mobilenetv2": keras.applications.MobileNetV2,
        "efficientnetb0": keras.applications.EfficientNetB0,
    }
    if name in applications:
        return lambda: applications[name](
            input_shape=shape, weights=None, classes=10, classifier_activation=None
        )
    if name == "preresnet10":
        return lambda: ki.models.preresnet10(shape, 10, width=width)
    if name == "vgg19":
        return lambda: ki.models.vgg19(shape, 10)
    if name == "small_cnn":
        return lambda: ki.models.small_cnn(shape, 10)
    raise SystemExit(f"unknown model {name!r}; expected one of {MODELS}")


MODELS = ("preresnet10", "vgg19", "small_cnn", "mobilenetv2", "efficientnetb0")


def measure(model_name, size, args, perturbations):
    """Seconds per step (and per instance for the directions) at one size."""
    b, n1, n2 = args.batch_size, args.num_along, args.num_across
    rows = b * (1 + n1 * n2) if args.atex else b
    shape = (size, size, 3)
    rng = np.random.default_rng(size)
    x = rng.uniform(0.0, 1.0, (max(rows, (max(perturbations) + 1) * b),) + shape).astype("float32")
    y = rng.integers(0, 10, len(x)).astype("int32")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    network = builder(model_name, shape, args.width)

    def compiled(model, loss=loss):
        model.compile(keras.optimizers.SGD(0.01), loss)
        return model

    def step_of(model, n_rows=b):
        return lambda: model.train_on_batch(x[:n_rows], y[:n_rows])

    keras.utils.set_random_seed(0)
    steps = {"standard": step_of(compiled(network()))}
    for n in perturbations:
        reg = regularizers.NeuronSensitivity(1.0, 0.05, num_perturbations=n)
        steps[f"nsloss_n{n}"] = step_of(compiled(ki.RegularizedModel(network(), [reg], seed=0)))
        if args.floor:
            steps[f"floor_n{n}"] = step_of(compiled(network()), (n + 1) * b)
        if args.breakdown:
            reg = HooksOnly(1.0, 0.05, num_perturbations=n)
            steps[f"hooks_n{n}"] = step_of(compiled(ki.RegularizedModel(network(), [reg], seed=0)))

    if not args.atex:
        return median_steps(steps, args.steps)
    teacher = network()
    settings = dict(
        batch_size=b, num_along=n1, num_across=n2,
        smoothgrad_samples=args.smoothgrad_samples, shuffle=False, seed=0, verbose=0,
    )
    # The first build traces SmoothGrad and the teacher; the second, on the
    # same B instances, measures the computation only.
    atex.ATEXDataset(teacher, x[:b], **settings)
    start = time.perf_counter()
    data = atex.ATEXDataset(teacher, x[:b], **settings)
    directions = (time.perf_counter() - start) / b
    # One batch drawn beforehand: the timed step is the distillation step.
    inputs, targets, weights = data[0]
    student = compiled(atex.student_of(teacher), atex.Distillation())
    steps["atex"] = lambda: student.train_on_batch(inputs, targets, sample_weight=weights)
    if args.floor:
        steps["floor_atex"] = step_of(compiled(network()), rows)

    results = median_steps(steps, args.steps)
    results["atex_directions"] = directions
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sizes", default="32,64,160", help="comma-separated input sizes")
    parser.add_argument("--perturbations", default="1,3,5", help="comma-separated N")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each (median)")
    parser.add_argument("--width", type=int, default=64, help="preresnet10 width")
    parser.add_argument("--num-along", type=int, default=2)
    parser.add_argument("--num-across", type=int, default=2)
    parser.add_argument("--smoothgrad-samples", type=int, default=50)
    parser.add_argument("--models", default="preresnet10", help=f"comma-separated, of {MODELS}")
    parser.add_argument("--no-floor", dest="floor", action="store_false")
    parser.add_argument("--no-atex", dest="atex", action="store_false")
    parser.add_argument(
        "--breakdown", action="store_true",
        help="also time NsLoss's pass without its arithmetic (hooks_nN)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.perturbations, args.steps = "32", "1", 2
        args.width, args.smoothgrad_samples = 8, 4
    models = args.models.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    perturbations = [int(n) for n in args.perturbations.split(",")]
    b, n1, n2 = args.batch_size, args.num_along, args.num_across
    rows = b * (1 + n1 * n2)

    print(
        f"backend: {keras.config.backend()}, device: {device_name()}, "
        f"models {models} (preresnet10 width {args.width}) on SxSx3, 10 classes, "
        f"B={b} at every size, N in {perturbations}"
        + (
            f", ATEX n1={n1} n2={n2} ({rows} rows per step), SmoothGrad "
            f"{args.smoothgrad_samples} samples"
            if args.atex
            else ""
        )
        + f"; median of {args.steps} interleaved steps after {WARMUP} warm-up steps",
        flush=True,
    )
    table = {}
    for model_name in models:
        for size in sizes:
            results = measure(model_name, size, args, perturbations)
            table[model_name, size] = results
            report(model_name, size, results, args, perturbations, rows)
    summarise(table, args, perturbations, rows)


def report(model_name, size, results, args, perturbations, rows):
    """Prints one size's figures and its ratios as `name: ratio (what / what)`."""
    b = args.batch_size
    at = f"{model_name}@{size}"
    std = results["standard"]
    print(f"{model_name} {size}x{size}:")
    for name, seconds in results.items():
        unit = "ms/instance, once" if name == "atex_directions" else "ms/step"
        print(f"  {name:16s} {seconds * 1e3:9.1f} {unit}")
    for n in perturbations:
        ratio = results[f"nsloss_n{n}"] / std
        print(f"nsloss_n{n}@{at}: {ratio:.2f} (NsLoss N={n} step / standard step; bound N+1 = {n + 1})")
        if args.floor:
            ratio = results[f"nsloss_n{n}"] / results[f"floor_n{n}"]
            print(
                f"nsloss_n{n}_vs_floor@{at}: {ratio:.2f} (NsLoss N={n} step / "
                f"standard step on (N+1)B = {(n + 1) * b} rows)"
            )
        if args.breakdown and args.floor:
            hooks, floor = results[f"hooks_n{n}"], results[f"floor_n{n}"]
            print(
                f"hooks_n{n}_vs_floor@{at}: {hooks / floor:.2f} (the pass exposing every "
                f"hooked activation, no NsLoss arithmetic / floor)"
            )
            print(
                f"arithmetic_n{n}@{at}: {(results[f'nsloss_n{n}'] - hooks) / floor:.2f} "
                "((NsLoss step - that pass) / floor: the |copy - clean| sums and their gradient)"
            )
    if not args.atex:
        return
    print(
        f"atex@{at}: {results['atex'] / std:.2f} (ATEX distillation step on "
        f"B(1 + n1 n2) = {rows} prepared rows / standard step on B = {b}; "
        "directions and sampling not included)"
    )
    if args.floor:
        print(
            f"atex_vs_floor@{at}: {results['atex'] / results['floor_atex']:.2f} "
            f"(ATEX step / standard step on {rows} rows)"
        )
    print(
        f"atex_directions@{at}: {results['atex_directions'] / std:.2f} "
        "(one instance's SmoothGrad direction, paid once / standard step)",
        flush=True,
    )


def summarise(table, args, perturbations, rows):
    """The run's tables: ratios to the standard step, then to the floor."""
    b = args.batch_size
    print("summary (ratios to the standard step at the same size; ms per standard step):")
    head = ["model", "size", "standard ms"] + [f"nsloss N={n} (<= {n + 1})" for n in perturbations]
    if args.atex:
        head += ["atex", "directions/instance"]
    print("  " + " | ".join(head))
    for (model_name, size), results in table.items():
        std = results["standard"]
        cells = [model_name, f"{size}x{size}", f"{std * 1e3:.1f}"]
        cells += [f"{results[f'nsloss_n{n}'] / std:.2f}" for n in perturbations]
        if args.atex:
            cells += [f"{results['atex'] / std:.2f}", f"{results['atex_directions'] / std:.2f}"]
        print("  " + " | ".join(cells))
    if not args.floor:
        return
    print("summary (ratios to the floor: a standard step on as many rows; ms per floor step):")
    head = ["model", "size"] + [f"nsloss N={n} / floor {(n + 1) * b}" for n in perturbations]
    head += [f"floor {(n + 1) * b} ms" for n in perturbations]
    if args.breakdown:
        head += [f"N={n}: hooks / floor, arithmetic / floor" for n in perturbations]
    if args.atex:
        head += [f"atex / floor {rows}"]
    print("  " + " | ".join(head))
    for (model_name, size), results in table.items():
        cells = [model_name, f"{size}x{size}"]
        cells += [f"{results[f'nsloss_n{n}'] / results[f'floor_n{n}']:.2f}" for n in perturbations]
        cells += [f"{results[f'floor_n{n}'] * 1e3:.1f}" for n in perturbations]
        if args.breakdown:
            for n in perturbations:
                floor, hooks = results[f"floor_n{n}"], results[f"hooks_n{n}"]
                cells += [f"{hooks / floor:.2f}, {(results[f'nsloss_n{n}'] - hooks) / floor:.2f}"]
        if args.atex:
            cells += [f"{results['atex'] / results['floor_atex']:.2f}"]
        print("  " + " | ".join(cells))


if __name__ == "__main__":
    main()
