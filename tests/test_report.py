"""The compare report: numbers, bold, arrows and figures read back from the files."""

import base64
import copy
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from keras_interp import report

PNG = b"\x89PNG\r\n\x1a\n"
METHODS = ["standard", "nsloss", "jacobian", "adversarial", "atex"]
LABELS = ["Standard", "NsLoss", "Jacobian", "Adversarial (PGD)", "ATEX"]
EXPLAINERS = {"integrated_gradients": "Integrated Gradients", "gradient_shap": "GradientSHAP"}
METRICS = [
    "max_sensitivity", "avg_sensitivity", "local_lipschitz_estimate",
    "faithfulness_correlation", "faithfulness_estimate", "complexity", "sparseness",
]
HIGHER = {
    "max_sensitivity": False, "avg_sensitivity": False, "local_lipschitz_estimate": False,
    "faithfulness_correlation": True, "faithfulness_estimate": True,
    "complexity": False, "sparseness": True,
    "clean_accuracy": True, "robust_accuracy": True,
}
MEASURES = {
    "accuracy": "accuracy", "rank correlation": "rank_correlation",
    "top-k intersection": "top_k_intersection", "SSIM": "ssim",
}
MODELS = {"B-smoothing": "Standard, softplus beta=10", "ATEX": "ATEX fine-tuned", "Naive": "Eq. 2"}
SWEPT = ["max_sensitivity", "faithfulness_estimate", "sparseness"]  # what the sweep measured


def _score(rng):
    return {"mean": float(rng.uniform(-1, 2)), "sem": float(rng.uniform(0, 0.05))}


def _fake_results(tmp_path):
    """A results.json dict as `keras-interp compare` writes it, with a real PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    plt.imsave(tmp_path / "attributions.png", rng.uniform(size=(12, 20)), cmap="RdBu_r")
    results = {}
    for i, (method, label) in enumerate(zip(METHODS, LABELS)):
        epochs = [0, 1, 2] if method == "standard" else [3, 4, 5]
        history = {"epoch": epochs, "loss": list(rng.uniform(0.1, 1, 3)),
                   "max_sensitivity": list(rng.uniform(0, 1, 3))}
        if method != "atex":
            history["sparseness"] = list(rng.uniform(0, 1, 3))
        results[method] = {
            "label": label,
            "config": {"epochs": 3, "learning_rate": 0.001, "weight": float(i)},
            "train_seconds": float(rng.uniform(1, 200)),
            "clean_accuracy": float(rng.uniform(0.8, 1)),
            "robust_accuracy": float(rng.uniform(0, 0.6)),
            "metrics": {e: {m: _score(rng) for m in METRICS} for e in EXPLAINERS},
            "history": history,
        }
    ig = {m: results[m]["metrics"]["integrated_gradients"] for m in METHODS}
    # An exact tie for the best, a tie only at the displayed precision, a
    # missing value where lower is better, and a tie in accuracy.
    ig["nsloss"]["sparseness"]["mean"] = ig["atex"]["sparseness"]["mean"] = 5.0
    ig["jacobian"]["faithfulness_correlation"]["mean"] = 3.00012
    ig["standard"]["faithfulness_correlation"]["mean"] = 3.00041
    ig["jacobian"]["max_sensitivity"] = {"mean": None, "sem": None}
    results["adversarial"]["metrics"]["gradient_shap"]["complexity"]["sem"] = None
    results["standard"]["clean_accuracy"] = results["atex"]["clean_accuracy"] = 0.99
    results["atex"]["config"]["note"] = "a<b & c"
    accuracy = {m: float(rng.uniform()) for m in MODELS}
    return {
        "version": 1, "backend": "tensorflow", "dataset": "mnist5k", "model": "small_cnn",
        "quick": True, "seed": 0, "num_train": 4000, "num_test": 1000, "num_eval": 32,
        "methods": list(METHODS), "explainers": list(EXPLAINERS), "metrics": list(METRICS),
        "higher_is_better": dict(HIGHER),
        "robustness": {"attack": "pgd", "epsilon": 0.1, "steps": 10},
        "results": results,
        "lambda_sweep": {
            "method": "nsloss", "explainer": "integrated_gradients",
            "rows": [{"weight": w, "clean_accuracy": float(rng.uniform(0.8, 1)),
                      "robust_accuracy": float(rng.uniform(0, 0.5)),
                      "metrics": {m: _score(rng) for m in SWEPT}}
                     for w in (0.1, 1.0, 10.0)],
        },
        "manipulation": {
            "mode": "untargeted", "top_k": 50, "models": dict(MODELS),
            # Accuracy is on the clean inputs, the same at every epsilon.
            "rows": [{"epsilon": eps, "accuracy": dict(accuracy),
                      **{k: {m: float(rng.uniform()) for m in MODELS}
                         for k in MEASURES.values() if k != "accuracy"}}
                     for eps in (0.04, 0.08, 0.16)],
        },
        "figures": {"attributions": "attributions.png"},
        "timings": {"data": 0.4, "train": 120.0, "evaluate": 200.0},
        "total_seconds": 421.0,
    }


class _Page(HTMLParser):
    """Collects tags, attributes, headings and tables (by the heading above)."""

    BALANCED = {"html", "head", "body", "main", "div", "table", "thead", "tbody", "tr",
                "td", "th", "strong", "ul", "li", "p", "h1", "h2", "figure", "style"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.attrs, self.tags = [], [], [], []
        self.headings, self.tables = [], {}
        self.heading, self._heading_text, self.table, self.section = None, None, None, None
        self.row, self.cell, self.in_sem = None, None, False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag in self.BALANCED:
            self.stack.append(tag)
        if tag in ("h1", "h2"):
            self._heading_text = ""
        elif tag == "table":
            self.table = {"head": [], "body": []}
            self.tables[self.heading] = self.table
        elif tag in ("thead", "tbody"):
            self.section = tag[1:]
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = {"text": "", "sem": "", "bold": False,
                         "span": int(dict(attrs).get("colspan", 1))}
        elif tag == "strong" and self.cell is not None:
            self.cell["bold"] = True
        elif tag == "span" and self.cell is not None and dict(attrs).get("class") == "sem":
            self.in_sem = True

    def handle_endtag(self, tag):
        if tag in self.BALANCED:
            if self.stack and self.stack[-1] == tag:
                self.stack.pop()
            else:
                self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        if tag == "span":
            self.in_sem = False
        if tag in ("td", "th"):
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr":
            self.table[self.section].append(self.row)
        elif tag in ("h1", "h2"):
            self.heading = self._heading_text.strip()
            self.headings.append(self.heading)
            self._heading_text = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["sem" if self.in_sem else "text"] += data
        if self._heading_text is not None:
            self._heading_text += data


def _html_tables(text):
    page = _Page()
    page.feed(text)
    page.close()
    tables = {}
    for heading, t in page.tables.items():
        header = [c["text"] for c in t["head"][-1]]
        groups = [""] * len(header)
        if len(t["head"]) == 2:
            groups = [c["text"] for c in t["head"][0] for _ in range(c["span"])]
        # "0.643" with "± 0.011" under it reads back as Markdown writes it.
        assert not any("±" in c["text"] for r in t["body"] for c in r)
        rows = [[(f"{c['text']} {c['sem']}" if c["sem"] else c["text"], c["bold"]) for c in r]
                for r in t["body"]]
        tables[heading] = {"header": list(zip(groups, header)), "rows": rows}
    return page, tables


def _markdown_tables(text):
    tables, heading, lines = {}, None, text.splitlines()
    split = re.compile(r"(?<!\\)\|")
    for i, line in enumerate(lines):
        if line.startswith("## "):
            heading = line[3:].strip()
        if line.startswith("|") and not lines[i - 1].startswith("|"):
            block = [ln for ln in lines[i:] if ln.startswith("|")]
            block = block[: next((k for k, ln in enumerate(lines[i:]) if not ln.startswith("|")),
                                 len(block))]
            cells = [[c.strip().replace("\\|", "|") for c in split.split(ln)[1:-1]]
                     for ln in block]
            assert all(set(c) <= set("-:") for c in cells[1])
            header = [tuple(h.split(": ", 1)) if ": " in h else ("", h) for h in cells[0]]
            rows = [[(c[2:-2], True) if c.startswith("**") and c.endswith("**") else (c, False)
                     for c in row] for row in cells[2:]]
            tables[heading] = {"header": header, "rows": rows}
    return tables


def _parse(text):
    """(mean, sem) read back from a cell; None where it shows a dash."""
    if text == "–":
        return None, None
    parts = text.split(" ± ")
    return float(parts[0]), (float(parts[1]) if len(parts) == 2 else None)


def _shown(value):
    return None if value is None or math.isnan(value) else round(value, 3)


def _expected_best(values, higher):
    shown = np.array([np.nan if _shown(v) is None else _shown(v) for v in values])
    if np.all(np.isnan(shown)):
        return [False] * len(values)
    best = shown[np.nanargmax(shown)] if higher else shown[np.nanargmin(shown)]
    return list(shown == best)


def _check_comparison(table, results, explainer):
    columns = ["clean_accuracy", "robust_accuracy", *METRICS]
    assert table["header"][0] == ("", "Method")
    for (_, head), column in zip(table["header"][1:], columns):
        name, arrow = head.rsplit(" ", 1)
        assert name == column.replace("_", " ")
        assert arrow == ("↑" if HIGHER[column] else "↓")
    assert [row[0][0] for row in table["rows"]] == LABELS
    for j, column in enumerate(columns, start=1):
        scores = []
        for method in METHODS:
            entry = results["results"][method]
            if column in ("clean_accuracy", "robust_accuracy"):
                scores.append({"mean": entry[column], "sem": None})
            else:
                scores.append(entry["metrics"][explainer][column])
        for row, score in zip(table["rows"], scores):
            mean, sem = _parse(row[j][0])
            assert mean == _shown(score["mean"]), (column, row[0])
            assert sem == _shown(score["sem"]), (column, row[0])
        bold = [row[j][1] for row in table["rows"]]
        assert bold == _expected_best([s["mean"] for s in scores], HIGHER[column]), column
    return [row[j][1] for row in table["rows"] for j in range(1, len(columns) + 1)]


def _check_tables(tables, results):
    for explainer, title in EXPLAINERS.items():
        _check_comparison(tables[title], results, explainer)
    ig = tables["Integrated Gradients"]
    sparseness = 1 + 2 + METRICS.index("sparseness")
    assert [row[sparseness][1] for row in ig["rows"]] == [False, True, False, False, True]
    faith = 1 + 2 + METRICS.index("faithfulness_correlation")
    assert [row[faith][1] for row in ig["rows"]] == [True, False, True, False, False]
    assert ig["rows"][2][3] == ("–", False)
    assert [row[1][1] for row in ig["rows"]] == [True, False, False, False, True]

    _check_sweep(tables["λ sweep: NsLoss, Integrated Gradients"], results,
                 ["clean_accuracy", "robust_accuracy", *SWEPT])

    _check_manipulation(tables["Explanation manipulation (untargeted, top-k = 50)"],
                        results, accuracy_columns=1)

    methods = tables["Methods"]
    assert [row[0][0] for row in methods["rows"]] == LABELS
    assert methods["rows"][0][2][0] == "epochs=3, learning_rate=0.001, weight=0.0"
    assert methods["rows"][4][2][0].endswith("weight=4.0, note=a<b & c")


def _check_sweep(table, results, columns):
    """One row per weight; a column for each quantity the sweep measured."""
    assert table["header"] == [("", "weight")] + [
        ("", f"{c.replace('_', ' ')} {'↑' if HIGHER[c] else '↓'}") for c in columns]
    for row, expected in zip(table["rows"], results["lambda_sweep"]["rows"], strict=True):
        assert float(row[0][0]) == expected["weight"]
        for cell, column in zip(row[1:], columns, strict=True):
            score = expected.get(column) if column.endswith("accuracy") else (
                expected["metrics"].get(column))
            if not isinstance(score, dict):
                score = {"mean": score, "sem": None}
            assert _parse(cell[0]) == (_shown(score["mean"]), _shown(score["sem"])), column
        assert not any(bold for _, bold in row)


def _check_manipulation(table, results, accuracy_columns):
    """A row per model; per measure a column per epsilon, one for clean accuracy."""
    rows = results["manipulation"]["rows"]
    header = table["header"]
    assert header[0] == ("", "Model")
    assert [row[0][0] for row in table["rows"]] == list(MODELS)
    assert len(header) == 1 + accuracy_columns + (len(MEASURES) - 1) * len(rows)
    assert sum(group == "accuracy ↑" for group, _ in header) == accuracy_columns
    for row, model in zip(table["rows"], MODELS, strict=True):
        for (group, sub), cell in zip(header[1:], row[1:], strict=True):
            measure = MEASURES[group.removesuffix(" ↑")]
            if sub == "clean inputs":
                assert measure == "accuracy"
                values = {_shown(r[measure][model]) for r in rows}
                assert len(values) == 1 and _parse(cell[0]) == (values.pop(), None)
            else:
                (expected,) = [r for r in rows if r["epsilon"] == float(sub.removeprefix("ε = "))]
                assert _parse(cell[0]) == (_shown(expected[measure][model]), None)


def test_format_value_is_fixed_and_parses_back():
    assert report.format_value(0.12345, 0.0041) == "0.123 ± 0.004"
    assert report.format_value(2) == "2.000"
    assert report.format_value(None) == report.format_value(float("nan")) == "–"
    assert report.format_value(0.5, None) == "0.500"
    for x in np.random.default_rng(1).normal(0, 100, 50):
        assert float(report.format_value(x)) == round(float(x), 3)
    with pytest.raises(ValueError, match="Received"):
        report.format_value("high")


def test_comparison_table_best_and_order(tmp_path):
    results = _fake_results(tmp_path)
    table = report.comparison_table(results, "integrated_gradients")
    assert [r["method"] for r in table["rows"]] == METHODS
    assert table["columns"] == ["clean_accuracy", "robust_accuracy", *METRICS]
    assert table["rows"][2]["cells"]["max_sensitivity"] == {
        "mean": None, "sem": None, "best": False}
    for column in table["columns"]:
        values = [r["cells"][column]["mean"] for r in table["rows"]]
        assert [r["cells"][column]["best"] for r in table["rows"]] == _expected_best(
            values, HIGHER[column])
    with pytest.raises(ValueError, match="explainer='smoothgrad'"):
        report.comparison_table(results, "smoothgrad")


def test_html_report_is_self_contained_and_matches_results(tmp_path):
    results = _fake_results(tmp_path)
    original = copy.deepcopy(results)
    md_path, html_path = report.write_report(results, tmp_path)
    assert results == original
    text = open(html_path, encoding="utf-8").read()
    page, tables = _html_tables(text)
    assert page.errors == [] and page.stack == []
    assert {"script", "link", "iframe"}.isdisjoint(page.tags)
    images = [v for tag, k, v in page.attrs if tag == "img" and k == "src"]
    assert len(images) == 2
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    links = [v for _, k, v in page.attrs if k in ("src", "href")]
    assert all(v.startswith("data:") or v.startswith("#") for v in links)
    assert page.headings == [
        "keras-interp compare: mnist5k, small_cnn", "Integrated Gradients", "GradientSHAP",
        "Attributions", "Metrics over epochs", "λ sweep: NsLoss, Integrated Gradients",
        "Explanation manipulation (untargeted, top-k = 50)", "Methods",
    ]
    _check_tables(tables, results)
    assert "a&lt;b &amp; c" in text and "a<b & c" not in text
    assert "PGD (ε = 0.1, 10 steps)" in text
    for description in MODELS.values():
        assert description in text
    assert "accuracy on the clean inputs" in text and "made smooth with softplus" in text
    assert "on the manipulated inputs" not in text
    assert (tmp_path / "metrics_over_epochs.png").read_bytes().startswith(PNG)


def test_markdown_report_matches_results(tmp_path):
    results = _fake_results(tmp_path)
    md_path, _ = report.write_report(results, tmp_path)
    text = open(md_path, encoding="utf-8").read()
    _check_tables(_markdown_tables(text), results)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == ["attributions.png", "metrics_over_epochs.png"]
    assert all((tmp_path / link).exists() for link in links)
    assert "- **Run**: quick" in text and "- **Examples**: 4000 train, 1000 test" in text


def test_optional_parts_absent(tmp_path):
    results = _fake_results(tmp_path)
    results["lambda_sweep"] = results["manipulation"] = None
    results["figures"] = {}
    for method in METHODS:
        results["results"][method]["history"] = {"epoch": [0]}
    md_path, html_path = report.write_report(results, tmp_path / "out")
    page, tables = _html_tables(open(html_path, encoding="utf-8").read())
    assert page.headings == ["keras-interp compare: mnist5k, small_cnn",
                             "Integrated Gradients", "GradientSHAP", "Methods"]
    assert "img" not in page.tags
    _check_comparison(tables["GradientSHAP"], results, "gradient_shap")
    md = open(md_path, encoding="utf-8").read()
    assert "![" not in md and "## λ sweep" not in md and "## Explanation" not in md
    assert not (tmp_path / "out" / "metrics_over_epochs.png").exists()


def test_missing_figure_file_is_noted(tmp_path):
    results = _fake_results(tmp_path)
    results["figures"] = {"attributions": "gone.png", "metrics_over_epochs": "gone2.png"}
    md_path, html_path = report.write_report(results, tmp_path)
    html_text = open(html_path, encoding="utf-8").read()
    assert "<img" not in html_text and "Figure not found: gone.png" in html_text
    assert "*Figure not found: gone2.png*" in open(md_path, encoding="utf-8").read()


def test_sweep_shows_only_measured_columns(tmp_path):
    results = _fake_results(tmp_path)
    rows = results["lambda_sweep"]["rows"]
    for row in rows:
        row["robust_accuracy"] = None
    del rows[0]["metrics"]["sparseness"]  # measured at some weights: still a column
    md_path, html_path = report.write_report(results, tmp_path)
    _, html_tables = _html_tables(open(html_path, encoding="utf-8").read())
    md_tables = _markdown_tables(open(md_path, encoding="utf-8").read())
    for tables in (html_tables, md_tables):
        table = tables["λ sweep: NsLoss, Integrated Gradients"]
        _check_sweep(table, results, ["clean_accuracy", *SWEPT])
        assert table["rows"][0][-1] == ("–", False)


def test_manipulation_accuracy_per_epsilon_when_it_varies(tmp_path):
    results = _fake_results(tmp_path)
    results["manipulation"]["rows"][1]["accuracy"]["ATEX"] += 0.1
    md_path, html_path = report.write_report(results, tmp_path)
    _, html_tables = _html_tables(open(html_path, encoding="utf-8").read())
    md_tables = _markdown_tables(open(md_path, encoding="utf-8").read())
    for tables in (html_tables, md_tables):
        table = tables["Explanation manipulation (untargeted, top-k = 50)"]
        _check_manipulation(table, results, accuracy_columns=3)
        assert [sub for group, sub in table["header"] if group == "accuracy ↑"] == [
            "ε = 0.04", "ε = 0.08", "ε = 0.16"]


@pytest.mark.parametrize("key", ["dataset", "methods", "higher_is_better", "total_seconds"])
def test_missing_key_raises(tmp_path, key):
    results = _fake_results(tmp_path)
    del results[key]
    with pytest.raises(ValueError, match=f"'{key}'.*Received"):
        report.write_report(results, tmp_path)


def test_missing_method_entry_raises(tmp_path):
    results = _fake_results(tmp_path)
    del results["results"]["atex"]["label"]
    with pytest.raises(ValueError, match="'label'.*Received"):
        report.write_html(results, tmp_path / "r.html")
    del results["results"]["atex"]
    with pytest.raises(ValueError, match="'atex'.*Received"):
        report.write_markdown(results, tmp_path / "r.md")


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib figures saved during a test, in order."""
    import matplotlib.figure

    figures = []
    save = matplotlib.figure.Figure.savefig

    def recording_save(fig, *args, **kwargs):
        figures.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording_save)
    return figures


def test_metrics_over_epochs_figure(tmp_path, drawn):
    results = _fake_results(tmp_path)
    path = tmp_path / "epochs.png"
    assert report.metrics_over_epochs_figure(results, path) == path
    assert path.read_bytes().startswith(PNG)
    (fig,) = drawn
    assert [ax.get_title() for ax in fig.axes] == ["loss ↓", "max sensitivity ↓",
                                                   "sparseness ↑"]
    assert [len(ax.lines) for ax in fig.axes] == [5, 5, 4]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == LABELS
    xs = {line.get_label(): list(line.get_xdata()) for line in fig.axes[0].lines}
    assert xs["Standard"] == [0, 1, 2] and xs["ATEX"] == [3, 4, 5]

    report.metrics_over_epochs_figure(results, path, metrics=["sparseness"])
    assert len(drawn[-1].axes) == 1
    # A metric logged without a value is no line, and a key nobody has a
    # value for is no panel.
    results["results"]["jacobian"]["history"]["sparseness"] = [None, float("nan"), None]
    for method in METHODS:
        results["results"][method]["history"]["agreement"] = [None] * 3
    report.metrics_over_epochs_figure(results, path)
    assert [ax.get_title() for ax in drawn[-1].axes] == ["loss ↓", "max sensitivity ↓",
                                                         "sparseness ↑"]
    labels = [line.get_label() for line in drawn[-1].axes[2].lines]
    assert labels == ["Standard", "NsLoss", "Adversarial (PGD)"]
    for method in METHODS:
        results["results"][method]["history"] = {"epoch": [0, 1]}
    empty = tmp_path / "none.png"
    assert report.metrics_over_epochs_figure(results, empty) is None
    assert not empty.exists()


@pytest.mark.parametrize("channels", [2, 5])
def test_attribution_figure_any_channel_count(tmp_path, drawn, channels):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 10, 10, channels)).astype("float32")
    maps = {"a": rng.normal(size=x.shape), "b": rng.normal(size=x.shape)}
    path = tmp_path / "maps.png"
    assert report.attribution_figure(x, maps, path, labels=["0", "1"]) == path
    assert path.read_bytes().startswith(PNG)
    (fig,) = drawn
    axes = np.array(fig.axes).reshape(2, 3)
    for i in range(2):
        # Independent of the drawing code: the grey input is the NumPy mean
        # over channels, each map the sum over channels.
        (image,) = axes[i, 0].get_images()
        np.testing.assert_allclose(np.asarray(image.get_array()), x[i].mean(-1), rtol=1e-6)
        assert image.get_cmap().name == "gray"
        for j, name in enumerate(maps, start=1):
            (drawn_map,) = axes[i, j].get_images()
            np.testing.assert_allclose(np.asarray(drawn_map.get_array()), maps[name][i].sum(-1))


def test_run_id_is_shown_in_both_reports_when_present(tmp_path):
    results = _fake_results(tmp_path)
    results["run_id"] = "20261123T101500Z-1a2b3c4d"
    md_path, html_path = report.write_report(results, tmp_path)
    assert "- **Run ID**: 20261123T101500Z-1a2b3c4d" in open(md_path, encoding="utf-8").read()
    assert "20261123T101500Z-1a2b3c4d" in open(html_path, encoding="utf-8").read()
    # results.json files from before run ids still make a report, without the line.
    del results["run_id"]
    md_path, html_path = report.write_report(results, tmp_path)
    assert "Run ID" not in open(md_path, encoding="utf-8").read()
    assert "Run ID" not in open(html_path, encoding="utf-8").read()
    results["run_id"] = 7
    with pytest.raises(ValueError, match="Received: run_id=7"):
        report.write_markdown(results, tmp_path / "r.md")


def test_reports_leave_no_temporary_files(tmp_path):
    results = _fake_results(tmp_path)
    report.write_report(results, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "attributions.png", "metrics_over_epochs.png", "report.html", "report.md"]


def test_a_figure_save_that_fails_midway_keeps_the_old_figure(tmp_path, monkeypatch):
    import matplotlib.figure

    results = _fake_results(tmp_path)
    path = tmp_path / "epochs.png"
    report.metrics_over_epochs_figure(results, path)
    old = path.read_bytes()

    def broken_save(fig, fname, **kwargs):
        # Half a PNG, then a failure: as a run killed while saving.
        with open(fname, "wb") as f:
            f.write(PNG)
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_save)
    with pytest.raises(OSError, match="disk full"):
        report.metrics_over_epochs_figure(results, path)
    with pytest.raises(OSError, match="disk full"):
        report.attribution_figure(np.zeros((1, 4, 4, 1)), {"a": np.ones((1, 4, 4, 1))}, tmp_path / "maps.png")
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attributions.png", "epochs.png"]


def test_a_report_write_that_fails_midway_keeps_the_old_report(tmp_path, monkeypatch):
    from keras_interp import _files

    results = _fake_results(tmp_path)
    md_path, html_path = report.write_report(results, tmp_path)
    old = {path: open(path, encoding="utf-8").read() for path in (md_path, html_path)}
    results["dataset"] = "another dataset"

    def killed(src, dst):
        # The new text is in the temporary file; the run dies before the rename.
        raise KeyboardInterrupt

    monkeypatch.setattr(_files.os, "replace", killed)
    for write, path in ((report.write_markdown, md_path), (report.write_html, html_path)):
        with pytest.raises(KeyboardInterrupt):
            write(results, path)
        assert open(path, encoding="utf-8").read() == old[path]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "attributions.png", "metrics_over_epochs.png", "report.html", "report.md"]
