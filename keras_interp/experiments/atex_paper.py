"""The ATEX paper's experiments (paper 2, §5.2-5.4), as functions.

Each returns a plain dict of floats and lists (JSON-ready), so runs can be
saved and compared. Explanations are vanilla gradients of the predicted
class's logit, as in the paper (§3.1); maps are compared as saliency maps:
`|phi|` summed over the channel axis.
"""

import keras
import numpy as np

from keras_interp import atex
from keras_interp import attacks
from keras_interp import attribution
from keras_interp import metrics
from keras_interp.attribution._scores import ends_in_softmax
from keras_interp.attribution._scores import predicted_classes
from keras_interp.model import RegularizedModel
from keras_interp.regularizers import ExplanationConsistency


def _say(verbose):
    return print if verbose else (lambda *args, **kwargs: None)


def _predict(model, x):
    return predicted_classes(model, x)


def saliency(model, x, target=None):
    """`|vanilla gradient|` summed over channels: `[B, H, W]` for images."""
    phi = np.abs(keras.ops.convert_to_numpy(attribution.vanilla_gradient(model, x, target)))
    return phi.sum(-1) if phi.ndim == 4 else phi


def atex_defences(
    model,
    x,
    y,
    *,
    epsilons=(0.02, 0.04, 0.08),
    epochs=2,
    learning_rate=1e-3,
    smoothgrad_samples=50,
    naive_neighbors=4,
    seed=0,
    verbose=0,
    **atex_kwargs,
):
    """The defended models of paper 2, Tables 1-4, from one smooth model.

    From `model`, the B-smoothing baseline (a softplus network, e.g.
    `models.with_softplus` of a trained ReLU network), fine-tunes:

    - ATEX, one student per epsilon with Delta1 = Delta2 = epsilon (§5.2),
      all sharing the teacher's SmoothGrad directions on `x`;
    - Naive: `RegularizedModel` with `ExplanationConsistency` (Eq. 2,
      neighbours in the L-inf ball of the largest epsilon) on `(x, y)`.

    Both train for `epochs` epochs with Adam at `learning_rate`.

    Args:
        model: the trained smooth Keras classifier (logits).
        x, y: training images and int labels (ATEX uses only `x`).
        epsilons: the manipulation sizes to defend against.
        epochs: fine-tuning epochs of each student. Defaults to 2.
        learning_rate: Adam's step size. Defaults to 1e-3.
        smoothgrad_samples: SmoothGrad's samples for the directions.
        naive_neighbors: neighbours per example of the Naive baseline.
        seed: seed of every draw.
        verbose: Keras' verbosity for the fine-tuning.
        **atex_kwargs: other `atex.ATEXDataset` arguments (`alpha`,
            `num_along`, `num_across`, ...).

    Returns:
        `{"ATEX": {epsilon: model}, "B-smoothing": model, "Naive": model}`,
        ready for `manipulation_table`.

    Example:

    ```python
    smooth = keras_interp.models.with_softplus(trained_relu_model, beta=10.0)
    models = keras_interp.experiments.atex_defences(smooth, x_train, y_train)
    ```
    """
    x = np.asarray(x, "float32")
    directions = atex.explanation_directions(
        model, x, num_samples=smoothgrad_samples,
        noise=atex_kwargs.pop("smoothgrad_noise", 0.15), seed=seed, verbose=verbose,
    )
    students = {}
    for epsilon in epsilons:
        students[epsilon], _ = atex.fit(
            model, x, epochs=epochs, delta1=epsilon, directions=directions,
            optimizer=keras.optimizers.Adam(learning_rate), seed=seed, verbose=verbose,
            **atex_kwargs,
        )
    naive = RegularizedModel(
        atex.student_of(model),
        [ExplanationConsistency(1.0, epsilon=max(epsilons), num_neighbors=naive_neighbors)],
        seed=seed,
    )
    naive.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model)),
    )
    naive.fit(x, np.asarray(y), batch_size=32, epochs=epochs, verbose=verbose)
    return {"ATEX": students, "B-smoothing": model, "Naive": naive.model}


def manipulation_table(
    models,
    x,
    y=None,
    *,
    epsilons=(0.02, 0.04, 0.08),
    mode="untargeted",
    top_k=50,
    steps=50,
    clip=(0.0, 1.0),
    seed=0,
    verbose=0,
):
    """Defence against explanation manipulation (paper 2, Tables 1-4).

    For every model and epsilon, `attacks.manipulate_explanation` perturbs
    `x` (keeping each prediction); the saliency maps before and after are
    compared by rank correlation, top-k intersection (k = `top_k`) and
    SSIM, averaged over the examples. The models should be smooth
    (softplus): the attack follows second derivatives. The paper trains
    ATEX once per epsilon (with Delta1 = Delta2 = epsilon): give such a
    method as a dict `{epsilon: model}`.

    Args:
        models: dict name -> Keras classifier, or name -> `{epsilon:
            classifier}`; e.g. `{"ATEX": {0.02: m1, 0.04: m2, 0.08: m3},
            "B-smoothing": teacher, "Naive": naive}`.
        x: float images `[B, H, W, C]` in the data range `clip`.
        y: optional labels `[B]`, for each model's accuracy on `x`.
        epsilons: L-inf sizes of the manipulation. Defaults to the paper's
            `(0.02, 0.04, 0.08)`.
        mode: `"untargeted"` (default) or `"targeted"`.
        top_k: features the untargeted attack suppresses and the top-k
            intersection compares. Defaults to 50.
        steps: attack iterations. Defaults to 50.
        clip: the data range the attack clips to, `(0.0, 1.0)` by default:
            the paper's MNIST setting, passed to the attack explicitly (the
            attacks themselves assume no range). None leaves the input
            unconstrained.
        seed: seed of the attack's random regions.
        verbose: print one line per model and epsilon.

    Returns:
        `{"mode", "top_k", "rows": [{"epsilon", "accuracy": {name: float}
        (when y is given), "rank_correlation": {name: float},
        "top_k_intersection": {...}, "ssim": {...}}]}`.

    Example:

    ```python
    table = keras_interp.experiments.manipulation_table(
        {"ATEX": student, "B-smoothing": teacher}, x_test[:100], y_test[:100]
    )
    ```
    """
    say = _say(verbose)
    x = np.asarray(x, "float32")
    for name, model in models.items():
        if isinstance(model, dict) and set(model) != set(epsilons):
            raise ValueError(
                f"A model given per epsilon needs one model for each of "
                f"epsilons={tuple(epsilons)}. Received: {name!r} with "
                f"epsilons {tuple(model)}"
            )
    rows = []
    for epsilon in epsilons:
        row = {"epsilon": float(epsilon)}
        measures = {"accuracy": {}, "rank_correlation": {}, "top_k_intersection": {}, "ssim": {}}
        for name, model in models.items():
            model = model[epsilon] if isinstance(model, dict) else model
            target = _predict(model, x)
            if y is not None:
                measures["accuracy"][name] = float(np.mean(target == np.asarray(y).reshape(-1)))
            x_adv = attacks.manipulate_explanation(
                model, x, mode=mode, epsilon=epsilon, steps=steps, top_k=top_k,
                clip=clip, seed=seed,
            )
            before = saliency(model, x, target)
            after = saliency(model, keras.ops.convert_to_numpy(x_adv), target)
            measures["rank_correlation"][name] = float(np.nanmean(metrics.rank_correlation(before, after)))
            measures["top_k_intersection"][name] = float(
                np.mean(metrics.top_k_intersection(before, after, top_k))
            )
            measures["ssim"][name] = float(np.mean(metrics.ssim(before, after)))
            say(
                f"[manipulation] {mode} eps={epsilon} {name}: rank "
                f"{measures['rank_correlation'][name]:.3f}, top-{top_k} "
                f"{measures['top_k_intersection'][name]:.3f}, SSIM {measures['ssim'][name]:.3f}"
            )
        if y is None:
            del measures["accuracy"]
        row.update(measures)
        rows.append(row)
    return {"mode": mode, "top_k": top_k, "rows": rows}


def smoothness_vs_smoothgrad(models, x, *, reference, num_samples=100, noise=0.15, seed=0):
    """How close each model's vanilla gradient is to SmoothGrad (paper 2, Fig. 3).

    The reference maps are SmoothGrad of the `reference` model (the
    normally trained one; 100 noisy copies per image as in §5.3); each
    model's vanilla-gradient saliency is compared with them by SSIM. Both
    maps are `|.|` summed over channels and scaled to [0, 1] per image,
    so SSIM compares patterns, not magnitudes.

    Args:
        models: dict name -> Keras classifier.
        x: float images `[B, H, W, C]`, H and W at least 7.
        reference: the name in `models` of the normally trained model.
        num_samples: SmoothGrad's noisy copies. Defaults to 100.
        noise: SmoothGrad's noise standard deviation. Defaults to 0.15.
        seed: seed of SmoothGrad's noise.

    Returns:
        `{"reference": name, "ssim": {name: mean SSIM}}`.

    Example:

    ```python
    keras_interp.experiments.smoothness_vs_smoothgrad(
        {"standard": teacher, "ATEX": student}, x_test[:100], reference="standard"
    )
    ```
    """
    if reference not in models:
        raise ValueError(
            f"`reference` must name one of the models {sorted(models)}. "
            f"Received: reference={reference!r}"
        )
    x = np.asarray(x, "float32")
    target = _predict(models[reference], x)
    smooth = attribution.smoothgrad(
        models[reference], x, target, num_samples=num_samples, noise=noise, seed=seed
    )
    smooth = np.abs(keras.ops.convert_to_numpy(smooth))
    smooth = _unit_range(smooth.sum(-1) if smooth.ndim == 4 else smooth)
    return {
        "reference": reference,
        "ssim": {
            name: float(np.mean(metrics.ssim(_unit_range(saliency(model, x, target)), smooth, data_range=1.0)))
            for name, model in models.items()
        },
    }


def _unit_range(maps):
    flat = maps.reshape(len(maps), -1)
    lo, hi = flat.min(1), flat.max(1)
    scale = np.where(hi > lo, hi - lo, 1.0)
    return ((flat - lo[:, None]) / scale[:, None]).reshape(maps.shape)


def adversarial_training_efficacy(
    model,
    data,
    *,
    atex_iterations=(0, 1, 2, 3, 4, 5),
    epsilon=0.1,
    finetune_epochs=1,
    learning_rate=1e-3,
    batch_size=64,
    clip=(0.0, 1.0),
    seed=0,
    verbose=0,
    **atex_kwargs,
):
    """Robust accuracy of FGSM adversarial training after k ATEX iterations
    (paper 2, §5.4, Fig. 5).

    One ATEX iteration is one epoch of `atex.fit` on the training inputs,
    with `model` as the fixed teacher (the paper does not say whether the
    teacher is refreshed; a fixed teacher keeps the SmoothGrad directions
    computed once). After k iterations (k = 0: the model itself), a copy is
    fine-tuned on the training set plus its FGSM examples (epsilon 0.1,
    made once on the copy before fine-tuning, as the paper combines
    "50,000 FGSM attack samples" with the training data), then attacked
    afresh with FGSM on the test set.

    Args:
        model: the trained Keras classifier (logits).
        data: `((x_train, y_train), (x_test, y_test))`, images in `clip`.
        atex_iterations: the k to report, increasing. Defaults to 0-5.
        epsilon: FGSM step, for training and attack. Defaults to 0.1.
        finetune_epochs: epochs of adversarial fine-tuning. Defaults to 1.
        learning_rate: Adam's step size, for ATEX and the fine-tuning.
            Defaults to 1e-3.
        batch_size: fine-tuning batch size (and ATEX's seed instances).
        clip: the data range the attack clips to, `(0.0, 1.0)` by default:
            the paper's MNIST setting, passed to the attack explicitly (the
            attacks themselves assume no range). None leaves the input
            unconstrained.
        seed: seed of ATEX's samples. The fine-tuning shuffles draw from
            the global state (`keras.utils.set_random_seed`).
        verbose: print one line per iteration.
        **atex_kwargs: `atex.ATEXDataset` arguments (`delta1`, ...).

    Returns:
        `{"epsilon", "iterations": [k], "clean_accuracy": [...],
        "robust_accuracy": [...]}`: after fine-tuning, on the test set.

    Example:

    ```python
    keras_interp.experiments.adversarial_training_efficacy(
        teacher, keras_interp.data.load("mnist5k"), atex_iterations=(0, 1, 2)
    )
    ```
    """
    say = _say(verbose)
    (x_train, y_train), (x_test, y_test) = data
    y_train, y_test = np.asarray(y_train).reshape(-1), np.asarray(y_test).reshape(-1)
    iterations = sorted(int(k) for k in atex_iterations)
    if not iterations or iterations[0] < 0:
        raise ValueError(
            "`atex_iterations` must be non-negative integers. Received: "
            f"atex_iterations={atex_iterations!r}"
        )
    dataset = None
    student = atex.student_of(model)
    student.compile(
        keras.optimizers.Adam(learning_rate),
        atex.Distillation(from_logits=not ends_in_softmax(student)),
    )
    done = 0
    result = {"epsilon": float(epsilon), "iterations": [], "clean_accuracy": [], "robust_accuracy": []}
    for k in iterations:
        if k > done:
            if dataset is None:
                dataset = atex.ATEXDataset(
                    model, x_train, batch_size=batch_size, seed=seed, verbose=verbose, **atex_kwargs
                )
            student.fit(dataset, epochs=k, initial_epoch=done, verbose=0)
            done = k
        clean, robust = _fgsm_finetuned(
            student, x_train, y_train, x_test, y_test, epsilon, finetune_epochs,
            learning_rate, batch_size, clip,
        )
        result["iterations"].append(k)
        result["clean_accuracy"].append(clean)
        result["robust_accuracy"].append(robust)
        say(f"[efficacy] ATEX iterations {k}: clean {clean:.4f}, FGSM robust {robust:.4f}")
    return result


def _fgsm_finetuned(model, x_train, y_train, x_test, y_test, epsilon, epochs, lr, batch_size, clip):
    copy = atex.student_of(model)
    x_adv = _in_chunks(lambda rows, labels: attacks.fgsm(copy, rows, labels, epsilon=epsilon, clip=clip), x_train, y_train)
    copy.compile(
        keras.optimizers.Adam(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(copy)),
    )
    copy.fit(
        np.concatenate([x_train, x_adv]),
        np.concatenate([y_train, y_train]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
    )
    x_attack = _in_chunks(lambda rows, labels: attacks.fgsm(copy, rows, labels, epsilon=epsilon, clip=clip), x_test, y_test)
    clean = float(np.mean(_predict(copy, x_test) == y_test))
    robust = float(np.mean(_predict(copy, x_attack) == y_test))
    return clean, robust


def _in_chunks(fn, x, y, size=256):
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(fn(x[i : i + size], y[i : i + size]))
            for i in range(0, len(x), size)
        ]
    )
