"""The NsLoss paper's protocol for choosing the regulariser weight (§4.4)."""

import math
import warnings

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import _seeds
from keras_interp.model import RegularizedModel


def _arrays(data, name):
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(
            f"`{name}` must be a pair of arrays (x, y). Received: {name} of type "
            f"{type(data).__name__}"
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y):
        raise ValueError(
            f"`{name}` must hold as many labels as inputs. Received: "
            f"{len(x)} inputs and {len(y)} labels"
        )
    return x, y


def _copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _fresh(optimizer):
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer.__class__.from_config(optimizer.get_config())
    return keras.optimizers.get(optimizer)


def select_lambda(
    model,
    data,
    regularizer,
    *,
    validation_data=None,
    loss=None,
    optimizer="adam",
    batch_size=64,
    num_batches=10,
    max_trials=5,
    seed=None,
    verbose=1,
):
    """Chooses a regulariser weight by the protocol of NsLoss paper §4.4.

    1. `R_0` = the regulariser's term on the trained standard `model`, the
       mean over `num_batches` random training batches and as many
       validation batches (in inference mode).
    2. `lambda_0 = log2(C) / R_0`, C the number of classes.
    3. Binary search, on a log scale, in `[lambda_0 / 10, 10 lambda_0]`,
       starting at `lambda_0`: a copy of `model` is trained for one epoch
       with the candidate weight; the candidate is too high if the epoch's
       mean training cross-entropy (the loss without the weighted term)
       reaches `log2(C)`, the paper's "cross-entropy of a random guess"
       (as written there, in bits, while Keras' losses are in nats). The
       answer is the largest candidate that was not too high.

    `model` is not modified.

    Args:
        model: the trained standard Keras classifier.
        data: `(x, y)` training arrays.
        regularizer: a regulariser with a `weight` (e.g.
            `NeuronSensitivity`); its own weight is ignored.
        validation_data: `(x, y)` arrays for step 1, or None to use
            training batches only.
        loss: the loss to train with. Defaults to
            `SparseCategoricalCrossentropy(from_logits=True)`.
        optimizer: optimizer (name or instance, copied for each trial).
            Defaults to `"adam"`.
        batch_size: batch size of steps 1 and 3. Defaults to 64.
        num_batches: batches of each set in step 1. Defaults to 10.
        max_trials: one-epoch trainings in step 3. Defaults to 5.
        seed: int seed of the batch choice and the regularisers' draws;
            None draws one from NumPy's global state, once, so every trial
            trains on the same draws.
        verbose: 1 prints one line per stage, 0 is silent.

    Returns:
        `(lam, table)`: the chosen weight, and one dict per trial with
        `lambda`, `cross_entropy`, the regulariser's mean term (under its
        name) and `too_high`, in the order tried. `table` rows follow a
        first row with `lambda=None` holding `R_0` and `lambda_0`.

    Example:

    ```python
    lam, table = keras_interp.select_lambda(
        standard, (x_train, y_train),
        keras_interp.regularizers.NeuronSensitivity(1.0, epsilon=0.5),
        validation_data=(x_val, y_val),
    )
    ```
    """
    x, y = _arrays(data, "data")
    if not hasattr(regularizer, "weight") or regularizer.replaces_loss:
        raise ValueError(
            "select_lambda tunes the weight of an added loss term, e.g. "
            f"NeuronSensitivity or JacobianNorm. Received: regularizer={regularizer!r}"
        )
    batch_size = _checks.positive_int(batch_size, "batch_size")
    num_batches = _checks.positive_int(num_batches, "num_batches")
    max_trials = _checks.positive_int(max_trials, "max_trials")
    loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # One seed for every trial: candidates differ only in their weight.
    seed = _seeds.draw() if _seeds.check(seed) is None else seed
    rng = _seeds.numpy_generator(seed)
    config = regularizer.get_config()

    def regularized(weight, evaluate=False):
        reg = type(regularizer).from_config({**config, "weight": weight})
        return RegularizedModel(_copy(model), [reg], seed=seed, evaluate_regularizers=evaluate)

    # Step 1: the term on the standard model, over random batches.
    probe = regularized(1.0, evaluate=True)
    probe.compile(loss=loss)
    sets = [(x, y)] + ([_arrays(validation_data, "validation_data")] if validation_data else [])
    terms = []
    for xs, ys in sets:
        rows = rng.choice(len(xs), min(len(xs), num_batches * batch_size), replace=False)
        logs = probe.evaluate(xs[rows], ys[rows], batch_size=batch_size, verbose=0, return_dict=True)
        terms.append(logs[regularizer.name])
    term_0 = float(np.mean(terms))
    if not term_0 > 0:
        raise ValueError(
            f"The standard model's {regularizer.name} term is {term_0}, so "
            "lambda_0 = log2(C) / term is undefined."
        )
    classes = model.outputs[0].shape[-1]
    threshold = math.log2(classes)
    lambda_0 = threshold / term_0
    table = [{"lambda": None, "term_0": term_0, "lambda_0": lambda_0}]
    if verbose:
        print(f"select_lambda: {regularizer.name}_0 = {term_0:.4g}, lambda_0 = {lambda_0:.4g}")

    # Step 3: binary search on a log scale, one epoch per candidate.
    low, high, best = lambda_0 / 10, lambda_0 * 10, None
    candidate = lambda_0
    for _ in range(max_trials):
        trial = regularized(candidate)
        trial.compile(optimizer=_fresh(optimizer), loss=loss)
        history = trial.fit(x, y, batch_size=batch_size, epochs=1, verbose=0).history
        term = history[regularizer.name][-1]
        cross_entropy = history["loss"][-1] - candidate * term
        too_high = bool(cross_entropy >= threshold)
        table.append(
            {"lambda": candidate, "cross_entropy": cross_entropy, regularizer.name: term, "too_high": too_high}
        )
        if verbose:
            verdict = "too high" if too_high else "ok"
            print(f"select_lambda: lambda = {candidate:.4g}: cross-entropy {cross_entropy:.4f} ({verdict})")
        if too_high:
            high = candidate
        else:
            low = candidate
            best = candidate if best is None else max(best, candidate)
        candidate = math.sqrt(low * high)
    if best is None:
        warnings.warn(
            f"Every lambda tried was too high; returning the lower end of the "
            f"search range, lambda_0 / 10 = {low:.4g}, untested.",
            stacklevel=2,
        )
        best = low
    return best, table
