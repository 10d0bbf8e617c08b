"""Every random stream's seed, derived from the user's seed in one place.

Keras' PyTorch backend seeds the k-th draw of `SeedGenerator(s)` with
`s + k`, so generators seeded `s` and `s + 1` repeat each other's draws
shifted by one. Seeds are therefore never used as given: they pass through
NumPy's `SeedSequence` (a hash), together with keys that name the stream,
so nearby seeds and sibling streams give unrelated draws on every backend.
"""

import keras
import numpy as np


def check(seed, name="seed"):
    """`seed` as an int >= 0 or None; a `TypeError`/`ValueError` otherwise."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int or None. Received: {name}={seed!r}")
    if seed < 0:
        raise ValueError(f"`{name}` must be an int >= 0 or None. Received: {name}={seed}")
    return int(seed)


def draw():
    """A fresh seed from NumPy's global state (`keras.utils.set_random_seed` sets it)."""
    return int(np.random.randint(0, 2**31 - 1))


def mix(seed, *keys):
    """An int seed in [0, 2**31) hashed from `seed` and the stream's `keys`.

    Args:
        seed: the user's int seed, or None for a fresh one (`draw`).
        *keys: ints naming the stream (e.g. a regulariser's index).

    Returns:
        An int, the same for the same `seed` and `keys` in every process
        and on every backend.
    """
    seed = draw() if check(seed) is None else seed
    state = np.random.SeedSequence([seed, *[int(k) for k in keys]]).generate_state(1)
    return int(state[0] >> 1)


def generator(seed, *keys):
    """A `keras.random.SeedGenerator` for the stream `keys` of `seed`.

    A `SeedGenerator` passed as `seed` is returned as it is: a training
    step hands over its own so the draws advance from step to step.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    return keras.random.SeedGenerator(mix(seed, *keys))


def numpy_generator(seed, *keys):
    """A NumPy generator for the stream `keys` of `seed` (None: a fresh seed)."""
    seed = draw() if check(seed) is None else seed
    return np.random.default_rng([seed, *[int(k) for k in keys]])
