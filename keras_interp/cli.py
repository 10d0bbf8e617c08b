"""`keras-interp` (also `python -m keras_interp`): a thin front over the library.

Each subcommand parses its flags, loads data and models, calls library
functions (`experiments.compare`; `protocol.train_standard`, `fine_tune`,
`evaluate_model`; `attacks.pgd`, `fgsm`; `experiments.manipulation_table`;
`attribution`), prints and saves. `import keras_interp` imports Keras, and
Keras reads KERAS_BACKEND once, at import: so a `--backend` other than the
one loaded runs the command again in a child process with KERAS_BACKEND
set. Bad input, from the flags or found by the library (a missing
file, an unknown dataset or method), ends as `keras-interp CMD: error: ...`
with exit code 2, never a traceback. Before any data is loaded, each command
checks that its `--out` can be written; before any training or scoring, that
a model given as input (evaluate, attack, train --init) outputs one score per
class of `--data`. Outputs are written through a
temporary file and renamed into place (`keras_interp._files`), so a killed
command leaves the previous file, never half of one.

mnist5k and image folders are always split with `data.load`'s default seed,
not `--seed`, so `train` and a later `evaluate` see the same test set.
"""

import argparse
import json
import os
import subprocess
import sys

BACKENDS = ("tensorflow", "jax", "torch")

# Which `train` flags each method takes, and the `fine_tune` option each sets.
_TRAIN_OPTIONS = {
    "standard": {},
    "continued": {},
    "nsloss": {"weight": "weight", "epsilon": "epsilon", "chunk_size": "chunk_size"},
    "jacobian": {"weight": "weight"},
    "adversarial": {"epsilon": "epsilon"},
    "atex": {"epsilon": "delta1"},
}
# `--num-samples` sets the Monte-Carlo size of these metrics.
_SAMPLED_METRICS = {
    "max_sensitivity": "num_samples",
    "avg_sensitivity": "num_samples",
    "local_lipschitz_estimate": "num_samples",
    "faithfulness_correlation": "num_runs",
}


def _number(cast, strict):
    what = ("a positive " if strict else "a non-negative ") + ("integer" if cast is int else "number")

    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not (0 < value if strict else 0 <= value) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, strict=True)
_positive_float = _number(float, strict=True)
_non_negative_float = _number(float, strict=False)


def _names(text):
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, repeated))} given more than once")
    return names


def _model_file(text):
    # Checked while parsing so a wrong path fails before keras is imported.
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text


def _suffixed(suffix):
    def check(text):
        if not text.endswith(suffix):
            raise argparse.ArgumentTypeError(f"must end with {suffix}, got {text!r}")
        return text

    return check


def _add_data(sub, default="mnist5k"):
    sub.add_argument(
        "--data",
        default=default,
        required=default is None,
        help="mnist5k (offline), mnist, fashion_mnist, imagenette or an image folder"
        + ("" if default is None else f" (default: {default})"),
    )
    sub.add_argument("--data-dir", help="folder of prepared tensorflow-datasets data")
    sub.add_argument("--image-size", type=_positive_int, help="resize images to N x N")


def _add_chunk_size(sub):
    sub.add_argument(
        "--chunk-size",
        type=_positive_int,
        metavar="K",
        help="NsLoss: run the perturbed copies K at a time, recomputed in the "
        "backward pass, to bound memory on large images (default: all in one pass)",
    )


def _add_seed(sub):
    sub.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def _add_quiet(sub):
    sub.add_argument("--quiet", action="store_true", help="no progress output")


def _parsers():
    parser = argparse.ArgumentParser(
        prog="keras-interp",
        description="Train Keras models for interpretability and measure it.",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend; without it KERAS_BACKEND from the environment applies",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub = commands.add_parser("compare", help="the papers' comparison tables on one dataset")
    _add_data(sub)
    sub.add_argument("--model", default="small_cnn", help="small_cnn, preresnet10 or vgg19 (default: small_cnn)")
    sub.add_argument(
        "--methods",
        type=_names,
        help="comma-separated training methods (default: all of "
        "standard,continued,nsloss,jacobian,adversarial,atex)",
    )
    sub.add_argument("--epochs", type=_positive_int, help="standard training epochs")
    sub.add_argument("--finetune-epochs", type=_positive_int, help="fine-tuning epochs per method")
    sub.add_argument("--quick", action="store_true", help="a small, fast run")
    sub.add_argument("--train-size", type=_positive_int, help="training examples used")
    sub.add_argument("--eval-size", type=_positive_int, help="test examples whose explanations are scored")
    sub.add_argument("--out", default="compare_out", help="output folder (default: compare_out)")
    _add_chunk_size(sub)
    _add_seed(sub)
    _add_quiet(sub)
    sub.set_defaults(run=_compare)

    sub = commands.add_parser("train", help="train or fine-tune a model with one method")
    _add_data(sub, default=None)
    sub.add_argument("--model", help="architecture, unless --init gives one (default: small_cnn)")
    sub.add_argument(
        "--method", default="standard", help="standard (from scratch), or continued, nsloss, jacobian, adversarial, atex "
        "(fine-tuning --init, or a standard model trained first) (default: standard)"
    )
    sub.add_argument("--init", type=_model_file, metavar="MODEL.keras", help="start from this trained model")
    sub.add_argument("--epochs", type=_positive_int, default=3, help="epochs of --method (default: 3)")
    sub.add_argument(
        "--standard-epochs",
        type=_positive_int,
        help="standard epochs before another --method when there is no --init (default: 3)",
    )
    sub.add_argument("--batch-size", type=_positive_int, default=64, help="default: 64")
    sub.add_argument("--learning-rate", type=_positive_float, default=1e-3, help="Adam's (default: 1e-3)")
    sub.add_argument("--weight", type=_non_negative_float, help="regulariser weight (nsloss, jacobian)")
    sub.add_argument(
        "--epsilon",
        type=_positive_float,
        help="NsLoss sphere radius, PGD epsilon (adversarial) or Delta1 (atex)",
    )
    sub.add_argument("--train-size", type=_positive_int, help="use the first N training examples")
    _add_chunk_size(sub)
    _add_seed(sub)
    sub.add_argument("--out", required=True, type=_suffixed(".keras"), metavar="MODEL.keras")
    _add_quiet(sub)
    sub.set_defaults(run=_train)

    sub = commands.add_parser("evaluate", help="accuracy, PGD accuracy and explanation metrics")
    sub.add_argument("model", type=_model_file, metavar="MODEL.keras")
    _add_data(sub)
    sub.add_argument(
        "--explainers", type=_names, help="attribution methods (default: integrated_gradients,gradient_shap)"
    )
    sub.add_argument("--metrics", type=_names, help="metric names (default: the NsLoss paper's seven)")
    sub.add_argument("--eval-size", type=_positive_int, default=32, help="test examples explained (default: 32)")
    sub.add_argument("--num-samples", type=_positive_int, help="samples of the Monte-Carlo metrics")
    sub.add_argument("--ig-steps", type=_positive_int, default=50, help="Integrated Gradients steps (default: 50)")
    sub.add_argument(
        "--robust-size",
        type=_positive_int,
        help="test examples for clean and PGD accuracy (default: the whole test set)",
    )
    sub.add_argument("--pgd-epsilon", type=_positive_float, default=0.1, help="default: 0.1")
    _add_seed(sub)
    sub.add_argument("--out", metavar="RESULTS.json", help="also write the results as JSON")
    _add_quiet(sub)
    sub.set_defaults(run=_evaluate)

    sub = commands.add_parser("attack", help="attack predictions (pgd, fgsm) or explanations")
    sub.add_argument("model", type=_model_file, metavar="MODEL.keras")
    _add_data(sub)
    sub.add_argument("--kind", required=True, choices=("pgd", "fgsm", "manipulate"))
    sub.add_argument("--epsilon", type=_positive_float, default=0.1, help="L-inf budget (default: 0.1)")
    sub.add_argument("--steps", type=_positive_int, help="attack steps (default: the attack's own)")
    sub.add_argument("--mode", choices=("untargeted", "targeted"), help="manipulate only (default: untargeted)")
    sub.add_argument("--eval-size", type=_positive_int, default=256, help="test examples attacked (default: 256)")
    _add_seed(sub)
    sub.add_argument("--out", metavar="RESULT.json", help="also write the result as JSON")
    sub.set_defaults(run=_attack)

    sub = commands.add_parser("explain", help="draw attribution maps of the first test images")
    sub.add_argument("model", type=_model_file, metavar="MODEL.keras")
    _add_data(sub)
    sub.add_argument(
        "--method", type=_names, default=("integrated_gradients",), help="attribution methods, comma-separated"
    )
    sub.add_argument("--num-images", type=_positive_int, default=8, help="default: 8")
    _add_seed(sub)
    sub.add_argument("--out", required=True, type=_suffixed(".png"), metavar="MAPS.png")
    sub.add_argument("--save-arrays", action="store_true", help="also write the maps to MAPS.npz")
    sub.set_defaults(run=_explain)

    return parser, commands


def _check_names(flag, names, known, expected="some of"):
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"argument {flag}: unknown {unknown[0]!r}; expected {expected} {', '.join(known)}")


def _load_data(args, max_examples=None):
    from keras_interp import data

    return data.load(
        args.data,
        data_dir=args.data_dir,
        image_size=args.image_size,
        max_examples=max_examples,
        return_class_names=True,
    )


def _load_model(path):
    import keras

    try:
        return keras.saving.load_model(path)
    except Exception as e:
        # The file is input: whatever it holds (no zip, a config naming a
        # module or layer that is not there, weights that do not fit), Keras
        # fails in its own way, with any exception type. Each means the same
        # to the user. Keras says "File not found" for a file that is there
        # but no model.
        raise ValueError(
            f"Could not load a Keras model from {path!r}; expected a file written by "
            f"`model.save('MODEL.keras')`. ({type(e).__name__}: {e})"
        ) from None


def _check_out(path, folder=False):
    """Fails unless the output `path` (a folder if `folder`) can be written.

    Called before any data is loaded or model trained, so a bad `--out`
    costs nothing. Creates the folder if it is missing.
    """
    from keras_interp import _files

    if not folder and os.path.isdir(path):
        raise ValueError(f"argument --out: {path!r} is a folder; expected the path of a file to write")
    try:
        _files.ensure_writable_folder(path if folder else os.path.dirname(path), name="--out", received=path)
    except ValueError as e:
        raise ValueError(f"argument --out: {e}") from None


def _check_classes(model, path, args, class_names):
    """Fails unless `model` outputs one score per class of the loaded data."""
    try:
        outputs = model.output_shape[-1]
    except (AttributeError, IndexError, TypeError, ValueError):
        # A model without a single symbolic output has no count to compare.
        return
    if isinstance(outputs, int) and outputs != len(class_names):
        raise ValueError(
            f"The model {path!r} has {outputs} output classes but --data {args.data} has "
            f"{len(class_names)}. Expected a model trained on data with the same classes. "
            f"Received: model classes={outputs}, data classes={len(class_names)}"
        )


def _write_json(path, obj):
    from keras_interp import _files

    with _files.atomic_write(path) as f:
        json.dump(obj, f, indent=2)


def _compare(args):
    from keras_interp import experiments
    from keras_interp.experiments import protocol

    methods = args.methods or protocol.METHODS
    _check_names("--methods", methods, protocol.METHODS)
    _check_out(args.out, folder=True)
    experiments.compare(
        data=args.data,
        model=args.model,
        methods=tuple(methods),
        epochs=args.epochs,
        finetune_epochs=args.finetune_epochs,
        quick=args.quick,
        out_dir=args.out,
        seed=args.seed,
        train_size=args.train_size,
        eval_size=args.eval_size,
        image_size=args.image_size,
        data_dir=args.data_dir,
        chunk_size=args.chunk_size,
        verbose=0 if args.quiet else 1,
    )
    print(f"report: {os.path.join(args.out, 'report.html')} (also report.md, results.json)")


def _final(stage, history):
    logs = ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.items() if k != "epoch" and v)
    return f"[{stage}] epoch {history['epoch'][-1] + 1}: {logs}"


def _train(args):
    from keras_interp.experiments import protocol

    _check_names("--method", (args.method,), protocol.METHODS, expected="one of")
    if args.init is not None and args.model is not None:
        raise ValueError(f"argument --model: the architecture comes from --init {args.init}")
    if args.init is not None and args.method == "standard":
        raise ValueError("argument --method: standard trains from scratch; continue --init with --method continued")
    if args.standard_epochs is not None and (args.init is not None or args.method == "standard"):
        raise ValueError("argument --standard-epochs: only for another --method without --init")
    flags = _TRAIN_OPTIONS[args.method]
    options = {}
    for flag in ("weight", "epsilon", "chunk_size"):
        value = getattr(args, flag)
        if value is not None and flag not in flags:
            valid = ", ".join("--" + f.replace("_", "-") for f in flags) or "no option"
            raise ValueError(
                f"argument --{flag.replace('_', '-')}: not used by --method {args.method} (it takes {valid})"
            )
        if value is not None:
            options[flags[flag]] = value
    _check_out(args.out)

    (x, y), (x_test, y_test), class_names = _load_data(args)
    if args.train_size is not None:
        x, y = x[: args.train_size], y[: args.train_size]
    fit = dict(
        batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed, verbose=0 if args.quiet else 1
    )
    start_epoch = 0
    if args.init is not None:
        model = _load_model(args.init)
        _check_classes(model, args.init, args, class_names)
    else:
        model = protocol.build_model(args.model or "small_cnn", x.shape[1:], len(class_names))
        epochs = args.epochs if args.method == "standard" else args.standard_epochs or 3
        print(_final("standard", protocol.train_standard(model, x, y, epochs=epochs, **fit)))
        start_epoch = epochs
    if args.method != "standard":
        model, history = protocol.fine_tune(
            model, args.method, x, y, epochs=args.epochs, start_epoch=start_epoch, **fit, **options
        )
        print(_final(args.method, history))
    print(f"test accuracy: {protocol.accuracy(model, x_test, y_test):.4f} ({len(x_test)} examples)")
    from keras_interp import _files

    with _files.atomic_path(args.out) as tmp:
        model.save(tmp)
    print(f"saved: {args.out}")


def _table(result):
    explainers = list(result["metrics"])
    rows = [["metric", *explainers]]
    for metric, higher in result["higher_is_better"].items():
        cells = [f"{metric} {'↑' if higher else '↓'}"]
        for name in explainers:
            score = result["metrics"][name][metric]
            cells.append(f"{score['mean']:.4g} ± {score['sem']:.2g}")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def _evaluate(args):
    from keras_interp.experiments import protocol
    from keras_interp.metrics import PAPER_METRICS

    metrics = args.metrics or PAPER_METRICS
    _check_names("--metrics", metrics, PAPER_METRICS)
    explainers = args.explainers or protocol.EXPLAINERS
    for name in explainers:
        try:
            protocol.explainer(name)
        except ValueError as e:
            raise ValueError(f"argument --explainers: {e}") from None
    options = {}
    if args.num_samples is not None:
        options = {m: {_SAMPLED_METRICS[m]: args.num_samples} for m in metrics if m in _SAMPLED_METRICS}

    if args.out:
        _check_out(args.out)

    model = _load_model(args.model)
    _, (x_test, y_test), class_names = _load_data(args)
    _check_classes(model, args.model, args, class_names)
    x_robust, y_robust = x_test[: args.robust_size], y_test[: args.robust_size]
    result = protocol.evaluate_model(
        model,
        x_test[: args.eval_size],
        y_test[: args.eval_size],
        explainers=explainers,
        metrics=metrics,
        metric_options=options,
        ig_steps=args.ig_steps,
        robust=(x_robust, y_robust),
        pgd_epsilon=args.pgd_epsilon,
        seed=args.seed,
        verbose=0 if args.quiet else 1,
    )
    print(
        f"clean accuracy {result['clean_accuracy']:.4f}, PGD accuracy (epsilon {args.pgd_epsilon}) "
        f"{result['robust_accuracy']:.4f} on {len(x_robust)} test examples; metrics on the first "
        f"{len(x_test[: args.eval_size])} (mean ± sem)"
    )
    print(_table(result))
    if args.out:
        flags = ("model", "data", "image_size", "eval_size", "robust_size", "num_samples", "ig_steps")
        settings = {k: getattr(args, k) for k in flags + ("pgd_epsilon", "seed")}
        settings.update(explainers=list(explainers), metrics=list(metrics))
        _write_json(args.out, {**result, "settings": settings})
        print(f"saved: {args.out}")


def _attack(args):
    if args.mode is not None and args.kind != "manipulate":
        raise ValueError(f"argument --mode: only for --kind manipulate, not --kind {args.kind}")
    if args.steps is not None and args.kind == "fgsm":
        raise ValueError("argument --steps: fgsm is a single step; use --kind pgd for several")
    import keras

    from keras_interp import attacks
    from keras_interp import experiments
    from keras_interp.experiments import protocol

    if args.out:
        _check_out(args.out)

    model = _load_model(args.model)
    _, (x, y), class_names = _load_data(args, max_examples=args.eval_size)
    _check_classes(model, args.model, args, class_names)
    steps = {} if args.steps is None else {"steps": args.steps}
    result = {"kind": args.kind, "epsilon": args.epsilon, "examples": len(x), **steps}
    if args.kind == "manipulate":
        table = experiments.manipulation_table(
            {"model": model}, x, y, epsilons=(args.epsilon,), mode=args.mode or "untargeted", seed=args.seed, **steps
        )
        row = table["rows"][0]
        result.update(mode=table["mode"], top_k=table["top_k"])
        result.update({k: row[k]["model"] for k in ("accuracy", "rank_correlation", "top_k_intersection", "ssim")})
        print(
            f"{table['mode']} manipulation, epsilon {args.epsilon}, {len(x)} examples: "
            f"rank correlation {result['rank_correlation']:.4f}, top-{table['top_k']} intersection "
            f"{result['top_k_intersection']:.4f}, SSIM {result['ssim']:.4f} (accuracy {result['accuracy']:.4f})"
        )
    else:
        if args.kind == "pgd":
            x_adv = attacks.pgd(model, x, y, epsilon=args.epsilon, clip=(0.0, 1.0), seed=args.seed, **steps)
        else:
            x_adv = attacks.fgsm(model, x, y, epsilon=args.epsilon, clip=(0.0, 1.0))
        result["clean_accuracy"] = protocol.accuracy(model, x, y)
        result["adversarial_accuracy"] = protocol.accuracy(model, keras.ops.convert_to_numpy(x_adv), y)
        print(f"clean accuracy: {result['clean_accuracy']:.4f} ({len(x)} examples)")
        print(f"adversarial accuracy ({args.kind}, epsilon {args.epsilon}): {result['adversarial_accuracy']:.4f}")
    if args.out:
        _write_json(args.out, result)
        print(f"saved: {args.out}")


def _explain(args):
    import keras
    import numpy as np

    from keras_interp import report
    from keras_interp.experiments import protocol

    explainers = {}
    for name in args.method:
        try:
            explainers[name] = protocol.explainer(name, seed=args.seed)
        except ValueError as e:
            raise ValueError(f"argument --method: {e}") from None
    _check_out(args.out)

    model = _load_model(args.model)
    _, (x, y), _ = _load_data(args, max_examples=args.num_images)
    predicted = np.argmax(model.predict(x, verbose=0), axis=-1)
    maps = {name: keras.ops.convert_to_numpy(explain(model, x, predicted)) for name, explain in explainers.items()}
    labels = [f"label {label}, pred {pred}" for label, pred in zip(y, predicted)]
    print(f"saved: {report.attribution_figure(x, maps, args.out, labels=labels)}")
    if args.save_arrays:
        from keras_interp import _files

        arrays = os.path.splitext(args.out)[0] + ".npz"
        with _files.atomic_path(arrays) as tmp:
            np.savez(tmp, inputs=x, labels=y, predictions=predicted, **maps)
        print(f"saved: {arrays}")


def main(argv=None):
    """Runs `keras-interp` with `argv` (default `sys.argv[1:]`); returns 0.

    Flag errors and library errors caused by bad input exit with code 2
    through argparse (`SystemExit`), with the usage and the message.
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser, commands = _parsers()
    args = parser.parse_args(argv)
    if args.backend is not None:
        keras = sys.modules.get("keras")
        if keras is not None and keras.config.backend() != args.backend:
            child = subprocess.run(
                [sys.executable, "-m", "keras_interp", *argv],
                env={**os.environ, "KERAS_BACKEND": args.backend},
            )
            return child.returncode
        os.environ["KERAS_BACKEND"] = args.backend
    try:
        args.run(args)
    except (ValueError, TypeError, OSError) as e:
        commands.choices[args.command].error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
