"""ATEX: adversarial training on explanations (paper 2, §3.3).

A student g, initialised from a trained teacher f, is distilled on the
teacher's own data plus samples placed around each seed instance x by the
teacher's explanation phi (SmoothGrad):

- `num_along` points along phi: `x' = x + d1 phi / ||phi||` (up to the
  normalisation below),
  `d1 ~ U(-delta1, delta1)` (Eq. 5);
- for each, `num_across` points across it: `x^p = x' + d2 phi_perp /
  ||phi_perp||`, `d2 ~ U(-delta2, delta2)`, `phi_perp = u - phi <u, phi> /
  ||phi||^2` (Eq. 6);
- the loss `J = L(g(x), f(x)) + alpha * sum L(g(x^p), f(x'))` (Eq. 4): a
  point moved across the explanation must keep the prediction of the point
  it was moved from, which holds the local explanation fixed at phi.

The pieces are plain Keras: `ATEXDataset` (a `keras.utils.PyDataset`)
yields the rows, their teacher targets and their weights; `Distillation`
is the loss L. `fit` puts them together, and any model that takes soft
targets (a `RegularizedModel` included) trains on the same dataset.

Choices the paper leaves open, and ours:

- phi is SmoothGrad of the teacher's logit of its predicted class (50
  samples, noise 0.15: Smilkov et al.'s defaults for data in [0, 1]). It is
  computed once per seed instance, when the dataset is built: the teacher
  is frozen, so its directions never change.
- Directions are normalised per sample, over all features, to a root mean
  square of 1 (`phi / ||phi||_2 * sqrt(D)`) rather than to a unit L2 norm,
  so that delta1 and delta2 are in input units per feature, like the
  attack's L-inf epsilon they are set to (§5.2). With unit L2 directions
  a shift of 0.08 would move a 28x28 image by 0.003 per pixel (root mean
  square), 28 times less than the attack it is meant to match.
- `u ~ U(0, 1)` per feature as in the paper (its scale is irrelevant after
  normalisation); d1, d2 and u are drawn afresh for every batch, from NumPy
  with the seed, epoch and batch index (`keras_interp._seeds`), so a seed
  gives the same draws on every backend (the directions, from SmoothGrad's `keras.random` noise,
  differ between backends).
- `delta2` defaults to `delta1`, the paper's setting (Delta1 = Delta2 =
  epsilon1, §5.2).
- Samples are not clipped to the data range by default: clipping would
  bend x' off phi and x^p off the orthogonal plane.
- L is the Kullback-Leibler divergence between the teacher's and the
  student's softmax at temperature T (default 1), times T^2 (Hinton et al.
  2015), so gradients keep their scale as T changes.
"""

import math

import keras
import numpy as np

from keras_interp import _checks
from keras_interp import _seeds
from keras_interp import attribution
from keras_interp import backend
from keras_interp.attribution._scores import ends_in_softmax
from keras_interp.attribution._scores import score_model
from keras_interp.model import RegularizedModel


def explanation_directions(
    teacher, x, *, num_samples=50, noise=0.15, seed=None, verbose=0
):
    """SmoothGrad directions of the teacher with unit root mean square.

    phi(x) * sqrt(D) / ||phi(x)||_2 for examples of D features, with phi the
    SmoothGrad of the logit of the teacher's predicted class (paper 2,
    §3.3: "we use SmoothGrad to compute phi in order to remove noise"). A
    zero explanation gives a zero direction (x' then stays at x).

    Examples go in blocks of 256 (SmoothGrad noise seeded
    `keras_interp._seeds.mix(seed, i)` for the block starting at example
    i: a hash, as `seed + i` would repeat nearby seeds' noise), with 256
    rows per gradient call:
    larger calls than attribution's default 64 rows halve the cost on a
    CPU, and fixed blocks keep one call shape (one trace on TF and JAX).

    Args:
        teacher: a Keras classifier.
        x: float array `[B, ...]`.
        num_samples: SmoothGrad's noisy copies per example. Defaults to 50.
        noise: SmoothGrad's noise standard deviation, in input units.
            Defaults to 0.15.
        seed: int seed of SmoothGrad's noise; None draws one from NumPy's
            global state.
        verbose: show a progress bar over the blocks.

    Returns:
        A float32 NumPy array shaped like `x`.

    Example:

    ```python
    phi = keras_interp.atex.explanation_directions(teacher, x[:32], seed=0)
    ```
    """
    x = np.asarray(keras.ops.convert_to_numpy(_checks.floating_input(x)), "float32")
    seed = _seeds.draw() if _seeds.check(seed) is None else seed
    blocks = range(0, len(x), _DIRECTION_BLOCK)
    phi = np.concatenate(
        [
            keras.ops.convert_to_numpy(
                attribution.smoothgrad(
                    teacher,
                    x[i : i + _DIRECTION_BLOCK],
                    num_samples=num_samples,
                    noise=noise,
                    batch_size=_DIRECTION_BLOCK,
                    seed=_seeds.mix(seed, i),
                )
            )
            for i in _progress(blocks, verbose)
        ]
    )
    return _unit_rms(phi.astype("float32"))


def _unit_rms(phi):
    rms = np.sqrt(np.mean(phi.reshape(len(phi), -1) ** 2, axis=1))
    rms = rms.reshape((-1,) + (1,) * (phi.ndim - 1))
    return np.divide(phi, rms, out=np.zeros_like(phi), where=rms > 0)


# Examples per SmoothGrad call in `explanation_directions`, and rows per
# gradient call within it.
_DIRECTION_BLOCK = 256


ACROSS = ("uniform", "normal")

# Stream keys of `ATEXDataset`'s NumPy draws, `_seeds.numpy_generator(seed,
# stream, epoch, ...)`: as a list seed, `[s, e]` and `[s, e, 0]` would be
# the same stream (NumPy zero-pads the entropy), so an epoch's shuffle and
# its first batch's samples would reuse each other's draws.
_SHUFFLE, _SAMPLES = 0, 1


def sample_around(
    x, directions, *, delta1, delta2, num_along, num_across, rng, across="uniform", clip=None
):
    """ATEX's two rounds of sampling around seed instances (Eqs. 5-6).

    Args:
        x: float array `[B, ...]`, the seed instances.
        directions: explanation directions shaped like `x` (see
            `explanation_directions`); rescaled to unit root mean square.
        delta1: largest shift along the explanation, in root-mean-square
            input units, > 0.
        delta2: largest shift across it, likewise, > 0.
        num_along: points x' per seed instance.
        num_across: points x^p per point x'.
        rng: a `numpy.random.Generator` for d1, d2 and u.
        across: the draw of u, whose part orthogonal to phi is the
            direction across: `"uniform"` (default), `u ~ U(0, 1)` per
            feature as in the paper, or `"normal"`, `u ~ N(0, 1)`, which
            makes it uniformly random in the orthogonal plane.
        clip: the valid input range: None leaves the samples unconstrained,
            a `(lo, hi)` tuple clips them to it. No data range is assumed.

    Returns:
        `(x_along, x_across)`: float32 NumPy arrays `[B * num_along, ...]` and
        `[B * num_along * num_across, ...]`. Row `b * num_along + i` of
        `x_along` is the i-th point of seed instance b; row `r * num_across
        + j` of `x_across` is the j-th point across row r of `x_along`.
    """
    if across not in ACROSS:
        raise ValueError(f"`across` must be one of {ACROSS}. Received: across={across!r}")
    clip = _checks.clip_range(clip)
    b = x.shape[0]
    features = tuple(x.shape[1:])
    flat = (1,) * len(features)
    d1 = rng.uniform(-delta1, delta1, (b, num_along) + flat).astype("float32")
    d2 = rng.uniform(-delta2, delta2, (b, num_along, num_across) + flat)
    shape = (b, num_along, num_across) + features
    u = rng.uniform(0.0, 1.0, shape) if across == "uniform" else rng.standard_normal(shape)

    # NumPy, like the rest of a Keras data pipeline: these few element-wise
    # ops on small arrays cost microseconds there, milliseconds as eager
    # backend ops. Directions are renormalised so that any scale works.
    phi = _unit_rms(np.asarray(directions, "float32"))
    x = np.asarray(x, "float32")
    x_along = x[:, None] + d1 * phi[:, None]

    # u minus its component along phi; phi has unit mean square, so
    # <u, phi> / ||phi||^2 is mean(u * phi).
    u = u.astype("float32")
    axes = tuple(range(3, 3 + len(features)))
    phi3 = phi[:, None, None]
    perp = u - np.mean(u * phi3, axis=axes, keepdims=True) * phi3
    perp /= np.sqrt(np.mean(perp**2, axis=axes, keepdims=True))
    x_across = x_along[:, :, None] + d2.astype("float32") * perp

    x_along = x_along.reshape((b * num_along,) + features)
    x_across = x_across.reshape((b * num_along * num_across,) + features)
    if clip is not None:
        x_along = np.clip(x_along, clip[0], clip[1])
        x_across = np.clip(x_across, clip[0], clip[1])
    return x_along, x_across


class ATEXDataset(keras.utils.PyDataset):
    """Batches of ATEX training rows: seed instances and their samples.

    Each batch holds `batch_size` seed instances x (shuffled each epoch),
    followed by their `num_along * num_across` samples x^p (see
    `sample_around`). The targets are the teacher's logits: f(x) for a
    seed row, f(x') for a sample moved across x'. The sample weights are 1
    for seed rows and `alpha` for the samples, so a Keras loss with its
    default `"sum_over_batch_size"` reduction gives Eq. 4 summed over the
    batch, divided by its `batch_size * (1 + num_along * num_across)` rows.
    Train with `Distillation` as the loss.

    The teacher's explanation directions are computed once, here (with a
    progress bar when `verbose`); each batch then costs one teacher
    forward pass over its `num_along` points x'. The draws depend only on
    `seed`, the epoch and the batch index, so they are the same on every
    backend and with any number of `workers`. (Keras calls `on_epoch_end`
    once before training starts, so training begins at epoch count 1; a run
    resumed on a new dataset repeats the first epochs' draws.) With
    `workers > 1` on PyTorch, give a teacher that returns logits: a final
    softmax is bypassed by patching the layer, which eager threads share.

    Args:
        teacher: the trained Keras classifier f (frozen: it is only read).
        x: float array `[N, ...]` of training inputs (labels are not used:
            the teacher's outputs are the targets).
        batch_size: seed instances per batch. Defaults to 32.
        delta1: largest shift along the explanation, in root-mean-square
            input units. Defaults to 0.04, the middle manipulation size of
            paper 2 (§5.2).
        delta2: largest shift across it. Defaults to `delta1`.
        num_along: points x' per seed instance. Defaults to 2.
        num_across: points x^p per x'. Defaults to 2.
        alpha: weight of the sample terms (Eq. 4). Defaults to 1.
        smoothgrad_samples, smoothgrad_noise: SmoothGrad's settings for the
            directions. Default to 50 and 0.15.
        across: the draw of the directions across phi: `"uniform"`
            (default, the paper's `u ~ U(0, 1)`) or `"normal"` (see
            `sample_around`).
        clip: the valid input range: None (default) leaves the samples
            unconstrained, a `(lo, hi)` tuple clips them to it (see the
            module notes on why clipping bends the samples).
        shuffle: shuffle the seed instances each epoch. Defaults to True.
        directions: precomputed `explanation_directions(teacher, x)`, to
            share between datasets of the same teacher and inputs (e.g. a
            sweep over delta1); None (default) computes them.
        seed: int seed of every draw; None draws one from NumPy's global
            state.
        verbose: show a progress bar while the directions are computed.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`,
            `use_multiprocessing`, `max_queue_size`).

    Example:

    ```python
    data = keras_interp.atex.ATEXDataset(teacher, x_train, seed=0)
    student.compile("adam", keras_interp.atex.Distillation())
    student.fit(data, epochs=1)
    ```
    """

    def __init__(
        self,
        teacher,
        x,
        *,
        batch_size=32,
        delta1=0.04,
        delta2=None,
        num_along=2,
        num_across=2,
        alpha=1.0,
        smoothgrad_samples=50,
        smoothgrad_noise=0.15,
        across="uniform",
        clip=None,
        shuffle=True,
        directions=None,
        seed=None,
        verbose=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        x = np.asarray(keras.ops.convert_to_numpy(_checks.floating_input(x)), "float32")
        self.teacher = teacher
        self.x = x
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self.delta1 = _checks.positive(delta1, "delta1")
        self.delta2 = self.delta1 if delta2 is None else _checks.positive(delta2, "delta2")
        self.num_along = _checks.positive_int(num_along, "num_along")
        self.num_across = _checks.positive_int(num_across, "num_across")
        self.alpha = _checks.non_negative(alpha, "alpha")
        if across not in ACROSS:
            raise ValueError(f"`across` must be one of {ACROSS}. Received: across={across!r}")
        self.across = across
        self.clip = _checks.clip_range(clip)
        self.shuffle = bool(shuffle)
        self.seed = _seeds.draw() if _seeds.check(seed) is None else seed
        self.epoch = 0
        # Compiled once: each batch runs the teacher over its x' points.
        self._logits = backend.compiled(score_model(teacher, "logits"), teacher.variables)

        self.teacher_logits = self._predict(x)
        if directions is not None:
            self.directions = np.asarray(directions, "float32")
            if self.directions.shape != x.shape:
                raise ValueError(
                    "`directions` must have one direction per example, shaped "
                    f"like `x` {x.shape}. Received: directions.shape="
                    f"{self.directions.shape}"
                )
        else:
            self.directions = explanation_directions(
                teacher, x, num_samples=smoothgrad_samples, noise=smoothgrad_noise,
                seed=self.seed, verbose=verbose,
            )
        self._order = self._permutation()

    def _predict(self, x):
        chunks = [
            keras.ops.convert_to_numpy(self._logits(x[i : i + 256]))
            for i in range(0, len(x), 256)
        ]
        return np.concatenate(chunks).astype("float32")

    def _permutation(self):
        if not self.shuffle:
            return np.arange(len(self.x))
        return _seeds.numpy_generator(self.seed, _SHUFFLE, self.epoch).permutation(len(self.x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index out of range [0, {len(self)}). Received: index={index}")
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.x[rows]
        rng = _seeds.numpy_generator(self.seed, _SAMPLES, self.epoch, index)
        x_along, x_across = sample_around(
            x,
            self.directions[rows],
            delta1=self.delta1,
            delta2=self.delta2,
            num_along=self.num_along,
            num_across=self.num_across,
            rng=rng,
            across=self.across,
            clip=self.clip,
        )
        along_logits = keras.ops.convert_to_numpy(self._logits(x_along))
        inputs = np.concatenate([x, x_across])
        targets = np.concatenate(
            [self.teacher_logits[rows], np.repeat(along_logits, self.num_across, axis=0)]
        )
        weights = np.ones(len(inputs), "float32")
        weights[len(x) :] = self.alpha
        return inputs, targets.astype("float32"), weights

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._permutation()


def _progress(items, verbose):
    items = list(items)
    if not verbose:
        return items
    bar = keras.utils.Progbar(len(items), unit_name="block")

    def walk():
        for i, item in enumerate(items):
            yield item
            bar.update(i + 1)

    return walk()


@keras.saving.register_keras_serializable(package="keras_interp")
class Distillation(keras.losses.Loss):
    """Distillation loss between teacher logits and student outputs.

    `T^2 * KL(softmax(t / T) || softmax(s / T))` per row, with `t` the
    teacher's logits (the targets `ATEXDataset` yields) and `s` the
    student's logits (Hinton et al. 2015). Its gradient is the soft-target
    cross-entropy's; the KL form reads 0 when the student matches.

    Args:
        temperature: T > 0. Defaults to 1.
        from_logits: whether the student returns logits (default). With
            False the student's probabilities are turned into log
            probabilities, which are logits up to a constant per row.
        **kwargs: `keras.losses.Loss` arguments (`reduction`, `name`).

    Example:

    ```python
    student.compile("adam", keras_interp.atex.Distillation(temperature=2.0))
    ```
    """

    def __init__(self, temperature=1.0, from_logits=True, name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = _checks.positive(temperature, "temperature")
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        t = self.temperature
        if not self.from_logits:
            y_pred = keras.ops.log(keras.ops.clip(y_pred, 1e-7, 1.0))
        teacher = keras.ops.log_softmax(keras.ops.cast(y_true, y_pred.dtype) / t, axis=-1)
        student = keras.ops.log_softmax(y_pred / t, axis=-1)
        kl = keras.ops.sum(keras.ops.exp(teacher) * (teacher - student), axis=-1)
        return t * t * kl

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature, from_logits=self.from_logits)
        return config


def student_of(teacher):
    """A copy of `teacher` with the same architecture and weights (the
    student g starts from f, paper 2 §3.3)."""
    student = keras.models.clone_model(teacher)
    student.set_weights(teacher.get_weights())
    return student


def fit(
    teacher,
    x,
    *,
    epochs=1,
    batch_size=32,
    optimizer=None,
    temperature=1.0,
    regularizers=None,
    callbacks=None,
    seed=None,
    verbose=1,
    **sampling,
):
    """Trains an ATEX student of `teacher` (paper 2, §3.3, Eq. 4).

    The student starts as a copy of the teacher and is distilled on an
    `ATEXDataset` of `x` with the `Distillation` loss. Its `agreement`
    metric is the share of rows where the student's class is the
    teacher's. With `regularizers` the student is wrapped in a
    `RegularizedModel`, so ATEX combines with NsLoss or the others.

    Args:
        teacher: the trained Keras classifier f; it is not modified.
        x: float array of training inputs, or a tuple `(x, y)` whose labels
            are ignored (ATEX learns from the teacher's outputs).
        epochs: passes over `x`. Defaults to 1.
        batch_size: seed instances per batch. Defaults to 32.
        optimizer: a Keras optimizer or name. Defaults to
            `keras.optimizers.Adam(1e-3)`.
        temperature: the distillation temperature. Defaults to 1.
        regularizers: optional list for `RegularizedModel`.
        callbacks: Keras callbacks for `fit`.
        seed: int seed of the samples (and of the regularisers).
        verbose: Keras' `fit` verbosity; also shows the directions' bar.
        **sampling: `ATEXDataset` arguments (`delta1`, `delta2`,
            `num_along`, `num_across`, `alpha`, `smoothgrad_samples`,
            `smoothgrad_noise`, `clip`, `workers`, ...).

    Returns:
        `(student, history)`: the trained Keras model (the inner model when
        `regularizers` are given) and the `History` of `fit`.

    Raises:
        ValueError: for a `keras.distribution` set on TensorFlow or PyTorch
            (see `keras_interp.backend.check_distribution`).

    Example:

    ```python
    student, history = keras_interp.atex.fit(teacher, x_train, epochs=2, seed=0)
    ```
    """
    # Before any work: on TensorFlow or PyTorch a keras.distribution would be
    # ignored and the student trained on one device.
    backend.check_distribution()
    if isinstance(x, (tuple, list)):
        x = x[0]
    epochs = _checks.positive_int(epochs, "epochs")
    dataset = ATEXDataset(
        teacher, x, batch_size=batch_size, seed=seed, verbose=verbose, **sampling
    )
    student = student_of(teacher)
    trained = student
    if regularizers:
        # The dataset's seed (drawn once when `seed` is None): the whole
        # run follows from one seed.
        trained = RegularizedModel(student, regularizers, seed=dataset.seed)
        replacing = [r for r in trained.regularizers if r.replaces_loss]
        if replacing:
            raise ValueError(
                "ATEX's targets are teacher logits, not labels, so a regulariser "
                "that attacks the labels' loss cannot run on them. Received: "
                f"regularizers={replacing}"
            )
    trained.compile(
        optimizer=keras.optimizers.Adam(1e-3) if optimizer is None else optimizer,
        # A student cloned from a teacher ending in softmax returns
        # probabilities; the targets are the teacher's logits either way.
        loss=Distillation(temperature, from_logits=not ends_in_softmax(student)),
        metrics=[keras.metrics.CategoricalAccuracy(name="agreement")],
    )
    # shuffle=False: the dataset already shuffles its seed instances each
    # epoch from `seed`. Keras' shuffle of a PyDataset would also reorder
    # the batches with Python's global `random`, so a run would no longer
    # follow from `seed` alone and a tf.distribute run would see the batches
    # in another order than one device.
    history = trained.fit(
        dataset, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False
    )
    return student, history
