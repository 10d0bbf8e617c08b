"""The compare report's files: report.md and a self-contained report.html."""

import copy
import os

from keras_interp import _files
from keras_interp.report import render
from keras_interp.report import sections
from keras_interp.report._schema import validate
from keras_interp.report.figures import metrics_over_epochs_figure


def comparison_markdown(results):
    """The comparison tables alone, as Markdown: what `compare` prints at the end."""
    validate(results)
    return render.markdown(sections.comparison_blocks(results))


def write_markdown(results, path, *, base_dir=None):
    """Writes the report as Markdown; figures are linked by relative path.

    Sections: the run (dataset, model, backend, size, time, and the run id
    when results.json has one), one comparison table per explainer (best in
    bold, ↑/↓ in each header), the attribution and metrics-over-epochs
    figures, the λ sweep and the explanation manipulation tables when
    present, and each method's config. Numbers read as `format_value`
    writes them. The file is written under a temporary name and moved onto
    `path`, so an interrupted call leaves the previous file whole.

    Args:
        results: the dict of results.json.
        path: where to write the `.md` file.
        base_dir: the folder the figure paths are relative to. Defaults to
            the folder of `path`.

    Returns:
        `path`.

    Example:

    ```python
    write_markdown(json.load(open("out/results.json")), "out/report.md")
    ```
    """
    validate(results)
    base_dir = os.path.dirname(os.path.abspath(path)) if base_dir is None else base_dir
    text = render.markdown(sections.document(results, base_dir))
    with _files.atomic_write(path, encoding="utf-8") as f:
        f.write(text)
    return path


def write_html(results, path, *, base_dir=None):
    """Writes the report as one self-contained HTML file.

    The same sections and numbers as `write_markdown`, with each standard
    error set under its mean so a ten-column table fits the page; each
    figure is embedded as a base64 `data:` URI and the style is inline, so
    the file needs nothing beside it. A figure that is missing or not a PNG is
    replaced by a short note. Written through a temporary file, as
    `write_markdown`.

    Args:
        results: the dict of results.json.
        path: where to write the `.html` file.
        base_dir: the folder the figure paths are relative to. Defaults to
            the folder of `path`.

    Returns:
        `path`.

    Example:

    ```python
    write_html(results, "report.html", base_dir="out")
    ```
    """
    validate(results)
    base_dir = os.path.dirname(os.path.abspath(path)) if base_dir is None else base_dir
    text = render.page(sections.document(results, base_dir), sections.title(results))
    with _files.atomic_write(path, encoding="utf-8") as f:
        f.write(text)
    return path


def write_report(results, out_dir):
    """Writes `report.md` and `report.html` for a `keras-interp compare` run.

    Draws `metrics_over_epochs.png` into `out_dir` first when the histories
    hold metrics and `results["figures"]` has no such figure yet; the
    figure is added to a copy of `results`, never to the caller's dict.

    Args:
        results: the dict of results.json.
        out_dir: the run's output folder; figure paths are relative to it.

    Returns:
        `(markdown path, html path)`.

    Example:

    ```python
    md, page = write_report(json.load(open("out/results.json")), "out")
    ```
    """
    validate(results)
    results = copy.deepcopy(results)
    os.makedirs(out_dir, exist_ok=True)
    figures = dict(results.get("figures") or {})
    if "metrics_over_epochs" not in figures:
        name = "metrics_over_epochs.png"
        if metrics_over_epochs_figure(results, os.path.join(out_dir, name)) is not None:
            figures["metrics_over_epochs"] = name
    results["figures"] = figures
    return (
        write_markdown(results, os.path.join(out_dir, "report.md"), base_dir=out_dir),
        write_html(results, os.path.join(out_dir, "report.html"), base_dir=out_dir),
    )
