"""The NsLoss paper's protocol (§5, Tables 1-5) as steps: train a standard
model, fine-tune copies of it with each method, score each copy.

`compare` chains these steps; the `keras-interp train` and `evaluate`
commands call them one at a time on a user's own model.
"""

import functools
import time

import keras
import numpy as np

from keras_interp import atex
from keras_interp import attacks
from keras_interp import attribution
from keras_interp import metrics as metrics_lib
from keras_interp import models as models_lib
from keras_interp import regularizers
from keras_interp.attribution._scores import predicted_classes
from keras_interp.model import RegularizedModel

METHODS = ("standard", "continued", "nsloss", "jacobian", "adversarial", "atex")
LABELS = {
    "standard": "Standard",
    "continued": "Standard, continued",
    "nsloss": "NsLoss",
    "jacobian": "Jacobian",
    "adversarial": "Adversarial (PGD)",
    "atex": "ATEX",
}
EXPLAINERS = ("integrated_gradients", "gradient_shap")

# Each method's fine-tuning options at small scale (MNIST-sized inputs in
# [0, 1], a CPU). The paper's values (Tables 1-2) are for ImageNette at
# 224x224 and 40-120 epochs; these keep its shape, not its numbers:
# - NsLoss weight 10 at epsilon 1 is about lambda_0 / 3 of the §4.4
#   protocol on small_cnn (`select_lambda` gives lambda_0 ~ 31 there).
# - PGD epsilon 0.1 (L-inf, 7 steps, as Table 1) is the usual MNIST budget.
# - ATEX: B-smoothing with beta 10, then distillation with Delta = 0.08
#   (the largest epsilon of paper 2's Table 3), Gaussian u.
# "continued" is the control: as many more epochs of plain cross-entropy,
# so a method's gain over it is the method's and not the extra training.
FINE_TUNING = {
    "continued": {},
    "nsloss": {"weight": 10.0, "epsilon": 1.0, "num_perturbations": 5, "chunk_size": None},
    "jacobian": {"weight": 0.05, "num_projections": 1},
    "adversarial": {"epsilon": 0.1, "steps": 7},
    "atex": {"beta": 10.0, "delta1": 0.08, "across": "normal", "smoothgrad_samples": 20},
}

_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _say(verbose):
    return print if verbose else (lambda *a, **k: None)


def _check_method(method):
    if method not in FINE_TUNING:
        raise ValueError(
            f"`method` must be one of {tuple(FINE_TUNING)} (a standard model comes from "
            f"`train_standard`). Received: method={method!r}"
        )


def copy_model(model):
    """A new model with `model`'s architecture and weights."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def build_model(name, input_shape, num_classes, *, activation="relu"):
    """One of `keras_interp.models`' architectures, by name, for these inputs.

    Args:
        name: `"small_cnn"`, `"preresnet10"` or `"vgg19"`.
        input_shape: one example's shape, e.g. `(28, 28, 1)`.
        num_classes: number of logits.
        activation: `"relu"` or `"softplus"`.

    Returns:
        An uncompiled Keras model with logits as outputs.
    """
    builders = {
        "small_cnn": models_lib.small_cnn,
        "preresnet10": models_lib.preresnet10,
        "vgg19": models_lib.vgg19,
    }
    if name not in builders:
        raise ValueError(f"`model` must be one of {tuple(builders)}. Received: model={name!r}")
    return builders[name](input_shape=tuple(input_shape), num_classes=int(num_classes), activation=activation)


class TestAccuracy(keras.callbacks.Callback):
    """Writes `logs["test_accuracy"]`: accuracy on held-out data after each epoch.

    Paper 1's Figure 4 plots clean test accuracy over epochs; Keras'
    `validation_data` would do the same for `fit`, but `atex.fit` trains on
    teacher logits, so the accuracy is measured here for every method alike.
    Explains the wrapped model of a `RegularizedModel`, as the monitor does.
    """

    def __init__(self, x, y, batch_size=256):
        super().__init__()
        self.x, self.y, self.batch_size = x, np.asarray(y).reshape(-1), batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["test_accuracy"] = accuracy(_base_model(self.model), self.x, self.y, self.batch_size)


def _base_model(model):
    return model.model if isinstance(model, RegularizedModel) else model


def accuracy(model, x, y, batch_size=256):
    """Share of `x` whose arg-max logit is `y`."""
    predicted = predicted_classes(model, x, batch_size)
    return float(np.mean(predicted == np.asarray(y).reshape(-1)))


def _history(history, start_epoch):
    logs = {k: [float(v) for v in values] for k, values in history.history.items()}
    epochs = len(next(iter(logs.values()))) if logs else 0
    return {"epoch": list(range(start_epoch, start_epoch + epochs)), **logs}


def train_standard(
    model,
    x,
    y,
    *,
    epochs=3,
    batch_size=64,
    learning_rate=1e-3,
    callbacks=None,
    seed=0,
    verbose=1,
):
    """Trains `model` in place with cross-entropy on logits and Adam.

    Args:
        model: a Keras classifier with logits as outputs.
        x: training inputs.
        y: int labels.
        epochs: training epochs. Defaults to 3.
        batch_size: examples per step. Defaults to 64.
        learning_rate: Adam's learning rate. Defaults to 1e-3.
        callbacks: Keras callbacks (e.g. an `ExplanationStabilityMonitor`).
        seed: seeds Keras, NumPy and Python before training.
        verbose: Keras' `fit` verbosity.

    Returns:
        The history as a plain dict, with an `"epoch"` list counted from 0.

    Example:

    ```python
    model = keras_interp.models.small_cnn()
    history = keras_interp.experiments.train_standard(model, x_train, y_train, epochs=2)
    ```
    """
    keras.utils.set_random_seed(seed)
    model.compile(keras.optimizers.Adam(learning_rate), _LOSS, metrics=["accuracy"])
    history = model.fit(
        x, y, epochs=epochs, batch_size=batch_size, callbacks=callbacks or [], verbose=verbose
    )
    return _history(history, 0)


def fine_tune(
    model,
    method,
    x,
    y,
    *,
    epochs=1,
    batch_size=64,
    learning_rate=1e-3,
    callbacks=None,
    seed=0,
    start_epoch=0,
    verbose=1,
    **options,
):
    """Continues training a copy of a trained model with one method.

    `model` itself is left untouched (paper 1 retrains copies of one
    standard model, Tables 1-2). The methods:

    - `"continued"`: more epochs of plain cross-entropy, the control.
    - `"nsloss"`: `regularizers.NeuronSensitivity(weight, epsilon,
      num_perturbations, chunk_size=chunk_size)` inside a
      `RegularizedModel`.
    - `"jacobian"`: `regularizers.JacobianNorm(weight, num_projections)`.
    - `"adversarial"`: `regularizers.AdversarialTraining(epsilon, steps)`,
      PGD in L-inf clipped to [0, 1].
    - `"atex"`: `models.with_softplus(model, beta)` is the teacher (paper
      2's B-smoothing), and `atex.fit` distils a student on `x` (the labels
      are not used). Options: `beta` and any `ATEXDataset` argument.

    Args:
        model: the trained standard model.
        method: one of `FINE_TUNING`'s keys (`METHODS` but `"standard"`).
        x: training inputs.
        y: int labels.
        epochs: fine-tuning epochs. Defaults to 1.
        batch_size: examples per step (seed instances for ATEX). Defaults
            to 64.
        learning_rate: Adam's learning rate. Defaults to 1e-3.
        callbacks: Keras callbacks.
        seed: seeds the weights' copy, the regularisers' draws and ATEX's
            samples.
        start_epoch: number of the first epoch in the returned history
            (the standard model's epoch count, so curves continue it).
        verbose: Keras' `fit` verbosity.
        **options: the method's options, over `FINE_TUNING[method]`.

    Returns:
        `(fine_tuned_model, history)`: a plain Keras model (never a
        `RegularizedModel`, so it saves and explains like any other) and
        the history as a plain dict.

    Example:

    ```python
    nsloss, history = keras_interp.experiments.fine_tune(
        standard, "nsloss", x_train, y_train, weight=10.0, epsilon=1.0
    )
    ```
    """
    _check_method(method)
    settings = {**FINE_TUNING[method], **options}
    unknown = set(options) - set(FINE_TUNING[method]) if method != "atex" else set()
    if unknown:
        raise ValueError(
            f"Unknown options for method {method!r}. Expected some of "
            f"{sorted(FINE_TUNING[method])}. Received: {sorted(unknown)}"
        )
    keras.utils.set_random_seed(seed)
    optimizer = keras.optimizers.Adam(learning_rate)
    if method == "atex":
        settings = dict(settings)
        beta = settings.pop("beta")
        teacher = models_lib.with_softplus(model, beta)
        student, history = atex.fit(
            teacher,
            x,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            callbacks=callbacks,
            seed=seed,
            verbose=verbose,
            **settings,
        )
        return student, _history(history, start_epoch)

    trained = copy_model(model)
    regularizer = {
        "continued": lambda: None,
        "nsloss": lambda: regularizers.NeuronSensitivity(**settings),
        "jacobian": lambda: regularizers.JacobianNorm(**settings),
        "adversarial": lambda: regularizers.AdversarialTraining(**settings, clip=(0.0, 1.0)),
    }[method]()
    trainer = trained if regularizer is None else RegularizedModel(trained, [regularizer], seed=seed)
    trainer.compile(optimizer, _LOSS, metrics=["accuracy"])
    history = trainer.fit(
        x, y, epochs=epochs, batch_size=batch_size, callbacks=callbacks or [], verbose=verbose
    )
    return trained, _history(history, start_epoch)


def explainer(name, *, ig_steps=50, shap_samples=50, seed=0):
    """An attribution method with the comparison's settings bound.

    Integrated Gradients with a black baseline and `ig_steps` steps;
    GradientSHAP with a black baseline, `shap_samples` samples, noise 0.1
    and `seed`. Any other name of `attribution.get` is used as it is.
    """
    if name == "integrated_gradients":
        return functools.partial(attribution.integrated_gradients, steps=ig_steps)
    if name == "gradient_shap":
        return functools.partial(attribution.gradient_shap, num_samples=shap_samples, stdev=0.1, seed=seed)
    return attribution.get(name)


def evaluate_model(
    model,
    x,
    y,
    *,
    explainers=EXPLAINERS,
    metrics=metrics_lib.PAPER_METRICS,
    metric_options=None,
    ig_steps=50,
    shap_samples=50,
    robust=(None, None),
    pgd_epsilon=0.1,
    pgd_steps=10,
    batch_size=256,
    seed=0,
    verbose=1,
):
    """Scores one model as paper 1 does: accuracy, PGD accuracy, metrics.

    Args:
        model: a Keras classifier with logits as outputs.
        x: the examples whose explanations are scored (a few dozen on a
            CPU: the sensitivity metrics explain `num_samples` noisy copies
            of each).
        y: their int labels, the explained class.
        explainers: attribution method names. Defaults to Integrated
            Gradients and GradientSHAP (paper 1 §5.3).
        metrics: metric names of `keras_interp.metrics.evaluate`. Defaults
            to paper 1's seven.
        metric_options: per-metric keyword arguments `{name: {arg: value}}`
            (e.g. fewer samples than Quantus' 200).
        ig_steps, shap_samples: the attribution methods' cost.
        robust: `(x, y)` on which clean and PGD accuracy are measured
            (e.g. the whole test set); `(None, None)` uses `x, y`.
        pgd_epsilon, pgd_steps: the L-inf PGD attack, clipped to [0, 1].
        batch_size: rows per model call.
        seed: seed of the attack and of every Monte-Carlo metric.
        verbose: 1 prints progress bars and a line per explainer.

    Returns:
        `{"clean_accuracy", "robust_accuracy", "metrics": {explainer:
        {metric: {"mean", "sem"}}}, "higher_is_better": {metric: bool}}`.
    """
    say = _say(verbose)
    x_acc, y_acc = (x, y) if robust[0] is None else robust
    x_adv = attacks.pgd(model, x_acc, y_acc, epsilon=pgd_epsilon, steps=pgd_steps, clip=(0.0, 1.0), seed=seed)
    result = {
        "clean_accuracy": accuracy(model, x_acc, y_acc, batch_size),
        "robust_accuracy": accuracy(model, keras.ops.convert_to_numpy(x_adv), y_acc, batch_size),
        "metrics": {},
        "higher_is_better": {},
    }
    for name in explainers:
        start = time.perf_counter()
        explain = explainer(name, ig_steps=ig_steps, shap_samples=shap_samples, seed=seed)
        table = metrics_lib.evaluate(
            model, x, y, explain, metrics, batch_size=batch_size, seed=seed, verbose=verbose,
            **(metric_options or {}),
        )
        result["metrics"][name] = {m: {"mean": t["mean"], "sem": t["sem"]} for m, t in table.items()}
        result["higher_is_better"].update({m: bool(t["higher_is_better"]) for m, t in table.items()})
        say(f"  {name}: {len(x)} examples, {len(metrics)} metrics in {time.perf_counter() - start:.1f}s")
    return result
