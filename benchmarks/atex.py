"""Training-batch cost of ATEX against the Naive baseline, side by side.

    KERAS_BACKEND=tensorflow python benchmarks/atex.py

On MNIST digits (mnist5k) and the ATEX paper's small CNN with softplus
activations, the time of one training batch of B seed instances for:

- standard: a cross-entropy step on the B instances;
- floor: a cross-entropy step on B (1 + n1 n2) rows, the rows an ATEX
  step trains on: ATEX cannot be cheaper;
- ATEX: drawing the batch's samples (`ATEXDataset[i]`: the teacher's
  forward pass over its x' points and the projections) plus the
  distillation step on the B (1 + n1 n2) rows (the sampling alone is
  shown as atex_sampling);
- ATEX directions: the SmoothGrad directions of B instances, which
  `ATEXDataset` computes once per instance, not per step (shown apart, and
  added once to the ATEX batch for the "first epoch" ratio);
- Naive: `ExplanationConsistency` (paper 2, Eq. 2) with the same number of
  neighbours per instance, n1 n2, which needs second-order gradients.

Figures are seconds per batch, the best of `--repeats` timed passes of
`--steps` batches after a warm-up pass. The paper reports 1.2 s (ATEX)
vs 6.1 s (Naive) per batch, about 5x.
"""

import argparse
import time

import keras
import numpy as np

import keras_interp as ki
from keras_interp import atex


def best_per_batch(run, steps, repeats):
    run(0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            run(i)
        times.append(time.perf_counter() - start)
    return min(times) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-along", type=int, default=2)
    parser.add_argument("--num-across", type=int, default=2)
    parser.add_argument("--smoothgrad-samples", type=int, default=50)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    b, n1, n2 = args.batch_size, args.num_along, args.num_across

    keras.utils.set_random_seed(0)
    (x, y), _ = ki.data.load("mnist5k")
    x, y = x[: b * args.steps], y[: b * args.steps]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    teacher = ki.models.small_cnn(activation="softplus")

    standard = ki.models.small_cnn(activation="softplus")
    standard.compile(keras.optimizers.SGD(0.01), loss)

    def standard_step(i):
        standard.train_on_batch(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b])

    # A first build on a few instances traces SmoothGrad and the teacher,
    # so the timed build measures the computation only.
    atex.ATEXDataset(teacher, x[:b], batch_size=b, smoothgrad_samples=args.smoothgrad_samples, seed=0, verbose=0)
    start = time.perf_counter()
    data = atex.ATEXDataset(
        teacher, x, batch_size=b, num_along=n1, num_across=n2,
        smoothgrad_samples=args.smoothgrad_samples, shuffle=False, seed=0, verbose=0,
    )
    directions = (time.perf_counter() - start) / args.steps
    student = atex.student_of(teacher)
    student.compile(keras.optimizers.SGD(0.01), atex.Distillation())

    def atex_step(i):
        student.train_on_batch(*data[i])

    def atex_sampling(i):
        data[i]

    rows = b * (1 + n1 * n2)
    floor = ki.models.small_cnn(activation="softplus")
    floor.compile(keras.optimizers.SGD(0.01), loss)
    x_floor = np.concatenate([x] * (1 + n1 * n2))
    y_floor = np.concatenate([y] * (1 + n1 * n2))

    def floor_step(i):
        floor.train_on_batch(x_floor[i * rows : (i + 1) * rows], y_floor[i * rows : (i + 1) * rows])

    naive = ki.RegularizedModel(
        ki.models.small_cnn(activation="softplus"),
        [ki.regularizers.ExplanationConsistency(1.0, epsilon=0.04, num_neighbors=n1 * n2)],
        seed=0,
    )
    naive.compile(keras.optimizers.SGD(0.01), loss)

    def naive_step(i):
        naive.train_on_batch(x[i * b : (i + 1) * b], y[i * b : (i + 1) * b])

    results = {
        "standard": best_per_batch(standard_step, args.steps, args.repeats),
        "floor": best_per_batch(floor_step, args.steps, args.repeats),
        "atex": best_per_batch(atex_step, args.steps, args.repeats),
        "atex_sampling": best_per_batch(atex_sampling, args.steps, args.repeats),
        "atex_directions": directions,
        "naive": best_per_batch(naive_step, args.steps, args.repeats),
    }
    print(
        f"backend: {keras.config.backend()}, small_cnn (softplus) on 28x28x1, "
        f"B={b} seed instances, n1={n1}, n2={n2} ({n1 * n2} neighbours each), "
        f"SmoothGrad {args.smoothgrad_samples} samples"
    )
    for name, seconds in results.items():
        print(f"  {name:16s} {seconds * 1e3:8.1f} ms/batch")
    std, ours, naive_s = results["standard"], results["atex"], results["naive"]
    first = ours + results["atex_directions"]
    print(f"atex: {ours / std:.2f} (ATEX batch / standard batch)")
    print(
        f"atex_vs_floor: {ours / results['floor']:.2f} (ATEX batch / standard step on "
        f"its B(1 + n1 n2) = {rows} rows)"
    )
    print(f"naive: {naive_s / std:.2f} (Naive batch / standard batch)")
    print(f"naive_vs_atex: {naive_s / ours:.2f} (Naive batch / ATEX batch)")
    print(
        f"naive_vs_atex_one_epoch: {naive_s / first:.2f} (Naive batch / ATEX batch "
        "with its instances' directions, i.e. a one-epoch run)"
    )


if __name__ == "__main__":
    main()
