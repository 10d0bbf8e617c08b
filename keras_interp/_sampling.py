"""The one sampling loop behind every attribution method and metric.

Methods that average over samples (integration steps, noisy copies, random
baselines) describe one sample of one example as a batched function of
index arrays; `sample_sum` evaluates the whole (sample, example) grid in
chunks of `batch_size` rows, so a chunk is one batched gradient call and
nothing loops per example in Python.

Randomness is drawn per sample for a fixed block of examples, in a fixed
order, so the result for a given `seed` does not depend on `batch_size`.
"""

import keras
import numpy as np

from keras_interp import _seeds

# Examples are processed in blocks of this size. It bounds the accumulator
# that each chunk adds into, and it is a constant (not `batch_size`) so the
# random draws, made per block, do not change with `batch_size`.
EXAMPLE_BLOCK = 256
# Rows of random draws made at once: whole samples of a block, so that the
# grouping, like the block, never depends on `batch_size`.
DRAW_ROWS = 1024


def sample_chunks(num_examples, num_samples, batch_size, draw=None):
    """Walks the (sample, example) grid in chunks of at most `batch_size` rows.

    Examples go in blocks of `EXAMPLE_BLOCK`; within a block the rows are
    sample-major (all examples of sample 0, then of sample 1, ...).

    Args:
        num_examples: number of examples, B.
        num_samples: number of samples per example, S.
        batch_size: most rows per chunk.
        draw: optional `draw(n) -> dict of [n, ...] tensors`, the random
            quantities of `n` rows, sample-major: `n` is a whole number of
            samples of the current block of examples.

    Yields:
        `(s, e, drawn)`: int numpy arrays of each row's sample and example
        index, and the row's draws (a dict of backend tensors, or None).
    """
    for e0 in range(0, num_examples, EXAMPLE_BLOCK):
        block = min(EXAMPLE_BLOCK, num_examples - e0)
        # Random draws are made for `group` samples at once (a fixed number
        # of rows, so few small ops) and cached until the chunks move past.
        group = max(1, DRAW_ROWS // block)
        cache = {}
        for start in range(0, num_samples * block, batch_size):
            rows = np.arange(start, min(start + batch_size, num_samples * block))
            s, local = rows // block, rows % block
            drawn = None
            if draw is not None:
                drawn = _gather_draws(draw, cache, s, local, block, group)
            yield s, local + e0, drawn


def sample_sum(term, num_examples, num_samples, batch_size, draw=None):
    """Sums `term` over samples, per example, in chunks of `batch_size` rows.

    Args:
        term: `term(s, e, drawn) -> [rows, ...]`, the contribution of sample
            `s[r]` to example `e[r]` for each row `r` (see `sample_chunks`).
        num_examples, num_samples, batch_size, draw: as in `sample_chunks`.

    Returns:
        A backend tensor `[B, ...]`: for each example, the sum of its rows.
    """
    total = None
    for s, e, drawn in sample_chunks(num_examples, num_samples, batch_size, draw):
        part = keras.ops.segment_sum(
            term(s, e, drawn),
            keras.ops.convert_to_tensor(e, "int32"),
            num_segments=num_examples,
        )
        total = part if total is None else total + part
    return total


def _gather_draws(draw, cache, s, local, block, group):
    # Groups are visited in increasing order, so each is drawn exactly once.
    first, last = int(s[0]) // group, int(s[-1]) // group
    for old in [g for g in cache if g < first]:
        del cache[old]
    for g in range(first, last + 1):
        if g not in cache:
            cache[g] = draw(group * block)
    index = (s - first * group) * block + local
    index = keras.ops.convert_to_tensor(index, "int32")
    return {
        k: keras.ops.take(
            keras.ops.concatenate([cache[g][k] for g in range(first, last + 1)], 0)
            if last > first
            else cache[first][k],
            index,
            axis=0,
        )
        for k in cache[first]
    }


def seed_generator(seed, *keys):
    """A `keras.random.SeedGenerator` for the stream `keys` of `seed`.

    The seed is hashed (`keras_interp._seeds`), so seeds `s` and `s + 1`
    give unrelated draws on every backend; `seed=None` draws one from
    NumPy's global state, which `keras.utils.set_random_seed` controls.
    """
    return _seeds.generator(seed, *keys)


def rows(tensor, index):
    """`tensor[index]` for an int numpy index array, as a backend op."""
    return keras.ops.take(tensor, keras.ops.convert_to_tensor(index, "int32"), axis=0)


def numpy_generator(seed, *keys):
    """A NumPy generator for draws that must agree across backends.

    Metrics draw their noise and subsets with NumPy, so the same seed gives
    the same scores on TensorFlow, JAX and PyTorch. With no `keys` it is
    `np.random.default_rng(seed)`. `seed=None` draws a seed from NumPy's
    global state, which `keras.utils.set_random_seed` controls.
    """
    return _seeds.numpy_generator(seed, *keys)
