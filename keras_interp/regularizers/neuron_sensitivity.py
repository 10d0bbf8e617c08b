"""NsLoss: the neuron-sensitivity regulariser of paper 1 (§4.2)."""

import math

import keras

from keras_interp import _checks
from keras_interp import _layer_classes
from keras_interp import backend
from keras_interp import hooks
from keras_interp.regularizers.base import Regularizer


def _per_neuron(clean, perturbed):
    """MA and MD (paper 1, Eqs. 4-5) of one layer, one value per neuron."""
    # Static unit count: the batch size is unknown inside a traced step
    # with a partial last batch.
    units = math.prod(clean.shape[1:])
    batch = keras.ops.shape(clean)[0]
    clean = keras.ops.reshape(clean, (-1, units))
    perturbed = keras.ops.reshape(perturbed, (-1, batch, units))
    mean_activation = keras.ops.mean(keras.ops.abs(clean), axis=0)
    mean_difference = keras.ops.mean(keras.ops.abs(clean[None] - perturbed), axis=(0, 1))
    return mean_activation, mean_difference


def _loss_from_rows(activations, num_perturbations, epsilon):
    """NsLoss from activations of the clean batch stacked over its N copies.

    Each tensor is `[(N + 1) * B, ...]`: the B clean rows, then the N
    perturbed copies, perturbation-major. The sum over neurons of
    `MD_ij / (epsilon |M_i|)` is the sum of all `|M(x_k) - M(x)|` divided by
    `epsilon * |M_i| * N * B`.
    """
    total = 0.0
    for rows in activations:
        # One row per copy: the sum needs no batch or unit axis, and no
        # static size is read (a relaxed trace of `backend.fused` has None).
        rows = keras.ops.reshape(keras.ops.cast(rows, "float32"), (num_perturbations + 1, -1))
        clean, *copies = keras.ops.split(rows, num_perturbations + 1, axis=0)
        # One term per copy keeps every op element-wise: broadcasting the
        # clean rows over all copies makes its gradient a reduction over the
        # copies, 5-15x slower on CPUs (XLA's and torch's) than these sums,
        # which split's backward (one concatenation) joins again.
        difference = 0.0
        for copy in copies:
            difference = difference + keras.ops.sum(keras.ops.abs(copy - clean))
        # |M_i| * B values per copy; at least 1: a tf.distribute replica may
        # get no rows of a short last batch, and its term must be 0, not 0/0.
        values = keras.ops.maximum(keras.ops.cast(keras.ops.size(clean), "float32"), 1.0)
        total = total + difference / (epsilon * num_perturbations * values)
    return total


_fused_loss_from_rows = backend.fused(_loss_from_rows)


def _chunked_loss(batch, num_perturbations, epsilon, chunk_size):
    """NsLoss with the N copies run `chunk_size` at a time, rematerialised.

    Each chunk's pass and its `|copy - clean|` sums are one function of the
    copies' inputs, the clean activations and the weights, returning one
    scalar per layer, summed over the chunks by `backend.remat_sum`: its
    activations are freed after the forward pass and recomputed in the
    backward pass instead of being stored for it.
    """
    clean = [keras.ops.cast(c, "float32") for c in batch.activations]
    layers = len(clean)
    inner = tuple(batch.x.shape[1:])
    copies = keras.ops.reshape(batch.perturbed, (num_perturbations, -1) + inner)
    weights = batch.hooked.trainable_values()

    def differences(copies, *tensors):
        clean, weights = tensors[:layers], list(tensors[layers:])
        rows = keras.ops.reshape(copies, (-1,) + inner)
        perturbed = batch.hooked.activations(rows, weights, batch.training)
        sums = []
        for c, p in zip(clean, perturbed):
            p = keras.ops.reshape(keras.ops.cast(p, "float32"), (-1,) + tuple(c.shape))
            sums.append(keras.ops.sum(keras.ops.abs(p - c[None])))
        return keras.ops.stack(sums)

    # Whole chunks as one [chunks, k, B, ...] tensor, and a shorter last one.
    whole = num_perturbations // chunk_size * chunk_size
    total = 0.0
    if whole:
        chunks = keras.ops.reshape(
            copies[:whole], (whole // chunk_size, chunk_size) + tuple(keras.ops.shape(copies)[1:])
        )
        total = backend.remat_sum(differences, chunks, *clean, *weights)
    if whole < num_perturbations:
        total = total + backend.remat_sum(differences, copies[None, whole:], *clean, *weights)
    batch_size = keras.ops.maximum(keras.ops.cast(keras.ops.shape(batch.x)[0], "float32"), 1.0)
    units = keras.ops.convert_to_tensor([math.prod(c.shape[1:]) for c in clean], "float32")
    return keras.ops.sum(total / (epsilon * units * num_perturbations * batch_size))


def neuron_sensitivity_loss(clean, perturbed, epsilon):
    """NsLoss of paper 1 (§4.2, Eqs. 4-7) from hooked activations.

    For layer `i` with `|M_i|` units per sample and neuron `j`:
    `MA_ij = mean_m |M_ij(X[m])|`, `MD_ij = mean_{k,m} |M_ij(X[m]) -
    M_ij(X_p^k[m])|`, `NS_ij = MD_ij / (epsilon |M_i| MA_ij)`, and
    `NsLoss = sum_i sum_j NS_ij * MA_ij`. The product is computed as
    `MD_ij / (epsilon |M_i|)`, its value wherever `MA_ij > 0` and its limit
    where a unit is dead on the batch (`MA_ij = 0`), so no 0/0 appears.
    The arithmetic runs in float32.

    Args:
        clean: list of per-layer activations on the batch, each `[B, ...]`.
        perturbed: the matching list on the N perturbed copies, each
            `[N, B, ...]` (or `[N * B, ...]`, perturbation-major, as
            `SpherePerturbation` produces).
        epsilon: radius of the perturbation sphere, > 0.

    Returns:
        A scalar tensor.

    Example:

    ```python
    loss = neuron_sensitivity_loss([h], [h_perturbed], epsilon=0.1)
    ```
    """
    epsilon = _checks.positive(epsilon, "epsilon")
    if len(clean) != len(perturbed) or not clean:
        raise ValueError(
            "`clean` and `perturbed` must hold one activation per hooked layer "
            f"each. Received: len(clean)={len(clean)}, len(perturbed)={len(perturbed)}"
        )
    rows, counts = [], set()
    for c, p in zip(clean, perturbed):
        c, p = keras.ops.convert_to_tensor(c), keras.ops.convert_to_tensor(p)
        stacked = len(p.shape) == len(c.shape) + 1
        if stacked:
            counts.add(p.shape[0])
        elif c.shape[0] and p.shape[0] and p.shape[0] % c.shape[0] == 0:
            counts.add(p.shape[0] // c.shape[0])
        else:
            raise ValueError(
                "`perturbed` must be shaped [N, B, ...] or [N * B, ...] for a "
                f"clean batch [B, ...]. Received: clean shape {tuple(c.shape)}, "
                f"perturbed shape {tuple(p.shape)}"
            )
        rows.append(keras.ops.concatenate([c, keras.ops.reshape(p, (-1,) + tuple(c.shape[1:]))]))
    if len(counts) != 1:
        raise ValueError(
            "Every layer must have the same number of perturbed copies. "
            f"Received: N per layer {sorted(counts)}"
        )
    return _fused_loss_from_rows(rows, counts.pop(), epsilon)


def neuron_sensitivities(clean, perturbed, epsilon):
    """NS per neuron and layer (paper 1, Eq. 6), for diagnostics.

    Dead units (`MA_ij = 0` on the batch) get a guarded denominator and so
    a large but finite value rather than NaN.

    Returns:
        A list with one `[|M_i|]` tensor per layer.
    """
    epsilon = _checks.positive(epsilon, "epsilon")
    out = []
    for c, p in zip(clean, perturbed):
        mean_activation, mean_difference = _per_neuron(c, p)
        units = mean_difference.shape[0]
        guarded = keras.ops.maximum(mean_activation, keras.backend.epsilon())
        out.append(mean_difference / (epsilon * units * guarded))
    return out


def _layer_spec_config(spec):
    """A layer name stays a string; a layer class is saved by its Keras name."""
    if isinstance(spec, str):
        return spec
    return {"class": _layer_classes.name_of(spec)}


def _layer_spec_from_config(spec):
    if isinstance(spec, str):
        return spec
    if not (isinstance(spec, dict) and set(spec) == {"class"}):
        raise ValueError(
            "A saved `layers` entry must be a layer name or {'class': NAME}. "
            f"Received: {spec!r}"
        )
    return _layer_classes.resolve(spec["class"], what="`layers` class of NeuronSensitivity")


@keras.saving.register_keras_serializable(package="keras_interp")
class NeuronSensitivity(Regularizer):
    """NsLoss (paper 1, §4.2): penalises how much every neuron moves under
    small random input perturbations.

    Each training batch X is sent through the network together with N
    copies of every sample perturbed on the L2 sphere of radius `epsilon`
    (`keras_interp.layers.SpherePerturbation`), as one forward pass of
    `(N + 1) * B` rows through a functional sub-model that outputs the
    hooked layers' activations. The term is `neuron_sensitivity_loss` of
    those activations, and the training loss is `CE + weight * NsLoss`
    (paper 1, Eq. 3). Batch-norm layers see the clean and perturbed rows as
    one batch; with small `epsilon` their statistics are those of the
    clean batch up to O(epsilon).

    Args:
        weight: lambda of paper 1 Eq. 3, >= 0 (see `keras_interp.select_lambda`
            for the paper's protocol, §4.4).
        epsilon: radius of the perturbation sphere, > 0, in input units.
        num_perturbations: N, perturbed copies per sample, >= 1. Defaults
            to 5, the paper's value.
        layers: the layers whose outputs are hooked, at any depth of
            nested models: paths (`"backbone/block_1_expand"`), bare
            layer names (unique at any depth) and/or layer classes (every
            layer of that class at any depth). Defaults to every layer
            that has weights, at any depth, the logits layer included
            (paper 1 sums over every neuron of every layer).
        chunk_size: perturbed copies per forward pass, to bound memory.
            Defaults to None: the batch and all N copies go through the
            network as one pass of `(N + 1) * B` rows. With a chunk size
            `k`, the clean batch runs alone and the copies `k` at a time
            (`ceil(N / k)` passes of `k * B` rows), each pass
            rematerialised (`keras.remat`): its activations are recomputed
            in the backward pass instead of stored, for about one more
            forward pass of the copies. How much memory that saves depends
            on the backend's scheduler: at 224x224 with N = 5 and k = 1 a
            step took 0.54x the memory of one pass on TensorFlow and 0.88x
            on JAX (CPU; `benchmarks/RESULTS.md`). The term is the
            same up to float rounding, except that batch-norm layers
            normalise every pass with its own batch statistics (and update
            their moving statistics from the clean batch only).

    Example:

    ```python
    model = keras_interp.RegularizedModel(
        base, [keras_interp.regularizers.NeuronSensitivity(1.0, epsilon=0.5)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y)  # history has "loss" and "neuron_sensitivity"
    ```
    """

    name = "neuron_sensitivity"
    needs_activations = True

    def __init__(self, weight, epsilon, num_perturbations=5, layers=None, chunk_size=None):
        self.weight = _checks.non_negative(weight, "weight")
        self.epsilon = _checks.positive(epsilon, "epsilon")
        self.num_perturbations = _checks.positive_int(
            num_perturbations, "num_perturbations"
        )
        if layers is not None:
            if isinstance(layers, (str, type)):
                layers = [layers]
            layers = list(layers)
            bad = [s for s in layers if not isinstance(s, (str, type))]
            if not layers or bad:
                raise TypeError(
                    "`layers` must be a non-empty list of layer names or layer "
                    f"classes. Received: layers={layers!r}"
                )
        self.layers = layers
        self.chunk_size = None if chunk_size is None else _checks.positive_int(
            chunk_size, "chunk_size"
        )

    def hooked_layers(self, model):
        """The layers of `model`, at any depth, whose outputs NsLoss is computed on.

        Nested functional and Sequential models (a pretrained backbone
        inside a classifier) are seen through: the default hooks every
        layer with weights at any depth, containers excluded.

        Raises:
            ValueError: for a name that is not a layer of `model` (the
                message lists the available paths), a bare name that
                several nested layers share, or a selection that matches
                no layer.
        """
        return hooks.select_layers(model, self.layers)

    def __call__(self, batch):
        if batch.perturbed is not None:
            return _chunked_loss(batch, self.num_perturbations, self.epsilon, self.chunk_size)
        return _fused_loss_from_rows(batch.activations, self.num_perturbations, self.epsilon)

    def get_config(self):
        layers = None if self.layers is None else [_layer_spec_config(s) for s in self.layers]
        return {
            "weight": self.weight,
            "epsilon": self.epsilon,
            "num_perturbations": self.num_perturbations,
            "layers": layers,
            "chunk_size": self.chunk_size,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("layers") is not None:
            config["layers"] = [_layer_spec_from_config(s) for s in config["layers"]]
        return cls(**config)
