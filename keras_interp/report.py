"""Figures a person reads at a glance."""

import numpy as np


def attribution_figure(images, maps, path, *, labels=None, dpi=120):
    """Saves one PNG: a row per example, its input then one map per method.

    Maps are summed over channels and drawn on a diverging colour scale
    (red positive, blue negative) that is symmetric around zero and set per
    map, so each map uses its full range and white always means zero.

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
        gray = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
        axes[i, 0].imshow(gray, cmap="gray" if gray.ndim == 2 else None)
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
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
