"""What the report needs from results.json (schema version 1), checked up front."""

import math

# Everything the schema lists except what it says may be null or absent.
REQUIRED = (
    "backend", "dataset", "model", "quick", "num_train", "num_test", "num_eval",
    "methods", "explainers", "metrics", "higher_is_better", "robustness",
    "results", "total_seconds",
)
REQUIRED_PER_METHOD = ("label", "clean_accuracy", "robust_accuracy", "metrics")
# Optional keys the report shows when present: "version", "seed", "run_id"
# (a string; results.json files written before run ids lack it), "timings",
# "figures", "lambda_sweep", "manipulation".


def is_missing(x):
    """True for None or NaN; raises for anything that is not a number."""
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected a number or None in the results. Received: value={x!r}"
        ) from None


def require(mapping, keys, where):
    """Raises a `ValueError` naming the first of `keys` that `mapping` lacks."""
    if not isinstance(mapping, dict):
        raise ValueError(
            f"Expected `{where}` to be a dict. Received: {where}={mapping!r}"
        )
    for key in keys:
        if key not in mapping:
            raise ValueError(
                f"`{where}` is missing the key {key!r}. "
                f"Received: keys={sorted(mapping)}"
            )


def validate(results):
    """Raises a `ValueError` unless `results` holds what every section reads.

    Checked before anything is written, so a bad results.json fails with the
    key it lacks instead of leaving half a report behind.
    """
    require(results, REQUIRED, "results")
    if results.get("version", 1) != 1:
        raise ValueError(
            "Expected results.json schema version 1. "
            f"Received: version={results['version']!r}"
        )
    run_id = results.get("run_id")
    if run_id is not None and not isinstance(run_id, str):
        raise ValueError(
            f"Expected `results['run_id']` to be a string or None. Received: run_id={run_id!r}"
        )
    for method in results["methods"]:
        if method not in results["results"]:
            raise ValueError(
                f"`results['results']` has no entry for the method {method!r} "
                f"listed in `results['methods']`. "
                f"Received: keys={sorted(results['results'])}"
            )
        require(
            results["results"][method], REQUIRED_PER_METHOD,
            f"results['results'][{method!r}]",
        )
    sweep = results.get("lambda_sweep")
    if sweep is not None:
        require(sweep, ("method", "explainer", "rows"), "results['lambda_sweep']")
        for row in sweep["rows"]:
            require(row, ("weight",), "results['lambda_sweep']['rows'][i]")
    manipulation = results.get("manipulation")
    if manipulation is not None:
        require(manipulation, ("rows",), "results['manipulation']")
        for row in manipulation["rows"]:
            require(row, ("epsilon",), "results['manipulation']['rows'][i]")
