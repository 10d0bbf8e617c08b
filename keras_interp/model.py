"""RegularizedModel: any Keras model, trained with interpretability regularisers."""

import threading

import keras
import numpy as np

from keras_interp import _fit_checks
from keras_interp import _seeds
from keras_interp import backend
from keras_interp import hooks
from keras_interp import shared_masks
from keras_interp import regularizers as regularizers_lib
from keras_interp.layers import SpherePerturbation


class _Probe:
    """The hooked-activation sub-model and the activations of the last pass.

    A plain object, so Keras neither tracks the sub-model (its layers and
    weights are the wrapped model's, saved once) nor wraps the cache.
    The forward pass leaves its activations here and `compute_loss`, which
    every trainer calls next with the same `y_pred` object, picks them up.
    The cache is keyed by thread (`tf.distribute` runs replicas in threads)
    and checked against `y_pred`, so a `compute_loss` not preceded by this
    model's own forward pass recomputes instead of reading stale values.
    """

    def __init__(self, model, layers, copies, chunked):
        paths = [layer for _, layer in hooks.layer_paths(model)]
        bad = shared_masks.unsupported(paths)
        random = [layer for layer in paths if isinstance(layer, shared_masks.MULTIPLICATIVE + shared_masks.ADDITIVE)]
        if bad or (chunked and random):
            names = [layer.name for layer in (bad or random)]
            raise ValueError(
                "NsLoss needs every example and its perturbed copies to see the "
                "same network, so a random layer must draw once per example. "
                "Dropout, SpatialDropout, GaussianDropout and GaussianNoise do "
                "(without `chunk_size`); random augmentation layers cannot: "
                "augment in the data pipeline instead (e.g. `tf.data` or a "
                f"PyDataset). Received: random layers {names}"
                + (" with chunk_size" if not bad else "")
            )
        # One pass with the nested models' layers exposed (see `hooks`),
        # random layers drawing once per example (see `shared_masks`).
        self.model = hooks.probe(model, layers, call=shared_masks.call(copies))
        self._cache = {}

    def remember(self, y_pred, activations):
        self._cache[threading.get_ident()] = (y_pred, activations)

    def trainable_values(self):
        return [v.value for v in self.model.trainable_variables]

    def activations(self, rows, trainable_values, training):
        """The hooked activations of `rows`, computed with `trainable_values`.

        Stateless: batch-norm statistics and seed states are read but not
        updated, so the pass can be recomputed (`keras.remat`) and is
        differentiable in `trainable_values` on every backend.
        """
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        outputs, _ = self.model.stateless_call(
            trainable_values, non_trainable, rows, training=training
        )
        return list(outputs[1:])

    def recall(self, y_pred):
        entry = self._cache.pop(threading.get_ident(), None)
        if entry is not None and entry[0] is y_pred:
            return entry[1]
        return None


def _single_output(model):
    outputs = getattr(model, "outputs", None)
    if outputs is not None and len(outputs) != 1:
        raise ValueError(
            "RegularizedModel wraps a model with one output tensor of scores "
            f"[batch, classes]. Received: a model with {len(outputs)} outputs"
        )
    if outputs is not None and len(outputs[0].shape) != 2:
        raise ValueError(
            "RegularizedModel wraps a classifier whose output is shaped "
            f"[batch, classes]. Received: output shape {tuple(outputs[0].shape)}"
        )


# Keys of the two random streams in `_seeds.mix(seed, stream, i)`.
_TRAINING, _EVALUATION = 0, 1


@keras.saving.register_keras_serializable(package="keras_interp")
class RegularizedModel(keras.Model):
    """Wraps a Keras model so that `fit` adds interpretability regularisers.

    `call` forwards to the wrapped model, and `compute_loss` (which the
    TensorFlow, JAX and PyTorch trainers all call inside the differentiated
    region) adds `weight * term` of every regulariser to the compiled loss,
    or replaces it for a regulariser with `replaces_loss` (adversarial
    training). Compile and fit it like the wrapped model; `predict` and
    `evaluate` give the wrapped model's outputs and losses. Each term has
    its own `keras.metrics.Mean`, so the history has e.g.
    `neuron_sensitivity` (and `val_neuron_sensitivity` with
    `evaluate_regularizers=True`).

    With a `NeuronSensitivity` regulariser, the training forward pass runs
    the batch and its N perturbed copies as one batch of `(N + 1) * B` rows
    through a sub-model that outputs the hooked activations; the clean rows
    give the prediction the compiled loss uses, so the clean pass is shared
    (paper 1, §4.2: the N + 1 passes are the whole cost).

    Seed generators (one per regulariser) and trackers live on this model,
    so JAX's stateless training threads them, and a saved model saves
    their states: a reloaded model (or one resumed by `BackupAndRestore`)
    trains on exactly as the original would. The i-th regulariser's
    training draws have the seed `s_i = keras_interp._seeds.mix(seed, 0,
    i)`, a hash (seeds `s` and `s + 1` give unrelated draws on every
    backend): they are those of `SpherePerturbation(N, epsilon, seed=s_i)`
    for `NeuronSensitivity` and of `keras_interp._seeds.generator(s_i)`
    for the others. Evaluation draws from a second stream, `mix(seed, 1,
    i)`, restarted at every `evaluate`, so validation does not shift the
    training draws and scores every epoch on the same perturbations.

    It trains unchanged under `keras.distribution.DataParallel` (JAX) and
    a `tf.distribute` strategy such as `MirroredStrategy` (TensorFlow;
    build and compile it in `strategy.scope()`): each replica perturbs its
    own examples with its rows of draws made for the global batch, the
    terms are scaled like Keras' own loss, and the trackers report global
    means, so a run matches one device on the same global batch and seed.
    `fit` raises a `ValueError` for a `keras.distribution` on TensorFlow or
    PyTorch, whose trainers ignore it.

    Args:
        model: a built functional or Sequential Keras classifier with one
            output `[batch, classes]` (logits, or probabilities matched by
            the compiled loss). `NeuronSensitivity` needs symbolic inputs
            (a functional or Sequential model); the other regularisers
            also take subclassed models.
        regularizers: a list of `keras_interp.regularizers.Regularizer`
            (or names/configs accepted by `regularizers.get`).
        seed: int seed of the regularisers' random draws, or None.
        evaluate_regularizers: also compute the terms in `evaluate` (and
            for validation data), add them to the loss there and report
            them as `val_<name>`. Defaults to False: evaluation then is
            exactly the wrapped model's.
        **kwargs: `keras.Model` arguments (e.g. `name`).

    Example:

    ```python
    import keras_interp as ki

    model = ki.RegularizedModel(
        ki.models.small_cnn((28, 28, 1), 10),
        [ki.regularizers.NeuronSensitivity(weight=1.0, epsilon=0.5)],
        seed=0,
    )
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, epochs=2)
    history.history["neuron_sensitivity"]
    ```
    """

    def __init__(
        self, model, regularizers, seed=None, evaluate_regularizers=False, **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(
                "`model` must be a keras.Model. Received: "
                f"model={type(model).__name__}"
            )
        if isinstance(regularizers, (regularizers_lib.Regularizer, str, dict)):
            regularizers = [regularizers]
        regularizers = [regularizers_lib.get(r) for r in regularizers]
        if not regularizers:
            raise ValueError(
                "`regularizers` must hold at least one regulariser. Received: "
                "regularizers=[]"
            )
        sampling = [r for r in regularizers if r.needs_activations]
        if len(sampling) > 1:
            raise ValueError(
                "RegularizedModel takes at most one regulariser that hooks "
                f"activations (NeuronSensitivity). Received: regularizers={regularizers}"
            )
        if sum(r.replaces_loss for r in regularizers) > 1:
            raise ValueError(
                "RegularizedModel takes at most one regulariser that replaces "
                f"the loss (AdversarialTraining). Received: regularizers={regularizers}"
            )
        seed = _seeds.check(seed)
        _single_output(model)
        _fit_checks.num_classes(model)

        self.model = model
        self.regularizers = regularizers
        self.seed = seed
        # One seed for both streams when none is given; not in the config,
        # so a reloaded model takes its streams' states from the file.
        self._stream_seed = _seeds.draw() if seed is None else seed
        self.evaluate_regularizers = bool(evaluate_regularizers)
        self._report_terms = True

        self._probe = None
        self._chunked = False
        for reg in regularizers:
            if reg.needs_activations:
                if getattr(model, "inputs", None) is None:
                    raise ValueError(
                        f"{type(reg).__name__} hooks layer outputs, which needs a "
                        "model with symbolic inputs (functional, or Sequential "
                        "starting with keras.Input). Received: a subclassed model "
                        f"{model.name!r} without `inputs`"
                    )
                self._chunked = reg.chunk_size is not None
                self._probe = _Probe(model, reg.hooked_layers(model), reg.num_perturbations + 1, self._chunked)
        self.perturbation, self.seed_generators = self._random_streams(_TRAINING)
        if self.evaluate_regularizers:
            # A stream of its own, restarted by every `evaluate`: validation
            # neither shifts the training draws nor varies between epochs.
            self.evaluation_perturbation, self.evaluation_seed_generators = (
                self._random_streams(_EVALUATION)
            )
            self._evaluation_start = [
                keras.ops.convert_to_numpy(g.state.value)
                for g in self._generators(training=False)
            ]
        self.trackers = [keras.metrics.Mean(name=reg.name) for reg in regularizers]
        if model.built:
            self.built = True

    def _random_streams(self, stream):
        """A SpherePerturbation or a SeedGenerator per regulariser.

        Regulariser i of `stream` (`_TRAINING` or `_EVALUATION`) gets the
        seed `_seeds.mix(seed, stream, i)`: hashed, not `seed + i`, which
        on PyTorch would make regulariser i + 1 repeat regulariser i's
        draws one step later (and seed s + 1 repeat seed s).
        """
        perturbation, generators = None, []
        for i, reg in enumerate(self.regularizers):
            seed = _seeds.mix(self._stream_seed, stream, i)
            if reg.needs_activations:
                perturbation = SpherePerturbation(reg.num_perturbations, reg.epsilon, seed=seed)
                generators.append(None)
            else:
                generators.append(_seeds.generator(seed))
        return perturbation, generators

    def _stream(self, training):
        if training:
            return self.perturbation, self.seed_generators
        return self.evaluation_perturbation, self.evaluation_seed_generators

    def _generators(self, training):
        perturbation, generators = self._stream(training)
        generators = [g for g in generators if g is not None]
        if perturbation is not None:
            generators.append(perturbation.seed_generator)
        return generators

    def call(self, inputs, training=None):
        if not (training and self._probe is not None):
            return self.model(inputs, training=training)
        y_pred, hooked = self._hooked_pass(inputs, self.perturbation, training=True)
        self._probe.remember(y_pred, hooked)
        return y_pred

    def _hooked_pass(self, x, perturbation, training):
        """The batch and its N perturbed copies through the hooked layers.

        Returns `y_pred` on the clean rows and `(activations, perturbed)`:
        with one pass of `(N + 1) * B` rows, the activations of all rows and
        None; when the regulariser runs the copies itself in chunks, the
        activations of the B clean rows and the copies' inputs.
        """
        perturbed = perturbation(x, training=True)
        if self._chunked:
            outputs = self._probe.model(x, training=training)
            return outputs[0], (list(outputs[1:]), perturbed)
        batch = keras.ops.shape(x)[0]
        rows = keras.ops.concatenate([x, perturbed], axis=0)
        outputs = self._probe.model(rows, training=training)
        return outputs[0][:batch], (list(outputs[1:]), None)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        hooked = None if self._probe is None else self._probe.recall(y_pred)
        if not (training or self.evaluate_regularizers):
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        # Under tf.distribute, Keras divides each replica's compiled loss by
        # the number of replicas (the replicas' gradients are summed). The
        # terms are means over the replica's examples like the unscaled
        # loss, so everything is combined unscaled and scaled once at the end.
        replicas = backend.num_replicas()

        def loss(prediction):
            value = super(RegularizedModel, self).compute_loss(
                x, y, prediction, sample_weight, training=training
            )
            return value * replicas if replicas > 1 else value

        perturbation, generators = self._stream(training)
        activations = perturbed = None
        if self._probe is not None:
            if hooked is None:
                _, hooked = self._hooked_pass(x, perturbation, training=training)
            activations, perturbed = hooked

        rows = keras.ops.shape(x)[0]
        terms = []
        for reg, seed, tracker in zip(self.regularizers, generators, self.trackers):
            batch = regularizers_lib.Batch(
                model=self.model,
                x=x,
                y=y,
                y_pred=y_pred,
                sample_weight=sample_weight,
                loss=loss,
                seed=seed,
                activations=activations,
                training=training,
                perturbed=perturbed,
                hooked=None if perturbed is None else self._probe,
            )
            term = reg(batch)
            # Weighted by batch size, like Keras' own loss tracker, so the
            # epoch means of `loss` and the terms combine exactly; under
            # tf.distribute the replicas' sums add up to the global mean.
            tracker.update_state(term, sample_weight=rows)
            terms.append((reg, term))

        replaced = [term for reg, term in terms if reg.replaces_loss]
        total = replaced[0] if replaced else loss(y_pred)
        for reg, term in terms:
            if not reg.replaces_loss:
                total = total + reg.weight * term
        return total / replicas if replicas > 1 else total

    def evaluate(self, *args, **kwargs):
        # Terms not computed in evaluation are left out of its logs rather
        # than reported as 0.
        self._report_terms = self.evaluate_regularizers
        if self.evaluate_regularizers:
            for generator, start in zip(self._generators(training=False), self._evaluation_start):
                generator.state.assign(start)
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._report_terms = True

    def get_metrics_result(self):
        logs = super().get_metrics_result()
        if not self._report_terms:
            for tracker in self.trackers:
                logs.pop(tracker.name, None)
        return logs

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after checking the data (see `_fit_checks`).

        In-memory `x`, `y` and `validation_data` are checked before the
        first epoch; a `PyDataset` or `tf.data.Dataset` (also as
        validation data) batch by batch as it is read, its first bad batch
        ending `fit` with a `ValueError` that says which batch.
        """
        backend.check_distribution()
        _fit_checks.check_arrays(self.model, x, y)
        validation = kwargs.get("validation_data")
        arrays = _fit_checks.labels_of(validation)
        if arrays is not None:
            _fit_checks.check_arrays(
                self.model, *arrays, names=("validation_data[0]", "validation_data[1]")
            )
        elif validation is not None:
            kwargs["validation_data"] = _fit_checks.checked(self.model, validation)
        x = _fit_checks.checked(self.model, x)
        try:
            return super().fit(x, y, *args, **kwargs)
        except Exception as error:
            found = _fit_checks.raised_by_a_check(error)
            if found is None:
                raise
            raise found from None

    # Keras saves no seed-generator state; saving it here makes a reloaded
    # model (or one resumed by BackupAndRestore) continue the same draws.
    # The evaluation stream's start is saved too: with `seed=None` a
    # reloaded model would otherwise validate on other perturbations.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        for i, generator in enumerate(self._generators(training=True)):
            store[f"seed_state_{i}"] = keras.ops.convert_to_numpy(generator.state.value)
        if self.evaluate_regularizers:
            for i, start in enumerate(self._evaluation_start):
                store[f"evaluation_seed_state_{i}"] = start

    def load_own_variables(self, store):
        ours = ("seed_state_", "evaluation_seed_state_")
        keys = list(store.keys())
        super().load_own_variables({k: store[k] for k in keys if not k.startswith(ours)})
        for i, generator in enumerate(self._generators(training=True)):
            key = f"seed_state_{i}"
            if key in keys:
                generator.state.assign(store[key])
        if self.evaluate_regularizers:
            for i in range(len(self._evaluation_start)):
                key = f"evaluation_seed_state_{i}"
                if key in keys:
                    self._evaluation_start[i] = np.asarray(store[key])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.model),
            "regularizers": [
                keras.saving.serialize_keras_object(r) for r in self.regularizers
            ],
            "seed": self.seed,
            "evaluate_regularizers": self.evaluate_regularizers,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        config["regularizers"] = [
            keras.saving.deserialize_keras_object(r) for r in config["regularizers"]
        ]
        return cls(**config)
