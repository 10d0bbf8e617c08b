"""The sections of the compare report, as blocks both writers render.

A block is a tuple whose first item says what it is: `("h1", text)`,
`("h2", text)`, `("p", text)`, `("list", [(name, text)])`,
`("image", caption, relative path, full path)` or `("table", table)`. A
table is a dict of `"columns"` (titles), `"groups"` (None, or
`[(title, span)]` over the columns), `"kinds"` (`"label"`, `"num"` or
`"wrap"` per column) and `"rows"` of cells. A cell is a dict with `"bold"`
and one of `"text"`, `"mean"` and `"sem"` (floats or None), or `"items"`
(a list of texts). Building the report once as blocks means the Markdown and
HTML files cannot show different numbers.
"""

import os

from keras_interp.report.tables import comparison_table
from keras_interp.report.tables import format_number
from keras_interp.report.tables import format_seconds
from keras_interp.report.tables import format_value
from keras_interp.report.tables import heading
from keras_interp.report.tables import score

EXPLAINER_NAMES = {
    "integrated_gradients": "Integrated Gradients",
    "gradient_shap": "GradientSHAP",
}
_MEASURES = {
    "accuracy": "accuracy",
    "rank_correlation": "rank correlation",
    "top_k_intersection": "top-k intersection",
    "ssim": "SSIM",
}


def _text(text, bold=False):
    return {"text": str(text), "bold": bold}


def _value(cell):
    return {"mean": cell["mean"], "sem": cell["sem"], "bold": cell["best"]}


def _table(columns, rows, kinds, groups=None):
    return ("table", {"columns": columns, "rows": rows, "kinds": kinds, "groups": groups})


def _explainer_name(explainer):
    return EXPLAINER_NAMES.get(explainer, explainer.replace("_", " "))


def header_blocks(results):
    """The title and the run's facts: data, model, backend, size, run id, time."""
    timings = results.get("timings") or {}
    spent = ", ".join(f"{k.replace('_', ' ')} {format_seconds(v)}" for k, v in timings.items())
    total = format_seconds(results["total_seconds"]) + (f" ({spent})" if spent else "")
    facts = [
        ("Dataset", str(results["dataset"])),
        ("Model", str(results["model"])),
        ("Backend", str(results["backend"])),
        ("Run", "quick" if results["quick"] else "full"),
        ("Examples", f"{results['num_train']} train, {results['num_test']} test, "
                     f"{results['num_eval']} explained"),
    ]
    if "seed" in results:
        facts.append(("Seed", str(results["seed"])))
    # Files from before run ids have none; the report then shows no line.
    if results.get("run_id") is not None:
        facts.append(("Run ID", str(results["run_id"])))
    facts.append(("Time", total))
    return [("h1", title(results)), ("list", facts)]


def title(results):
    """The report's title, also the HTML page's."""
    return f"keras-interp compare: {results['dataset']}, {results['model']}"


def comparison_blocks(results):
    """One `comparison_table` per explainer, then how to read them."""
    blocks = []
    for explainer in results["explainers"]:
        table = comparison_table(results, explainer)
        columns = ["Method"] + [
            heading(c, table["higher_is_better"][c]) for c in table["columns"]
        ]
        rows = [[_text(row["label"])] + [_value(row["cells"][c]) for c in table["columns"]]
                for row in table["rows"]]
        blocks.append(("h2", _explainer_name(explainer)))
        blocks.append(_table(columns, rows, ["label"] + ["num"] * len(table["columns"])))
    attack = results["robustness"]
    blocks.append(("p",
        "↑ higher is better, ↓ lower is better. Bold marks the best value of each "
        "column at the displayed precision (ties are all bold). Explanation metrics "
        f"are mean ± standard error over the {results['num_eval']} explained examples. "
        f"Robust accuracy is accuracy under {str(attack.get('attack', 'pgd')).upper()} "
        f"(ε = {format_number(attack.get('epsilon'))}, {attack.get('steps', '–')} steps)."))
    return blocks


def figure_blocks(results, base_dir):
    """The attribution maps and the metrics over epochs, where results list them."""
    figures = results.get("figures") or {}
    blocks = []
    for key, name, caption in (
        ("attributions", "Attributions", "Inputs and their maps for each method."),
        ("metrics_over_epochs", "Metrics over epochs",
         "Logged during training; fine-tuned methods continue the standard model's epochs."),
    ):
        if key in figures:
            path = figures[key]
            blocks += [("h2", name), ("image", caption, path, os.path.join(base_dir, path))]
    return blocks


def sweep_blocks(results):
    """The λ sweep: one row per weight, a column per quantity it measured."""
    sweep = results.get("lambda_sweep")
    if sweep is None:
        return []
    label = results["results"].get(sweep["method"], {}).get("label", sweep["method"])
    names = ["clean_accuracy", "robust_accuracy", *results["metrics"]]
    table = []
    for row in sweep["rows"]:
        scores = row.get("metrics") or {}
        table.append({n: score(row.get(n) if n.endswith("accuracy") else scores.get(n))
                      for n in names})
    # A sweep measures what its selection needs, often a few metrics only: a
    # column of dashes would say nothing.
    names = [n for n in names if any(cells[n]["mean"] is not None for cells in table)]
    rows = [[_text(format_number(row["weight"]))] + [_value(cells[n]) for n in names]
            for row, cells in zip(sweep["rows"], table)]
    directions = results["higher_is_better"]
    columns = ["weight"] + [heading(n, directions.get(n)) for n in names]
    return [("h2", f"λ sweep: {label}, {_explainer_name(sweep['explainer'])}"),
            _table(columns, rows, ["num"] * len(columns))]


def _same_for_every_epsilon(rows, measure, models):
    # Accuracy is measured on the clean inputs, so it repeats at every ε; one
    # column then says it once.
    for model in models:
        shown = {format_value((row.get(measure) or {}).get(model)) for row in rows}
        if len(shown) > 1:
            return False
    return True


def manipulation_blocks(results):
    """The explanation manipulation table: a row per model, a column group per measure."""
    manipulation = results.get("manipulation")
    if manipulation is None:
        return []
    descriptions = manipulation.get("models") or {}
    models = list(descriptions)
    eps_rows = manipulation["rows"]
    measures = [m for m in _MEASURES if any(m in row for row in eps_rows)]
    for row in eps_rows:
        for measure in measures:
            models += [m for m in row.get(measure) or {} if m not in models]
    # Models as rows and ε as sub-columns keep the table narrow: it grows by
    # one column per ε and measure, never by one per model.
    groups, columns, picks = [("", 1)], ["Model"], []
    for measure in measures:
        if measure == "accuracy" and _same_for_every_epsilon(eps_rows, measure, models):
            subs = [("clean inputs", eps_rows[0])]
        else:
            subs = [(f"ε = {format_number(row['epsilon'])}", row) for row in eps_rows]
        groups.append((f"{_MEASURES[measure]} ↑", len(subs)))
        columns += [name for name, _ in subs]
        picks += [(measure, row) for _, row in subs]
    rows = [[_text(model)] + [_value(score((row.get(measure) or {}).get(model)))
                              for measure, row in picks]
            for model in models]
    top_k = manipulation.get("top_k")
    name = "Explanation manipulation"
    if "mode" in manipulation:
        name += f" ({manipulation['mode']}" + (f", top-k = {top_k})" if top_k else ")")
    blocks = [("h2", name), _table(columns, rows, ["label"] + ["num"] * len(picks), groups)]
    blocks.append(("p",
        "Accuracy is each model's accuracy on the clean inputs; the attack keeps "
        "every prediction, so it is the same on the manipulated ones. Rank "
        "correlation, top-k intersection and SSIM compare each manipulated "
        "explanation with the original one, so higher means the explanation "
        "resisted the attack. The attack follows second derivatives, which vanish "
        "on ReLU networks, so the models are the methods' models made smooth with "
        "softplus:"))
    if descriptions:
        blocks.append(("list", [(str(k), str(v)) for k, v in descriptions.items()]))
    return blocks


def _config_items(config):
    if not isinstance(config, dict):
        return ["–" if config is None else str(config)]
    return [f"{k}={v}" for k, v in config.items()] or ["–"]


def methods_blocks(results):
    """Each method's training time and config."""
    rows = [[_text(results["results"][m]["label"]),
             _text(format_seconds(results["results"][m].get("train_seconds"))),
             {"items": _config_items(results["results"][m].get("config")), "bold": False}]
            for m in results["methods"]]
    return [("h2", "Methods"),
            _table(["Method", "train time", "config"], rows, ["label", "num", "wrap"])]


def document(results, base_dir):
    """Every section, in the order the report shows them."""
    return (header_blocks(results) + comparison_blocks(results)
            + figure_blocks(results, base_dir) + sweep_blocks(results)
            + manipulation_blocks(results) + methods_blocks(results))

