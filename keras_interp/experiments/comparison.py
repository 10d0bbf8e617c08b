"""`keras-interp compare`: both papers' comparisons on one dataset, one report."""

import copy
import json
import math
import os
import sys
import time
import uuid

import keras
import numpy as np

from keras_interp import _files
from keras_interp import callbacks as callbacks_lib
from keras_interp import data as data_lib
from keras_interp import metrics as metrics_lib
from keras_interp import models as models_lib
from keras_interp import report
from keras_interp.experiments import protocol
from keras_interp.experiments.atex_paper import manipulation_table

# The metric sample counts are what moves the time: a sensitivity metric
# explains `num_samples` noisy copies of every example, each with `ig_steps`
# gradient rows.
_FIGURE4_METRICS = ("max_sensitivity", "faithfulness_estimate", "sparseness")
QUICK = {
    "epochs": 3,
    "finetune_epochs": 1,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "eval_size": 32,
    "ig_steps": 16,
    "shap_samples": 16,
    "metric_options": {
        "max_sensitivity": {"num_samples": 10},
        "avg_sensitivity": {"num_samples": 10},
        "local_lipschitz_estimate": {"num_samples": 10},
        "faithfulness_correlation": {"num_runs": 20},
    },
    "pgd": {"epsilon": 0.1, "steps": 10},
    "monitor": {"size": 16, "ig_steps": 8, "metrics": _FIGURE4_METRICS},
    "lambda_factors": (0.3, 1.0, 3.0),
    "lambda_metrics": _FIGURE4_METRICS,
    "manipulation": {"epsilons": (0.02, 0.04, 0.08), "size": 64, "steps": 50},
    "atex_train_size": 1000,
    "atex": {"smoothgrad_samples": 20},
}
FULL = {
    **QUICK,
    "epochs": 10,
    "finetune_epochs": 3,
    "eval_size": 64,
    "ig_steps": 32,
    "shap_samples": 32,
    # A quarter of Quantus' 200 noisy copies: 200 would take about four
    # hours on a 2-core CPU. Pass Quantus' counts to `protocol.evaluate_model`
    # (`metric_options={}`) where a GPU is at hand.
    "metric_options": {
        "max_sensitivity": {"num_samples": 50},
        "avg_sensitivity": {"num_samples": 50},
        "local_lipschitz_estimate": {"num_samples": 50},
    },
    "monitor": {"size": 32, "ig_steps": 16, "metrics": _FIGURE4_METRICS},
    "lambda_factors": (0.1, 0.3, 1.0, 3.0, 10.0),
    "manipulation": {"epsilons": (0.02, 0.04, 0.08), "size": 200, "steps": 50},
    "atex_train_size": None,
    "atex": {"smoothgrad_samples": 50},
}
_NUM_FIGURE_IMAGES = 4


def _positive(value, name):
    if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"`{name}` must be a positive integer or None. Received: {name}={value!r}")
    return value


def _finite(value):
    """JSON has no NaN: undefined scores (e.g. a constant map's correlation) become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _callbacks(settings, x_test, y_test, probe, seed):
    """Fresh per-run callbacks for Figure 4: test accuracy and three metrics."""
    monitor = settings["monitor"]
    return [
        protocol.TestAccuracy(x_test, y_test),
        callbacks_lib.ExplanationStabilityMonitor(
            probe[0],
            probe[1],
            protocol.explainer("integrated_gradients", ig_steps=monitor["ig_steps"]),
            metrics=monitor["metrics"],
            seed=seed,
        ),
    ]


def _merge(first, second):
    """Curves of a fine-tuned model continue its standard model's curves."""
    merged = {}
    for key in set(first) | set(second):
        merged[key] = list(first.get(key, [None] * len(first["epoch"]))) + list(
            second.get(key, [None] * len(second["epoch"]))
        )
    return merged


def compare(
    data="mnist5k",
    *,
    model="small_cnn",
    methods=protocol.METHODS,
    epochs=None,
    finetune_epochs=None,
    quick=False,
    out_dir="compare_out",
    seed=0,
    train_size=None,
    eval_size=None,
    image_size=None,
    data_dir=None,
    chunk_size=None,
    verbose=1,
):
    """Trains, fine-tunes and scores every method; writes `results.json` and a report.

    The protocol of paper 1 (§5, Tables 1-5, Figures 2-4) with paper 2's
    manipulation table (Tables 1-4), at a scale a CPU finishes:

    1. Train a standard model (`epochs`, Adam, cross-entropy).
    2. Fine-tune a copy of it with each other method for `finetune_epochs`
       (`protocol.fine_tune`, options `protocol.FINE_TUNING`). During both,
       test accuracy and three metrics of a fixed probe batch are logged
       per epoch (Figure 4).
    3. Score each model (`protocol.evaluate_model`): clean and PGD accuracy
       on the test set, paper 1's seven metrics of Integrated Gradients and
       GradientSHAP maps on the first `eval_size` test examples (Tables
       3-4).
    4. The lambda sweep (Table 5): NsLoss fine-tuned at several weights,
       when `"nsloss"` is among the methods.
    5. Explanation manipulation (paper 2): every model, smoothed with
       softplus as ATEX's B-smoothing, attacked at each epsilon.
    6. Write the maps of the first test examples (Figures 2-3), the curves
       (Figure 4), `report.md`, a self-contained `report.html` and, last,
       `out_dir/results.json`. Each file is written under a temporary name
       and then moved into place, and a results.json left by an earlier run
       is removed before the first file is written, so a folder that holds
       a results.json holds a complete run. `results["run_id"]` (UTC time
       and a random suffix, also shown in the reports) tells runs apart.

    `quick=True` takes `QUICK`'s settings (about 5 minutes on a 2-core CPU
    for mnist5k: 3 + 1 epochs, 32 examples, 10 noisy copies per
    sensitivity metric); the default takes `FULL`'s (10 + 3 epochs, 64
    examples, 50 noisy copies, 100 faithfulness subsets as Quantus).

    Args:
        data: a name or folder for `keras_interp.data.load`. Defaults to the
            embedded `"mnist5k"`.
        model: `"small_cnn"`, `"preresnet10"` or `"vgg19"`.
        methods: names from `protocol.METHODS`; `"standard"` is always
            trained (the others start from it) and is reported when listed.
        epochs: standard training epochs, over the settings'.
        finetune_epochs: each method's fine-tuning epochs, over the
            settings'.
        quick: the small settings. Defaults to False.
        out_dir: output folder, created if missing. It must be writable:
            this is checked before any data is loaded.
        seed: seed of the split, training, attacks and metrics.
        train_size: use only this many training examples.
        eval_size: explain this many test examples, over the settings'.
        image_size: resize images to `(image_size, image_size)` (image
            datasets).
        data_dir: where tensorflow-datasets data is prepared.
        chunk_size: NsLoss's perturbed copies per forward pass (see
            `regularizers.NeuronSensitivity`), for large images. Defaults
            to None: one pass of the batch and all its copies.
        verbose: 1 prints progress bars and one line per stage.

    Returns:
        The results dict written to `results.json` (schema version 1; see
        `docs/reproduce.md`).

    Example:

    ```python
    results = keras_interp.experiments.compare(quick=True, out_dir="out")
    results["results"]["nsloss"]["metrics"]["integrated_gradients"]["sparseness"]["mean"]
    ```
    """
    start = time.perf_counter()
    # Unique per run even when two start in the same second.
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
    methods = tuple(methods)
    unknown = [m for m in methods if m not in protocol.METHODS]
    if not methods or unknown or len(set(methods)) != len(methods):
        raise ValueError(
            f"`methods` must be distinct names from {protocol.METHODS}. Received: methods={methods}"
        )
    for name, value in [("epochs", epochs), ("finetune_epochs", finetune_epochs),
                        ("train_size", train_size), ("eval_size", eval_size), ("chunk_size", chunk_size)]:
        _positive(value, name)
    nsloss_options = {} if chunk_size is None else {"chunk_size": chunk_size}
    settings = copy.deepcopy(QUICK if quick else FULL)
    settings["epochs"] = epochs or settings["epochs"]
    settings["finetune_epochs"] = finetune_epochs or settings["finetune_epochs"]
    settings["eval_size"] = eval_size or settings["eval_size"]
    say = print if verbose else (lambda *a, **k: None)
    # Live progress bars in a terminal; one line per epoch in a log file.
    live = bool(verbose) and sys.stdout.isatty()
    fit_verbose = (1 if live else 2) if verbose else 0
    _files.ensure_writable_folder(out_dir, name="out_dir")
    timings = {}

    t = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = data_lib.load(
        data, seed=seed, data_dir=data_dir, image_size=image_size
    )
    if train_size:
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    n_eval = min(settings["eval_size"], len(x_test))
    x_eval, y_eval = x_test[:n_eval], y_test[:n_eval]
    probe_size = min(settings["monitor"]["size"], len(x_test))
    probe = (x_test[:probe_size], y_test[:probe_size])
    timings["data"] = time.perf_counter() - t
    say(
        f"[data] {data}: {len(x_train)} train, {len(x_test)} test, {n_eval} explained, "
        f"shape {tuple(x_train.shape[1:])}, {num_classes} classes"
    )

    trained, histories, configs, train_seconds = {}, {}, {}, {}
    t = time.perf_counter()
    keras.utils.set_random_seed(seed)
    standard = protocol.build_model(model, x_train.shape[1:], num_classes)
    histories["standard"] = protocol.train_standard(
        standard, x_train, y_train,
        epochs=settings["epochs"], batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        callbacks=_callbacks(settings, x_test, y_test, probe, seed),
        seed=seed, verbose=fit_verbose,
    )
    trained["standard"] = standard
    train_seconds["standard"] = time.perf_counter() - t
    configs["standard"] = {"epochs": settings["epochs"], "learning_rate": settings["learning_rate"],
                           "batch_size": settings["batch_size"]}
    say(f"[train] standard, {settings['epochs']} epochs in {train_seconds['standard']:.1f}s: "
        f"test accuracy {histories['standard']['test_accuracy'][-1]:.4f}")

    for method in methods:
        if method == "standard":
            continue
        t = time.perf_counter()
        options = {"atex": settings["atex"], "nsloss": nsloss_options}.get(method, {})
        options = dict(options)
        x_fit, y_fit = x_train, y_train
        if method == "atex" and settings["atex_train_size"]:
            x_fit, y_fit = x_train[: settings["atex_train_size"]], y_train[: settings["atex_train_size"]]
        trained[method], history = protocol.fine_tune(
            standard, method, x_fit, y_fit,
            epochs=settings["finetune_epochs"], batch_size=settings["batch_size"],
            learning_rate=settings["learning_rate"],
            callbacks=_callbacks(settings, x_test, y_test, probe, seed),
            seed=seed, start_epoch=settings["epochs"], verbose=fit_verbose, **options,
        )
        histories[method] = _merge(histories["standard"], history)
        train_seconds[method] = time.perf_counter() - t
        configs[method] = {
            "starts_from": "standard",
            "epochs": settings["finetune_epochs"],
            "learning_rate": settings["learning_rate"],
            "batch_size": settings["batch_size"],
            **protocol.FINE_TUNING[method],
            **options,
            **({"train_size": len(x_fit)} if method == "atex" else {}),
        }
        say(f"[fine-tune] {method}, {settings['finetune_epochs']} epochs in {train_seconds[method]:.1f}s: "
            f"test accuracy {history['test_accuracy'][-1]:.4f}")
    timings["train"] = sum(train_seconds.values())

    t = time.perf_counter()
    results = {}
    evaluation = dict(
        ig_steps=settings["ig_steps"], shap_samples=settings["shap_samples"],
        metric_options=settings["metric_options"], robust=(x_test, y_test),
        pgd_epsilon=settings["pgd"]["epsilon"], pgd_steps=settings["pgd"]["steps"], seed=seed,
    )
    higher_is_better = {"clean_accuracy": True, "robust_accuracy": True, "test_accuracy": True}
    for method in methods:
        s = time.perf_counter()
        scores = protocol.evaluate_model(trained[method], x_eval, y_eval, verbose=int(live), **evaluation)
        higher_is_better.update(scores.pop("higher_is_better"))
        results[method] = {
            "label": protocol.LABELS[method],
            "config": configs[method],
            "train_seconds": round(train_seconds[method], 2),
            **scores,
            "history": histories[method],
        }
        say(f"[evaluate] {method} in {time.perf_counter() - s:.1f}s: clean accuracy "
            f"{scores['clean_accuracy']:.4f}, PGD accuracy {scores['robust_accuracy']:.4f}")
    timings["evaluate"] = time.perf_counter() - t

    lambda_sweep = None
    if "nsloss" in methods:
        t = time.perf_counter()
        lambda_sweep = _lambda_sweep(standard, trained["nsloss"], x_train, y_train, x_eval, y_eval,
                                     x_test, y_test, settings, seed, say, fit_verbose, nsloss_options)
        timings["lambda_sweep"] = time.perf_counter() - t

    t = time.perf_counter()
    manipulation = _manipulation(trained, methods, x_test, y_test, settings, seed, say)
    timings["manipulation"] = time.perf_counter() - t

    # From here on the folder is rewritten: without the old run's
    # results.json it does not claim to be complete until this run's lands.
    results_path = os.path.join(out_dir, "results.json")
    if os.path.exists(results_path):
        os.remove(results_path)
    t = time.perf_counter()
    figures = {"attributions": _attribution_figure(trained, methods, x_test, y_test, settings, seed, out_dir)}
    curves = report.metrics_over_epochs_figure(
        {"methods": list(methods), "higher_is_better": {"test_accuracy": True, **higher_is_better},
         "metrics": list(metrics_lib.PAPER_METRICS), "results": results},
        os.path.join(out_dir, "metrics_over_epochs.png"),
        metrics=("test_accuracy", *settings["monitor"]["metrics"]),
    )
    if curves is not None:
        figures["metrics_over_epochs"] = os.path.basename(curves)
    timings["figures"] = time.perf_counter() - t

    document = _finite({
        "version": 1,
        "run_id": run_id,
        "backend": keras.config.backend(),
        "dataset": str(data),
        "model": model,
        "quick": bool(quick),
        "seed": seed,
        "num_train": len(x_train),
        "num_test": len(x_test),
        "num_eval": n_eval,
        "methods": list(methods),
        "explainers": list(protocol.EXPLAINERS),
        "metrics": list(metrics_lib.PAPER_METRICS),
        "higher_is_better": higher_is_better,
        "robustness": {"attack": "pgd", **settings["pgd"]},
        "results": results,
        "lambda_sweep": lambda_sweep,
        "manipulation": manipulation,
        "figures": figures,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "total_seconds": None,
    })
    document["total_seconds"] = round(time.perf_counter() - start, 2)
    md_path, html_path = report.write_report(document, out_dir)
    # Last: results.json is the mark of a finished run.
    with _files.atomic_write(results_path) as f:
        json.dump(document, f, indent=2, allow_nan=False)
    if verbose:
        print("\n" + report.comparison_markdown(document))
    say(f"\n[done] total {document['total_seconds']:.0f}s; report: {html_path} (and {md_path}, "
        f"{results_path})")
    return document


def _lambda_sweep(standard, nsloss, x_train, y_train, x_eval, y_eval, x_test, y_test, settings, seed, say,
                  fit_verbose, options):
    """Table 5: NsLoss at weights around the default; the default's model is reused."""
    base = protocol.FINE_TUNING["nsloss"]["weight"]
    rows = []
    for factor in settings["lambda_factors"]:
        weight = base * factor
        if factor == 1.0:
            model = nsloss
        else:
            model, _ = protocol.fine_tune(
                standard, "nsloss", x_train, y_train, weight=weight,
                epochs=settings["finetune_epochs"], batch_size=settings["batch_size"],
                learning_rate=settings["learning_rate"], seed=seed, verbose=fit_verbose, **options,
            )
        scores = protocol.evaluate_model(
            model, x_eval, y_eval, explainers=("integrated_gradients",),
            metrics=settings["lambda_metrics"], ig_steps=settings["ig_steps"],
            metric_options={k: v for k, v in settings["metric_options"].items()
                            if k in settings["lambda_metrics"]},
            robust=(x_test, y_test), pgd_epsilon=settings["pgd"]["epsilon"],
            pgd_steps=settings["pgd"]["steps"], seed=seed, verbose=0,
        )
        rows.append({
            "weight": weight,
            "clean_accuracy": scores["clean_accuracy"],
            "robust_accuracy": scores["robust_accuracy"],
            "metrics": scores["metrics"]["integrated_gradients"],
        })
        say(f"[lambda] NsLoss weight {weight:g}: clean accuracy {scores['clean_accuracy']:.4f}, "
            + ", ".join(f"{m} {v['mean']:.4f}" for m, v in rows[-1]["metrics"].items()))
    return {"method": "nsloss", "explainer": "integrated_gradients", "rows": rows}


def _manipulation(trained, methods, x_test, y_test, settings, seed, say):
    """Paper 2's attack on every model, smoothed with softplus as B-smoothing is."""
    beta = protocol.FINE_TUNING["atex"]["beta"]
    smooth, described = {}, {}
    for method in methods:
        label = protocol.LABELS[method]
        if method == "atex":
            smooth[label] = trained[method]
            described[label] = "ATEX student (softplus already)"
        else:
            smooth[label] = models_lib.with_softplus(trained[method], beta)
            described[label] = f"{label}, ReLU replaced by softplus(beta={beta:g})"
    options = settings["manipulation"]
    size = min(options["size"], len(x_test))
    table = manipulation_table(
        smooth, x_test[:size], y_test[:size], epsilons=options["epsilons"],
        steps=options["steps"], seed=seed,
    )
    for row in table["rows"]:
        say(f"[manipulation] eps {row['epsilon']:g}: rank correlation "
            + ", ".join(f"{k} {v:.3f}" for k, v in row["rank_correlation"].items()))
    return {**table, "models": described, "num_examples": size}


def _attribution_figure(trained, methods, x_test, y_test, settings, seed, out_dir):
    """Figures 2-3: the first test images, IG and GradientSHAP per method."""
    x = x_test[:_NUM_FIGURE_IMAGES]
    maps = {}
    for method in methods:
        model = trained[method]
        target = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
        for name, short in (("integrated_gradients", "IG"), ("gradient_shap", "GS")):
            explain = protocol.explainer(name, ig_steps=settings["ig_steps"],
                                         shap_samples=settings["shap_samples"], seed=seed)
            maps[f"{protocol.LABELS[method]}\n{short}"] = keras.ops.convert_to_numpy(explain(model, x, target))
    name = "attributions.png"
    report.attribution_figure(x, maps, os.path.join(out_dir, name),
                              labels=[f"label {int(t)}" for t in y_test[:_NUM_FIGURE_IMAGES]])
    return name
