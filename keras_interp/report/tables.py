"""The numbers of the report: how each one reads and which one is best."""

from keras_interp.report._schema import is_missing
from keras_interp.report._schema import validate

DECIMALS = 3
DASH = "–"


def format_value(x, sem=None):
    """Formats a number the way every table of the report shows it.

    A value has exactly three decimals (`f"{x:.3f}"`), so `float(text)`
    equals `round(x, 3)`; a standard error follows as `" ± "` and three
    decimals. A missing value (None or NaN) reads `"–"`; a missing standard
    error is left out.

    Args:
        x: a number, None or NaN.
        sem: optional standard error of `x`.

    Returns:
        The text of the cell.

    Example:

    ```python
    format_value(0.12345, 0.0041)  # "0.123 ± 0.004"
    format_value(None)             # "–"
    ```
    """
    if is_missing(x):
        return DASH
    text = f"{float(x):.{DECIMALS}f}"
    if not is_missing(sem):
        text += f" ± {float(sem):.{DECIMALS}f}"
    return text


def format_number(x):
    """A row key (a weight, an epsilon) as typed: `0.04`, not `0.040`."""
    return DASH if is_missing(x) else f"{float(x):g}"


def format_seconds(s):
    """A duration: `12.3 s` under a minute, `2 min 5 s` above."""
    if is_missing(s):
        return DASH
    s = float(s)
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {s % 60:.0f} s"


def heading(name, higher_is_better):
    """A column title: `"max sensitivity ↓"`; no arrow when the direction is unknown."""
    arrow = {True: "↑", False: "↓"}.get(higher_is_better, "")
    return f"{name.replace('_', ' ')} {arrow}".strip()


def score(value):
    """`{"mean", "sem", "best"}` from a `{"mean", "sem"}` dict or a bare number.

    Missing numbers become None; `best` starts False and `best_flags` sets it.
    """
    if isinstance(value, dict):
        mean, sem = value.get("mean"), value.get("sem")
    else:
        mean, sem = value, None
    return {
        "mean": None if is_missing(mean) else float(mean),
        "sem": None if is_missing(sem) else float(sem),
        "best": False,
    }


def best_flags(values, higher_is_better):
    """Which of `values` is the best of its column, as shown.

    Compared at the displayed precision, so two cells that read the same are
    both best; a missing value is never best, and a column of unknown
    direction (`higher_is_better` None) has no best.
    """
    if higher_is_better is None:
        return [False] * len(values)
    shown = [None if is_missing(v) else round(float(v), DECIMALS) for v in values]
    present = [v for v in shown if v is not None]
    if not present:
        return [False] * len(values)
    best = max(present) if higher_is_better else min(present)
    return [v is not None and v == best for v in shown]


def comparison_table(results, explainer):
    """The Table-3 style comparison of training methods for one explainer.

    Rows follow `results["methods"]`; columns are `clean_accuracy`,
    `robust_accuracy`, then `results["metrics"]`. A cell is the best of its
    column when its value, rounded to the displayed three decimals, is the
    maximum (or the minimum, where `results["higher_is_better"]` says lower is
    better); ties are all best, and a missing value is never best. Both
    report writers read this one table.

    Args:
        results: the dict of results.json.
        explainer: one of `results["explainers"]`.

    Returns:
        A dict with `"explainer"`, `"columns"` (metric names),
        `"higher_is_better"` (`{column: bool or None}`) and `"rows"`: a list
        of `{"method", "label", "cells": {column: {"mean", "sem", "best"}}}`,
        where `mean` and `sem` are floats or None.

    Example:

    ```python
    table = comparison_table(results, "integrated_gradients")
    [row["label"] for row in table["rows"] if row["cells"]["sparseness"]["best"]]
    ```
    """
    validate(results)
    if explainer not in results["explainers"]:
        raise ValueError(
            f"Expected one of {results['explainers']}. Received: explainer={explainer!r}"
        )
    columns = ["clean_accuracy", "robust_accuracy", *results["metrics"]]
    rows = []
    for method in results["methods"]:
        entry = results["results"][method]
        scores = (entry["metrics"] or {}).get(explainer) or {}
        cells = {
            "clean_accuracy": score(entry["clean_accuracy"]),
            "robust_accuracy": score(entry["robust_accuracy"]),
        }
        for metric in results["metrics"]:
            cells[metric] = score(scores.get(metric))
        rows.append({"method": method, "label": entry["label"], "cells": cells})
    directions = {c: results["higher_is_better"].get(c) for c in columns}
    for column in columns:
        values = [row["cells"][column]["mean"] for row in rows]
        for row, best in zip(rows, best_flags(values, directions[column])):
            row["cells"][column]["best"] = best
    return {
        "explainer": explainer,
        "columns": columns,
        "higher_is_better": directions,
        "rows": rows,
    }
