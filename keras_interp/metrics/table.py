"""Several metrics on one model and batch, summarised for the comparison tables."""

import functools

import numpy as np

from keras_interp import _checks
from keras_interp import _seeds
from keras_interp.metrics import _base
from keras_interp.metrics.complexity import complexity
from keras_interp.metrics.complexity import sparseness
from keras_interp.metrics.faithfulness import faithfulness_correlation
from keras_interp.metrics.faithfulness import faithfulness_estimate
from keras_interp.metrics.robustness import avg_sensitivity
from keras_interp.metrics.robustness import local_lipschitz_estimate
from keras_interp.metrics.robustness import max_sensitivity

# The seven metrics of the NsLoss paper (§5.2), in its tables' order.
PAPER_METRICS = (
    "max_sensitivity",
    "avg_sensitivity",
    "local_lipschitz_estimate",
    "faithfulness_correlation",
    "faithfulness_estimate",
    "complexity",
    "sparseness",
)

_EXPLAINED = {  # metric -> takes `explain`, re-explaining noisy copies
    "max_sensitivity": max_sensitivity,
    "avg_sensitivity": avg_sensitivity,
    "local_lipschitz_estimate": local_lipschitz_estimate,
}
_ATTRIBUTED = {  # metric -> takes the attributions of x
    "faithfulness_correlation": faithfulness_correlation,
    "faithfulness_estimate": faithfulness_estimate,
}
_MAP_ONLY = {"complexity": complexity, "sparseness": sparseness}

def evaluate(model, x, y, explain, metrics=PAPER_METRICS, *, batch_size=None, seed=None, verbose=1, **options):
    """Scores one model's explanations with several metrics.

    The attributions of `x` are computed once and shared by the metrics
    that take attributions; the sensitivity metrics call `explain` on their
    noisy copies.

    Args:
        model: a Keras classifier.
        x: inputs `[B, ...]`.
        y: int labels `[B]`, the explained class.
        explain: an attribution method `explain(model, x, target)` or its
            name. A method with a `seed` argument (every built-in one) gets
            a seed per call derived from `seed`, unless a
            `functools.partial` already binds one, so random methods
            (GradientSHAP, SmoothGrad) give the same table for the same
            `seed`, in any process; those seeds follow the calls, so they
            change with `batch_size`.
        metrics: a metric name or a list of names. Defaults to the NsLoss
            paper's seven.
        batch_size: rows per model or `explain` call.
        seed: int seed of every Monte-Carlo metric and of the explainer;
            None draws one from NumPy's global state.
        verbose: 1 prints a progress bar per metric, 0 is silent.
        **options: per-metric keyword arguments, as
            `{metric_name: {argument: value}}` (e.g.
            `max_sensitivity={"num_samples": 20}`).

    Returns:
        A dict `{name: {"mean", "sem", "nan_count", "higher_is_better",
        "scores"}}`: mean and standard error of the mean over the examples
        with a finite score, how many scores were left out of them as NaN
        or infinite, and the per-example scores.

    Example:

    ```python
    table = keras_interp.metrics.evaluate(
        model, x, y, "integrated_gradients",
        max_sensitivity={"num_samples": 20},
    )
    table["sparseness"]["mean"]
    ```
    """
    known = tuple(_EXPLAINED) + tuple(_ATTRIBUTED) + tuple(_MAP_ONLY)
    if isinstance(metrics, str):
        metrics = [metrics]  # one name, not a sequence of letters
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in known] + [m for m in options if m not in metrics]
    if unknown:
        raise ValueError(
            f"Unknown or unrequested metrics. Expected names from {known}. "
            f"Received: {unknown}"
        )
    x = _checks.floating_input(x)
    explain = _base.explainer(explain)
    seed = _seeds.check(seed)
    # Drawn once, so every metric's explainer calls share one base seed.
    explain_seed = _seeds.draw() if seed is None else seed
    attributions = None
    table = {}
    for name in metrics:
        kwargs = dict(options.get(name, {}))
        if name in _EXPLAINED:
            fn = functools.partial(
                _EXPLAINED[name], model, x, y, _base.seeded(explain, explain_seed, name),
                batch_size=batch_size, seed=seed, verbose=verbose,
            )
        else:
            if attributions is None:
                shared = _base.seeded(explain, explain_seed, "attributions")
                attributions = _base.explain_in_chunks(model, shared, x, y, batch_size or 64)
            if name in _ATTRIBUTED:
                extra = {"seed": seed} if name == "faithfulness_correlation" else {}
                fn = functools.partial(
                    _ATTRIBUTED[name], model, x, y, attributions, batch_size=batch_size, verbose=verbose, **extra
                )
            else:
                fn = functools.partial(_MAP_ONLY[name], attributions)
        scores = np.asarray(fn(**kwargs), dtype="float64")
        finite = scores[np.isfinite(scores)]
        sem = finite.std(ddof=1) / np.sqrt(len(finite)) if len(finite) > 1 else np.nan
        table[name] = {
            "mean": float(finite.mean()) if len(finite) else np.nan,
            "sem": float(sem),
            "nan_count": int(scores.size - finite.size),
            "higher_is_better": fn.func.higher_is_better,
            "scores": scores,
        }
    return table
