"""The report's figures: attribution maps, and metrics logged over epochs."""

import math
import os

import numpy as np

from keras_interp import _files
from keras_interp.report._schema import is_missing
from keras_interp.report._schema import require
from keras_interp.report.tables import heading


def attribution_figure(images, maps, path, *, labels=None, dpi=120):
    """Saves one PNG: a row per example, its input then one map per method.

    Inputs of any channel count are drawn: a 3-channel input as its RGB
    image, any other (1, 2, 4, 5, ... channels) as the mean over its
    channels in grey. Maps, of any channel count, are summed over channels
    (the signed sum, so positive and negative evidence keep their sign) and
    drawn on a diverging colour scale (red positive, blue negative) that is
    symmetric around zero and set per map, so each map uses its full range
    and white always means zero.

    Args:
        images: array `[N, H, W, C]` (or `[N, H, W]`), the inputs.
        maps: dict `{method name: array shaped like images}`, in column
            order.
        path: where to write the PNG.
        labels: optional list of N strings shown under each input.
        dpi: resolution. Defaults to 120.

    Returns:
        `path`.

    Example:

    ```python
    keras_interp.report.attribution_figure(
        x[:8], {"Integrated Gradients": ig, "GradientSHAP": shap}, "maps.png"
    )
    ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    n = len(images)
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(1.8 * cols, 1.8 * n), squeeze=False)
    for i in range(n):
        img = images[i]
        # imshow takes only 1, 3 or 4 channels, and 4 would read as RGBA:
        # only 3 channels are taken as a colour image, the rest as grey.
        if img.ndim == 3 and img.shape[-1] == 3:
            axes[i, 0].imshow(img)
        else:
            gray = img.mean(-1) if img.ndim == 3 else img
            axes[i, 0].imshow(gray, cmap="gray")
        if labels is not None:
            axes[i, 0].set_xlabel(labels[i], fontsize=8)
        for j, (name, m) in enumerate(maps.items(), start=1):
            m = np.asarray(m[i])
            m = m.sum(-1) if m.ndim == 3 else m
            lim = float(np.abs(m).max()) or 1.0
            axes[i, j].imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    _save(fig, path, dpi)
    return path


def _save(fig, path, dpi):
    """Saves `fig` to `path` through a temporary file, then closes it."""
    import matplotlib.pyplot as plt

    # The format is given, not read by matplotlib from the temporary name: a
    # `path` without an extension gets the default format, at `path` itself.
    try:
        if hasattr(path, "write"):  # a file object (TensorBoard images): nothing to replace
            fig.savefig(path, dpi=dpi, format="png")
            return
        extension = os.path.splitext(os.fspath(path))[1][1:].lower()
        with _files.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=extension or plt.rcParams["savefig.format"])
    finally:
        plt.close(fig)


def _series(history, name):
    # (epochs, values) of one method's line, or None when it has no value to
    # draw: a method that did not log a metric simply lacks that line.
    values = history.get(name) or []
    y = np.array([np.nan if is_missing(v) else float(v) for v in values])
    x = np.asarray(history.get("epoch", range(len(y))), dtype=float)
    n = min(len(x), len(y))
    if not np.isfinite(y[:n]).any():
        return None
    return x[:n], y[:n]


def _history_panels(results, metrics):
    found = []
    for method in results["methods"]:
        history = results["results"][method].get("history") or {}
        for key in history:
            if key != "epoch" and key not in found and _series(history, key) is not None:
                found.append(key)
    if metrics is not None:
        return [m for m in ([metrics] if isinstance(metrics, str) else metrics) if m in found]
    order = ["loss", *results.get("metrics", [])]
    return [m for m in order if m in found] + [m for m in found if m not in order]


def metrics_over_epochs_figure(results, path, *, metrics=None, dpi=120):
    """Saves one PNG of the metrics logged per epoch during training.

    One small panel per metric in the methods' `history` (the loss first,
    then `results["metrics"]` order), x the epoch, one line per method in a
    colour kept across panels, and one legend for the figure; a method that
    did not log a metric has no line in its panel. Each title
    carries ↑ (higher is better) or ↓ (lower is better), as NsLoss Figure 4.
    Epochs are cumulative, so a fine-tuned method continues where the
    standard model stopped.

    Args:
        results: the dict of results.json.
        path: where to write the PNG.
        metrics: optional list of history keys to draw. Defaults to every
            key found besides `"epoch"`.
        dpi: resolution. Defaults to 120.

    Returns:
        `path`, or None (nothing written) when no history holds a metric.

    Example:

    ```python
    metrics_over_epochs_figure(results, "out/metrics_over_epochs.png")
    ```
    """
    require(results, ("methods", "results"), "results")
    panels = _history_panels(results, metrics)
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    directions = results.get("higher_is_better", {})
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    height = 2.4 * rows + 0.5
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, height), squeeze=False)
    colours = plt.get_cmap("tab10")
    handles = {}
    for ax, name in zip(axes.flat, panels):
        for i, method in enumerate(results["methods"]):
            entry = results["results"][method]
            series = _series(entry.get("history") or {}, name)
            if series is None:
                continue
            (line,) = ax.plot(
                *series, marker="o", markersize=3, linewidth=1.5,
                color=colours(i % 10), label=entry.get("label", method),
            )
            handles.setdefault(i, line)
        # The loss is minimised, whatever results.json says about metrics.
        direction = directions.get(name, False if name.endswith("loss") else None)
        ax.set_title(heading(name, direction), fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        fig.delaxes(ax)
    ordered = [handles[i] for i in sorted(handles)]
    fig.legend(
        ordered, [h.get_label() for h in ordered], loc="upper center",
        ncol=max(1, min(len(ordered), 5)), frameon=False, fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height))
    _save(fig, path, dpi)
    return path
