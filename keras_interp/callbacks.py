"""Callbacks that watch explanation quality while a model trains.

`ExplanationStabilityMonitor` writes explanation metrics into the epoch
`logs`, where `History`, `CSVLogger`, `EarlyStopping` and `TensorBoard`
read them (NsLoss paper, Figure 4, plots this history);
`AttributionSnapshot` saves the attribution maps of a few probe images as
PNG grids (and TensorBoard images, through `keras_interp.backend`).
Both explain the model being trained, unwrapping a `RegularizedModel` so
that a final softmax of the wrapped model is bypassed as it is for a plain
model.
"""

import functools
import inspect
import io
import os
import time
import warnings

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import attribution
from keras_interp import backend
from keras_interp import metrics as metrics_lib
from keras_interp.metrics import _base
from keras_interp.model import RegularizedModel

# Metrics of `keras_interp.metrics` the monitor computes by name: those
# that score one model's explanations (the map-vs-map similarity metrics
# need a second map and are not among them).
METRIC_NAMES = metrics_lib.PAPER_METRICS

# The monitor runs every epoch, so its Monte-Carlo metrics start from far
# fewer samples than the paper-table defaults (200 noisy copies, 100
# subsets); `metric_kwargs` overrides them.
CHEAP_METRIC_KWARGS = {
    "max_sensitivity": {"num_samples": 10},
    "avg_sensitivity": {"num_samples": 10},
    "local_lipschitz_estimate": {"num_samples": 10},
    "faithfulness_correlation": {"num_runs": 20},
}


def explained_model(model):
    """The model whose explanations a callback computes.

    A `RegularizedModel` forwards `call` to the model it wraps, but its own
    `layers` end in that whole model, so attribution could not see (and
    bypass) a final softmax: the wrapped model is explained instead, with
    the same weights.
    """
    while isinstance(model, RegularizedModel):
        model = model.model
    return model


def _accepts(fn, name):
    """Whether `fn` takes a keyword argument `name` (False when unknown)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _bound_explainer(explain, explain_kwargs, seed):
    """`explain` resolved by name, with its options and a fixed seed bound.

    The seed is bound (unless `explain_kwargs` sets one) so a random method
    such as SmoothGrad draws the same noise every epoch: a change of the
    logged value then comes from training, not from resampling.
    """
    method = attribution.get(explain)
    if explain_kwargs is None:
        explain_kwargs = {}
    if not isinstance(explain_kwargs, dict):
        raise ValueError(
            "`explain_kwargs` must be a dict of keyword arguments for the "
            f"attribution method. Received: explain_kwargs={explain_kwargs!r}"
        )
    kwargs = dict(explain_kwargs)
    if seed is not None and "seed" not in kwargs and _accepts(method, "seed"):
        kwargs["seed"] = seed
    return functools.partial(method, **kwargs) if kwargs else method


def _method_name(explain):
    return explain if isinstance(explain, str) else getattr(explain, "__name__", "attribution")


def _check_every(every):
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"`every` must be an integer >= 1. Received: every={every!r}")
    return int(every)


def _due(epoch, every):
    """Whether the 0-based `epoch` is one of every `every`-th (1-based) epochs."""
    return (epoch + 1) % every == 0


class ExplanationStabilityMonitor(keras.callbacks.Callback):
    """Writes explanation-quality metrics of a probe batch into the epoch logs.

    At the end of every `every`-th epoch (epochs `every`, `2 * every`, ...,
    counted from 1) the chosen metrics are computed on the fixed probe batch
    `(x, y)` with the attribution method `explain`, and the mean score over
    the probe examples (NaN scores left out, as in
    `keras_interp.metrics.evaluate`) is written to `logs[prefix + name]`.
    `History`, `CSVLogger`, `EarlyStopping(monitor=...)` and `TensorBoard`
    read these logs: list the monitor before them in `callbacks`, since
    Keras calls callbacks in order with one shared `logs` dict (`History`
    is always called last).

    On the epochs in between, the keys are left out of `logs` rather than
    repeating the last value: a repeated value would count as "no
    improvement" for `EarlyStopping`. So `history.history[name]` has one
    entry per computed epoch; `monitor.epochs` lists those epochs (0-based,
    as `history.epoch`) and `monitor.history[name]` their values, for plots
    of metrics over epochs (NsLoss paper, Figure 4). `EarlyStopping` warns
    on epochs without the key; use `every=1` with it.

    The scores are reproducible from epoch to epoch: `seed` is passed to
    every Monte-Carlo metric and to the attribution method (when it takes
    one), so each epoch draws the same noise and the curve moves only
    because the model does.

    Cost: per computed epoch, the sensitivity metrics explain
    `len(x) * (1 + num_samples)` inputs, and each explanation with
    Integrated Gradients costs `steps` gradient rows (50 by default). The
    monitor therefore lowers the sample counts of the paper-table defaults
    (200 noisy copies for the sensitivity metrics, 100 subsets for
    faithfulness correlation) to those of `CHEAP_METRIC_KWARGS` (10 and
    20); pass `metric_kwargs` for the papers' settings, and
    `explain_kwargs={"steps": 16}` or a smaller probe batch to go faster.

    Args:
        x: float inputs `[B, ...]`, the probe batch (a few dozen examples
            are plenty).
        y: int labels `[B]`, the class explained for each example.
        explain: an attribution method `explain(model, x, target)` or its
            name (see `keras_interp.attribution.get`). Defaults to
            `"integrated_gradients"`.
        metrics: names from `METRIC_NAMES` (the seven metrics of
            `keras_interp.metrics.PAPER_METRICS`), or callables
            `fn(model, x, y, explain, **kwargs)` that return one score per
            example (or one number) and carry a boolean attribute
            `higher_is_better`; their log key is `fn.__name__`. A callable
            that takes `seed` receives `seed`. Defaults to
            `("max_sensitivity",)`.
        every: compute after every `every` epochs. Defaults to 1.
        metric_kwargs: per-metric keyword arguments
            `{name: {argument: value}}`, applied over
            `CHEAP_METRIC_KWARGS` (e.g. `{"max_sensitivity":
            {"num_samples": 50, "batch_size": 128}}`).
        explain_kwargs: keyword arguments of the attribution method (e.g.
            `{"steps": 16}` for Integrated Gradients).
        prefix: prepended to each log key (e.g. `"expl_"`). Defaults to "".
        seed: seed of the metrics' and the method's noise, the same every
            epoch. Defaults to 0; None draws fresh noise each epoch.
        verbose: 1 prints the values and the time taken after each computed
            epoch, 0 is silent.

    Attributes:
        higher_is_better: dict `{log key: bool}`, each metric's direction.
        epochs: the 0-based epochs at which the metrics were computed.
        history: dict `{log key: [value per computed epoch]}`.

    Example:

    ```python
    monitor = keras_interp.callbacks.ExplanationStabilityMonitor(
        x_test[:32], y_test[:32], "integrated_gradients",
        metrics=("max_sensitivity", "sparseness"),
        explain_kwargs={"steps": 16},
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="max_sensitivity", mode=monitor.mode("max_sensitivity"), patience=2
    )
    history = model.fit(x, y, epochs=10, callbacks=[monitor, stop])
    history.history["max_sensitivity"]
    ```
    """

    def __init__(
        self,
        x,
        y,
        explain="integrated_gradients",
        metrics=("max_sensitivity",),
        every=1,
        metric_kwargs=None,
        explain_kwargs=None,
        prefix="",
        verbose=0,
        seed=0,
    ):
        super().__init__()
        self.x = _checks.floating_input(x)
        self.y = _base.labels(y, self.x.shape[0])
        self.every = _check_every(every)
        if not isinstance(prefix, str):
            raise ValueError(f"`prefix` must be a string. Received: prefix={prefix!r}")
        if verbose not in (0, 1):
            raise ValueError(f"`verbose` must be 0 or 1. Received: verbose={verbose!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        self.prefix = prefix
        self.verbose = verbose
        self.seed = None if seed is None else int(seed)
        self.explain = _bound_explainer(explain, explain_kwargs, self.seed)

        if isinstance(metrics, (str,)) or callable(metrics):
            metrics = (metrics,)
        metrics = tuple(metrics)
        if not metrics:
            raise ValueError("`metrics` must name at least one metric. Received: metrics=()")
        self._named = []  # metric names computed together by `metrics.evaluate`
        self._custom = {}  # metric name -> callable
        self.higher_is_better = {}
        for m in metrics:
            name, direction = self._add_metric(m)
            key = prefix + name
            if key in self.higher_is_better:
                raise ValueError(
                    f"`metrics` must not repeat a metric. Received: metrics with "
                    f"{name!r} twice"
                )
            self.higher_is_better[key] = direction

        metric_kwargs = {} if metric_kwargs is None else metric_kwargs
        if not isinstance(metric_kwargs, dict):
            raise ValueError(
                "`metric_kwargs` must be a dict `{metric name: {argument: "
                f"value}}`. Received: metric_kwargs={metric_kwargs!r}"
            )
        chosen = set(self._named) | set(self._custom)
        for name, kwargs in metric_kwargs.items():
            if name not in chosen or not isinstance(kwargs, dict):
                raise ValueError(
                    "`metric_kwargs` must map a chosen metric's name to a dict "
                    f"of its arguments. Chosen metrics: {sorted(chosen)}. "
                    f"Received: metric_kwargs={metric_kwargs!r}"
                )
        self.metric_kwargs = {
            name: {**CHEAP_METRIC_KWARGS.get(name, {}), **metric_kwargs.get(name, {})}
            for name in chosen
        }
        self.epochs = []
        self.history = {key: [] for key in self.higher_is_better}

    def _add_metric(self, m):
        """Registers one entry of `metrics`; returns `(name, higher_is_better)`."""
        if isinstance(m, str):
            if m not in METRIC_NAMES:
                raise ValueError(
                    f"Unknown metric. Expected a name from {METRIC_NAMES} or a "
                    f"callable carrying `higher_is_better`. Received: metric={m!r}"
                )
            self._named.append(m)
            return m, bool(getattr(metrics_lib, m).higher_is_better)
        direction = getattr(m, "higher_is_better", None)
        if not callable(m) or not isinstance(direction, (bool, np.bool_)):
            raise ValueError(
                "Each metric must be a name from keras_interp.metrics or a "
                "callable with a boolean attribute `higher_is_better`. "
                f"Received: metric={m!r}"
            )
        name = getattr(m, "__name__", None)
        if name in METRIC_NAMES and getattr(metrics_lib, name) is m:
            # A keras_interp metric passed as a function: it is called the
            # way `evaluate` calls it (some take attributions, not `explain`).
            self._named.append(name)
            return name, bool(direction)
        if not name or name == "<lambda>":
            raise ValueError(
                "A metric callable needs a `__name__` to serve as its log key "
                f"(define it with `def`). Received: metric={m!r}"
            )
        self._custom[name] = m
        return name, bool(direction)

    def mode(self, name):
        """The `EarlyStopping`/`ModelCheckpoint` mode of the metric logged as `name`.

        Args:
            name: a log key of this monitor (with its `prefix`).

        Returns:
            `"max"` when higher is better, else `"min"`.
        """
        if name not in self.higher_is_better:
            raise ValueError(
                f"`name` must be one of this monitor's log keys "
                f"{sorted(self.higher_is_better)}. Received: name={name!r}"
            )
        return "max" if self.higher_is_better[name] else "min"

    def compute(self, model=None):
        """The metrics' mean scores on the probe batch, now.

        Args:
            model: the model to explain. Defaults to the model being trained.

        Returns:
            A dict `{log key: float}`.
        """
        model = explained_model(self.model if model is None else model)
        values = {}
        if self._named:
            options = {name: self.metric_kwargs[name] for name in self._named}
            table = metrics_lib.evaluate(
                model,
                self.x,
                self.y,
                self.explain,
                metrics=self._named,
                seed=self.seed,
                verbose=0,
                **options,
            )
            for name in self._named:
                values[self.prefix + name] = float(table[name]["mean"])
        for name, fn in self._custom.items():
            kwargs = dict(self.metric_kwargs[name])
            if self.seed is not None and "seed" not in kwargs and _accepts(fn, "seed"):
                kwargs["seed"] = self.seed
            scores = np.asarray(
                keras.ops.convert_to_numpy(fn(model, self.x, self.y, self.explain, **kwargs)),
                dtype="float64",
            )
            finite = scores[np.isfinite(scores)]
            values[self.prefix + name] = float(finite.mean()) if finite.size else float("nan")
        # The order of `metrics`, as the user listed them.
        return {key: values[key] for key in self.higher_is_better}

    def on_epoch_end(self, epoch, logs=None):
        if not _due(epoch, self.every):
            return
        start = time.perf_counter()
        values = self.compute()
        if logs is not None:
            logs.update(values)
        self.epochs.append(epoch)
        for key, value in values.items():
            self.history[key].append(value)
        if self.verbose:
            shown = " - ".join(f"{k}: {v:.4g}" for k, v in values.items())
            print(f"Epoch {epoch + 1}: {shown} ({time.perf_counter() - start:.1f}s)")


class AttributionSnapshot(keras.callbacks.Callback):
    """Saves the attribution maps of probe images every few epochs.

    At the end of every `every`-th epoch (counted from 1) the probe images
    `x` are explained with `explain` and drawn with
    `keras_interp.report.attribution_figure`: one row per image, the input
    then its map (summed over channels, red positive, blue negative, white
    zero). The figure is written as a PNG to `path` and, with `log_dir`, as
    a TensorBoard image summary (tag `"attributions/<method>"`, step = the
    0-based epoch) through `keras_interp.backend.image_summary`, which uses
    TensorFlow's `tf.summary` on any Keras backend when TensorFlow is
    installed. Without it a warning is given once and only PNGs are written.

    A PNG is `1.8 * 2 * dpi` pixels wide and `1.8 * len(x) * dpi` high.

    Args:
        x: float probe images `[N, H, W, C]` (or `[N, H, W]`); a handful.
        explain: an attribution method `explain(model, x, target)` or its
            name. Defaults to `"vanilla_gradient"`.
        path: PNG file path, formatted with the 1-based `epoch` as
            `keras.callbacks.ModelCheckpoint` does, e.g.
            `"snapshots/epoch_{epoch:03d}.png"`. Missing folders are made.
            A path without `{epoch}` is overwritten each time.
        log_dir: TensorBoard log folder, or None.
        every: snapshot after every `every` epochs. Defaults to 1.
        explain_kwargs: keyword arguments of the attribution method.
        y: int labels `[N]`, the class explained per image; None explains
            each image's predicted class (its label in the figure is then
            the prediction).
        seed: seed of a random method's noise, the same each epoch.
            Defaults to 0.
        dpi: PNG resolution. Defaults to 120.

    Attributes:
        paths: the PNG files written, in order.

    Example:

    ```python
    snapshot = keras_interp.callbacks.AttributionSnapshot(
        x_test[:4], "smoothgrad", path="snapshots/epoch_{epoch:03d}.png"
    )
    model.fit(x, y, epochs=5, callbacks=[snapshot])
    ```
    """

    def __init__(
        self,
        x,
        explain="vanilla_gradient",
        path=None,
        log_dir=None,
        every=1,
        explain_kwargs=None,
        *,
        y=None,
        seed=0,
        dpi=120,
    ):
        super().__init__()
        self.x = _checks.floating_input(x)
        if len(self.x.shape) not in (3, 4):
            raise ValueError(
                "`x` must be images shaped [N, H, W, C] or [N, H, W]. "
                f"Received: x.shape={tuple(self.x.shape)}"
            )
        self.y = None if y is None else _base.labels(y, self.x.shape[0])
        if path is None and log_dir is None:
            raise ValueError(
                "Pass `path` (PNG files) or `log_dir` (TensorBoard), or both. "
                "Received: path=None, log_dir=None"
            )
        for name, value in (("path", path), ("log_dir", log_dir)):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ValueError(
                    f"`{name}` must be a string or path. Received: {name}={value!r}"
                )
        if path is not None:
            try:
                os.fspath(path).format(epoch=1)
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(
                    "`path` may contain only the field `{epoch}` (e.g. "
                    f"'epoch_{{epoch:03d}}.png'). Received: path={path!r} ({e})"
                ) from None
        self.path = path
        self.log_dir = log_dir
        self.every = _check_every(every)
        self.dpi = _checks.positive_int(dpi, "dpi")
        self.method_name = _method_name(explain)
        self.explain = _bound_explainer(explain, explain_kwargs, seed)
        self.paths = []
        self._warned = False

    def on_epoch_end(self, epoch, logs=None):
        if not _due(epoch, self.every):
            return
        from keras_interp import report  # matplotlib is imported only when drawing

        model = explained_model(self.model)
        maps = keras.ops.convert_to_numpy(self.explain(model, self.x, self.y))
        if self.y is None:
            classes = np.argmax(keras.ops.convert_to_numpy(model(self.x, training=False)), axis=-1)
            labels = [f"pred {c}" for c in classes]
        else:
            labels = [f"class {c}" for c in self.y]
        images = keras.ops.convert_to_numpy(self.x)

        def draw(target):
            return report.attribution_figure(
                images, {self.method_name: maps}, target, labels=labels, dpi=self.dpi
            )

        if self.path is not None:
            path = os.fspath(self.path).format(epoch=epoch + 1)
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            draw(path)
            self.paths.append(path)
        if self.log_dir is not None:
            self._summarise(draw, epoch)

    def _summarise(self, draw, epoch):
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        draw(buffer)
        buffer.seek(0)
        # RGBA floats in [0, 1] -> one uint8 RGB image [1, H, W, 3].
        grid = (plt.imread(buffer, format="png")[..., :3] * 255).round().astype("uint8")
        if backend.image_summary(self.log_dir, f"attributions/{self.method_name}", grid[None], epoch):
            return
        if not self._warned:
            self._warned = True
            warnings.warn(
                "AttributionSnapshot writes TensorBoard images with "
                "`keras_interp.backend.image_summary`, which needs TensorFlow "
                "installed; only PNG files are written. Received: "
                f"log_dir={self.log_dir!r}",
                stacklevel=2,
            )
