"""SmoothGrad as a wrapper: average any method over noisy copies of x."""

import functools

import keras

from keras_interp import _checks
from keras_interp import _sampling
from keras_interp import _seeds
from keras_interp.attribution._scores import prepare
from keras_interp.attribution.gradient import vanilla_gradient


def smooth(method, num_samples=50, noise=0.15):
    """Wraps an attribution method so it averages over noisy inputs.

    `smooth(method)(model, x)` is the mean of `method(model, x + n_s)` over
    `num_samples` draws `n_s ~ N(0, noise^2)` on every feature (Smilkov et
    al. 2017). The class explained is resolved once on the clean `x`, so
    every noisy copy explains the same class. Noisy copies of many examples
    go through `method` together, in calls of `batch_size` rows.

    The noise is drawn per sample for the whole batch, so for a given
    `seed` the result does not depend on `batch_size` when `method` is
    deterministic. A random `method` receives one seed per call, derived
    from `seed`: reproducible, but tied to `batch_size`. The noise and the
    calls' seeds are separate streams hashed from `seed`
    (`keras_interp._seeds`), so nearby seeds give unrelated noise.

    Args:
        method: any attribution method with the signature
            `method(model, x, target, *, output, batch_size, seed, **hyper)`.
        num_samples: noisy copies per example. Defaults to 50.
        noise: standard deviation of the Gaussian noise, in input units.
            Defaults to 0.15 (Smilkov et al.'s 15% for inputs in [0, 1];
            scale it with your data range).

    Returns:
        A method with the same signature as `method`.

    Raises:
        TypeError: if `method` is not callable.

    Example:

    ```python
    smooth_ig = keras_interp.attribution.smooth(
        keras_interp.attribution.integrated_gradients, num_samples=10
    )
    a = smooth_ig(model, x, steps=20)
    ```
    """
    if not callable(method):
        raise TypeError(
            "`method` must be an attribution method, a callable "
            "`method(model, x, target, **hyper)`. Received: "
            f"method={method!r}"
        )
    num_samples = _checks.positive_int(num_samples, "num_samples")
    noise = _checks.non_negative(noise, "noise")

    @functools.wraps(method)
    def smoothed(
        model, x, target=None, *, output="logits", batch_size=None, seed=None, **hyper
    ):
        x, _, targets, batch_size = prepare(
            model, x, target, output, batch_size
        )
        seed = _seeds.draw() if _seeds.check(seed) is None else seed
        gen = _sampling.seed_generator(seed)
        # A stream of its own: the calls' seeds must not repeat the noise's.
        inner_seeds = _seeds.numpy_generator(seed, 1)

        def draw(n):
            shape = (n,) + tuple(x.shape[1:])
            return {"noise": noise * keras.random.normal(shape, seed=gen)}

        def term(s, e, drawn):
            return method(
                model,
                _sampling.rows(x, e) + drawn["noise"],
                _sampling.rows(targets, e),
                output=output,
                batch_size=batch_size,
                seed=int(inner_seeds.integers(2**31 - 1)),
                **hyper,
            )

        total = _sampling.sample_sum(
            term, x.shape[0], num_samples, batch_size, draw
        )
        return total / num_samples

    return smoothed


def smoothgrad(
    model,
    x,
    target=None,
    *,
    num_samples=50,
    noise=0.15,
    output="logits",
    batch_size=None,
    seed=None,
):
    """SmoothGrad: the vanilla gradient averaged over noisy inputs.

    `smooth(vanilla_gradient, num_samples, noise)` applied to `x`
    (Smilkov et al. 2017); ATEX (paper 2, §3.3) uses it as the explanation
    direction of the teacher.

    Args:
        model, x, target, output, batch_size: as in `vanilla_gradient`.
        num_samples: noisy copies per example. Defaults to 50.
        noise: Gaussian noise standard deviation, in input units. Defaults
            to 0.15.
        seed: seed of the noise; None draws one from NumPy's global state.

    Returns:
        A backend tensor shaped like `x`.

    Example:

    ```python
    a = keras_interp.attribution.smoothgrad(model, x, num_samples=20, seed=0)
    ```
    """
    return smooth(vanilla_gradient, num_samples, noise)(
        model, x, target, output=output, batch_size=batch_size, seed=seed
    )
