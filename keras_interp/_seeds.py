"""Every random stream's seed, derived from the user's seed in one place.

Keras' PyTorch backend seeds the k-th draw of `SeedGenerator(s)` with
`s + k`, so generators seeded `s` and `s + 1` repeat each other's draws
shifted by one. Seeds are therefore never used as given: they pass through
NumPy's `SeedSequence` (a hash), together with keys that name the stream,
so nearby seeds and sibling streams give unrelated draws on every backend.

The keys are the `SeedSequence`'s spawn key, not more entropy words:
`SeedSequence([s, 0])` equals `SeedSequence([s])` (entropy is zero-padded),
while a spawn key is kept apart from the seed, so `mix(s)`, `mix(s, 0)` and
`mix(s, 0, 0)` are three unrelated streams.
"""

import keras
import numpy as np


def check(seed, name="seed"):
    """`seed` as an int >= 0 or None.

    Args:
        seed: the value to check.
        name: the argument's name, for the error message.

    Returns:
        `seed` as a Python int, or None.

    Raises:
        TypeError: for anything but an int (bools excluded) or None.
        ValueError: for a negative int.
    """
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


def _sequence(seed, keys):
    seed = draw() if check(seed) is None else int(seed)
    keys = tuple(check(k, "key") for k in keys)
    if any(k is None for k in keys):
        raise TypeError(f"Stream keys must be ints >= 0. Received: keys={keys}")
    return np.random.SeedSequence(seed, spawn_key=keys)


def mix(seed, *keys):
    """An int seed in [0, 2**31) hashed from `seed` and the stream's `keys`.

    Args:
        seed: the user's int seed, or None for a fresh one (`draw`).
        *keys: ints >= 0 naming the stream (e.g. a regulariser's index).

    Returns:
        An int, the same for the same `seed` and `keys` in every process
        and on every backend.
    """
    return int(_sequence(seed, keys).generate_state(1)[0] >> 1)


def generator(seed, *keys):
    """A `keras.random.SeedGenerator` for the stream `keys` of `seed`.

    Args:
        seed: the user's int seed, None for a fresh one, or a
            `keras.random.SeedGenerator`, returned as it is (a training
            step hands over its own so the draws advance from step to
            step; `keys` are then ignored).
        *keys: ints >= 0 naming the stream.

    Returns:
        A `keras.random.SeedGenerator` seeded `mix(seed, *keys)`.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    return keras.random.SeedGenerator(mix(seed, *keys))


def numpy_generator(seed, *keys):
    """A NumPy generator for the stream `keys` of `seed` (None: a fresh seed).

    With no keys it is `np.random.default_rng(seed)`, so draws made that
    way before keep their values.
    """
    return np.random.default_rng(_sequence(seed, keys))
