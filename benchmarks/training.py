"""Training-step cost of each regulariser, side by side in one run.

    KERAS_BACKEND=tensorflow python benchmarks/training.py

On MNIST digits (mnist5k) and the ATEX small CNN, one training step at
batch B for: a standard step; NsLoss (N perturbations) as
`RegularizedModel` runs it (one (N+1)B forward pass sharing the clean rows
with the cross-entropy); a naive NsLoss running the clean pass and the N
perturbed passes one by one; Jacobian regularisation (1 projection); PGD-7
adversarial training. Each is given as a ratio to the standard step, and
the two NsLoss variants also against their floor: a standard step at batch
(N+1)B, which does the same forward and backward work. Figures are per
step, from the best of `--repeats` timed epochs of `--steps` steps after a
warm-up epoch.
"""

import argparse
import time

import keras
import numpy as np

import keras_interp as ki
from keras_interp import regularizers


class NaiveNeuronSensitivity(regularizers.Regularizer):
    """NsLoss with the clean and N perturbed passes run one by one.

    The way a per-pass hook implementation computes it (and what
    `RegularizedModel` avoids): N + 1 separate forward passes through the
    hooked sub-model, in a Python loop, in `compute_loss`.
    """

    name = "neuron_sensitivity"

    def __init__(self, probe, weight, epsilon, num_perturbations):
        self.probe = probe
        self.weight = weight
        self.epsilon = epsilon
        self.num_perturbations = num_perturbations

    def __call__(self, batch):
        x = batch.x
        axes = tuple(range(1, len(x.shape)))
        clean = self.probe(x, training=batch.training)
        perturbed = [[] for _ in clean]
        for _ in range(self.num_perturbations):
            u = keras.random.normal(keras.ops.shape(x), dtype=x.dtype, seed=batch.seed)
            u = u / keras.ops.sqrt(keras.ops.sum(u**2, axis=axes, keepdims=True))
            for i, a in enumerate(self.probe(x + self.epsilon * u, training=batch.training)):
                perturbed[i].append(a)
        perturbed = [keras.ops.concatenate(p, axis=0) for p in perturbed]
        return regularizers.neuron_sensitivity_loss(clean, perturbed, self.epsilon)

    def get_config(self):
        return {}


def step_time(model, x, y, batch_size, steps, repeats):
    """Seconds per training step: best of `repeats` epochs of `steps` steps."""
    rows = batch_size * steps
    x, y = x[:rows], y[:rows]
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - start)
    return min(times) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-perturbations", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    b, n = args.batch_size, args.num_perturbations

    keras.utils.set_random_seed(0)
    (x, y), _ = ki.data.load("mnist5k")
    needed = (n + 1) * b * args.steps
    reps = -(-needed // len(x))
    x, y = np.concatenate([x] * reps), np.concatenate([y] * reps)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def compiled(model):
        model.compile(keras.optimizers.SGD(0.01), loss)
        return model

    def wrapped(*regs):
        return compiled(ki.RegularizedModel(ki.models.small_cnn(), list(regs), seed=0))

    def naive():
        base = ki.models.small_cnn()
        hooked = regularizers.NeuronSensitivity(1.0, 0.5).hooked_layers(base)
        probe = keras.Model(base.inputs[0], [layer.output for layer in hooked])
        reg = NaiveNeuronSensitivity(probe, 1.0, 0.5, n)
        return compiled(ki.RegularizedModel(base, [reg], seed=0))

    def timed(model, batch_size=b):
        return step_time(model, x, y, batch_size, args.steps, args.repeats)

    results = {
        "standard": timed(compiled(ki.models.small_cnn())),
        "floor": timed(compiled(ki.models.small_cnn()), (n + 1) * b),
        "nsloss": timed(wrapped(regularizers.NeuronSensitivity(1.0, 0.5, n))),
        "nsloss_naive": timed(naive()),
        "jacobian": timed(wrapped(regularizers.JacobianNorm(0.1))),
        "pgd": timed(wrapped(regularizers.AdversarialTraining(0.1, steps=7, clip=(0, 1)))),
    }

    print(f"backend: {keras.config.backend()}, small_cnn on 28x28x1, B={b}, N={n}")
    for name, seconds in results.items():
        print(f"  {name:13s} {seconds * 1e3:8.1f} ms/step")
    std, floor = results["standard"], results["floor"]
    print(f"floor: {floor / std:.2f} (standard step at (N+1)B={(n + 1) * b} / standard step at B)")
    for name in ("nsloss", "nsloss_naive", "jacobian", "pgd"):
        print(f"{name}: {results[name] / std:.2f} ({name} step / standard step)")
    for name in ("nsloss", "nsloss_naive"):
        print(f"{name} vs floor: {results[name] / floor:.2f} ({name} step / standard step at (N+1)B)")


if __name__ == "__main__":
    main()
