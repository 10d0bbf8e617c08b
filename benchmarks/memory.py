"""Peak memory and time of an NsLoss step, in one pass or in chunks.

    KERAS_BACKEND=tensorflow python benchmarks/memory.py
    KERAS_BACKEND=jax python benchmarks/memory.py --size 160 --chunk-sizes none,1

On `preresnet10` (width 64, 10 classes; `--model vgg19` for VGG19) at 224x224x3 random inputs with a
batch of B images (8 by default) and N = 5 perturbations, one training
step (`train_on_batch`, SGD) of:

- standard: cross-entropy on the B images;
- nsloss: `RegularizedModel` + `NeuronSensitivity`, the batch and its N
  copies as one pass of (N+1)B rows (`chunk_size=None`);
- nsloss chunk k: the same regulariser with `chunk_size=k`, the clean
  batch alone, then the copies k at a time, each chunk rematerialised.

Each configuration runs in a fresh process, so its peak resident memory
(`ru_maxrss`) is its own. The figure is that peak minus the resident
memory just before the first step (framework, model and data already
loaded): what the steps themselves allocate, their compilation included.
On a GPU the figure is the device's: its allocator's peak minus the
bytes in use before the first step.
The step time is the median of `--steps` steps after one warm-up step.
Ratios to the standard step and to the one-pass NsLoss step are printed
side by side. Random inputs: this measures cost only.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_bytes():
    """(bytes in use, peak bytes in use) on the backend's GPU, or None on a CPU.

    A benchmark lives outside the package, so it may ask the framework.
    Each configuration runs in a fresh process, so the peak is its own.
    """
    import keras

    backend = keras.config.backend()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
    elif backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "gpu":
            stats = device.memory_stats()
            return stats["bytes_in_use"], stats["peak_bytes_in_use"]
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            info = tf.config.experimental.get_memory_info("GPU:0")
            return info["current"], info["peak"]
    return None


def one(config):
    """Runs one configuration in this process and returns its figures."""
    import keras

    import keras_interp as ki

    size, b, n, chunk = config["size"], config["batch_size"], config["n"], config["chunk"]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (b, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, b).astype("int32")
    keras.utils.set_random_seed(0)
    if config.get("model", "preresnet10") == "vgg19":
        model = ki.models.vgg19((size, size, 3), 10)
    else:
        model = ki.models.preresnet10((size, size, 3), 10, width=config["width"])
    if config["kind"] == "nsloss":
        reg = ki.regularizers.NeuronSensitivity(1.0, 0.05, num_perturbations=n, chunk_size=chunk)
        model = ki.RegularizedModel(model, [reg], seed=0)
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before, gpu_before = resident_mib(), gpu_bytes()
    model.train_on_batch(x, y)
    times = []
    for _ in range(config["steps"]):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    if gpu_before is not None:
        # On a GPU the steps' memory is the device's, not the process's.
        return {
            "peak_mib": (gpu_bytes()[1] - gpu_before[0]) / 2**20,
            "seconds": float(np.median(times)),
        }
    return {"peak_mib": peak_mib() - before, "seconds": float(np.median(times))}


def run(config):
    proc = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(config)],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    if proc.returncode != 0:
        sys.exit(f"{config} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--perturbations", type=int, default=5)
    parser.add_argument("--chunk-sizes", default="none,1,2", help="comma-separated; none = one pass")
    parser.add_argument("--width", type=int, default=64, help="preresnet10 width")
    parser.add_argument("--model", default="preresnet10", choices=["preresnet10", "vgg19"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return

    import keras

    b, n = args.batch_size, args.perturbations
    base = dict(size=args.size, batch_size=b, n=n, width=args.width, steps=args.steps, model=args.model)
    print(
        f"backend: {keras.config.backend()}, {args.model} (preresnet10 width {args.width}) on "
        f"{args.size}x{args.size}x3, B={b}, N={n}; peak memory of the steps (the GPU's "
        f"where there is one, else resident; fresh process each), median of {args.steps} "
        "steps after 1 warm-up",
        flush=True,
    )
    results = {"standard": run(dict(base, kind="standard", chunk=None))}
    for token in args.chunk_sizes.split(","):
        chunk = None if token.strip().lower() == "none" else int(token)
        name = "nsloss" if chunk is None else f"nsloss chunk {chunk}"
        results[name] = run(dict(base, kind="nsloss", chunk=chunk))
        print(f"  {name}: {results[name]['peak_mib']:.0f} MiB, {results[name]['seconds']:.2f} s/step", flush=True)
    std = results["standard"]
    one_pass = results.get("nsloss")
    print("configuration | peak MiB | s/step | memory / standard | time / standard"
          + (" | memory / one pass | time / one pass" if one_pass else ""))
    for name, r in results.items():
        cells = [name, f"{r['peak_mib']:.0f}", f"{r['seconds']:.2f}",
                 f"{r['peak_mib'] / std['peak_mib']:.2f}", f"{r['seconds'] / std['seconds']:.2f}"]
        if one_pass:
            cells += [f"{r['peak_mib'] / one_pass['peak_mib']:.2f}", f"{r['seconds'] / one_pass['seconds']:.2f}"]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
