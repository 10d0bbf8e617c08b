"""What `RegularizedModel.fit` checks before (and while) it trains.

In-memory data is checked once, up front, validation data included, so a
bad label fails before the first epoch rather than after it. A dataset's
batches exist only as training reads them: a `keras.utils.PyDataset` or a
`tf.data.Dataset` is wrapped so that its first bad batch stops `fit` with
a `ValueError` saying which batch. Python generators are not checked.
"""

import re

import keras

from keras_interp import _checks
from keras_interp import backend

_FLOAT_NEEDED = (
    "RegularizedModel's regularisers perturb or differentiate the model's "
    "input, which needs floating-point inputs. Scale integer images first, "
    "e.g. `x / 255.0`; if the model has its own `Rescaling` layer, convert "
    "without scaling, `x.astype('float32')`, or the pixels are scaled twice. "
    "Integer token ids cannot be perturbed: regularise a model that takes "
    "embeddings instead"
)


def num_classes(model):
    """The classes of `model`'s output, refusing models that are not classifiers."""
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None
    classes = outputs[0].shape[-1]
    if classes == 1:
        raise ValueError(
            "RegularizedModel trains classifiers whose output is one score per "
            "class, [batch, classes] with classes >= 2 (logits, or "
            "probabilities matched by the compiled loss). A model with a single "
            "output unit (regression, or a sigmoid binary classifier) is not "
            "supported; for two classes use `Dense(2)` with "
            "`SparseCategoricalCrossentropy`. Received: output shape "
            f"{tuple(outputs[0].shape)}"
        )
    return classes


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype") and not backend.is_symbolic(value)


def check_arrays(model, x, y, names=("x", "y")):
    """Checks in-memory inputs and labels: dtype, shape, emptiness, finiteness, range."""
    classes = num_classes(model)
    if _is_array(x):
        dtype = keras.backend.standardize_dtype(x.dtype)
        if "float" not in dtype:
            raise TypeError(f"{_FLOAT_NEEDED}. Received: {names[0]}.dtype={dtype}")
        _checks.floating_input(x, names[0], model=model)
    if _is_array(y) and _is_array(x):
        _targets(y, x.shape[0], classes, names[1])


def _targets(y, num_examples, classes, name):
    """Class indices are checked like every label; `[B, C]` targets only by shape.

    A compiled loss may train on any `[B, C]` target (a teacher's logits
    for distillation), so only their width and finiteness are checked.
    """
    shape = tuple(y.shape)
    if len(shape) != 2 or shape[1] == 1:
        _checks.class_labels(y, num_examples, classes, name)
        return
    _checks.finite(keras.ops.convert_to_tensor(y), name)
    if (classes is not None and shape[1] != classes) or shape[0] != num_examples:
        raise ValueError(
            f"Targets `{name}` shaped [batch, classes] must have {num_examples} rows and "
            f"{classes} columns, one per model output. Received: {name}.shape={tuple(y.shape)}"
        )


def _batch_parts(batch):
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def check_batch(model, batch, index, classes):
    """Checks one dataset batch; the error says which batch it was."""
    x, y = _batch_parts(batch)
    try:
        if _is_array(x):
            dtype = keras.backend.standardize_dtype(x.dtype)
            if "float" not in dtype:
                raise TypeError(f"{_FLOAT_NEEDED}. Received: x.dtype={dtype}")
            _checks.floating_input(x, "x", model=model)
            if _is_array(y):
                _targets(y, x.shape[0], classes, "y")
    except (TypeError, ValueError) as e:
        raise type(e)(f"Batch {index} (counting from 0) of the dataset is bad: {e}") from None


class _CheckedPyDataset(keras.utils.PyDataset):
    """A `PyDataset` whose batches are checked as they are read."""

    def __init__(self, inner, model):
        super().__init__(
            workers=inner.workers,
            use_multiprocessing=inner.use_multiprocessing,
            max_queue_size=inner.max_queue_size,
        )
        self._inner, self._model, self._classes = inner, model, num_classes(model)

    def __len__(self):
        return len(self._inner)

    @property
    def num_batches(self):
        return self._inner.num_batches

    def __getitem__(self, index):
        batch = self._inner[index]
        check_batch(self._model, batch, index, self._classes)
        return batch

    def on_epoch_begin(self):
        self._inner.on_epoch_begin()

    def on_epoch_end(self):
        self._inner.on_epoch_end()


_MARKER = "keras_interp: non-finite or out-of-range batch"


def checked(model, data):
    """`data` wrapped so that its batches are checked, when it is a dataset."""
    if isinstance(data, keras.utils.PyDataset):
        return _CheckedPyDataset(data, model)
    if backend.is_tf_dataset(data):
        return backend.assert_finite_batches(data, num_classes(model), _MARKER)
    return data


def raised_by_a_check(error):
    """The `ValueError` for a dataset check that tripped, or None.

    TensorFlow reports a check that fails inside its input pipeline (a
    `tf.data` assertion, or the `ValueError` of a `PyDataset` batch, which
    Keras reads through `tf.data` on that backend) as its own error; the
    check's message is recovered from it.
    """
    text = str(error)
    match = re.search(r"Batch \d+ \(counting from 0\) of the dataset is bad: [^\n]*", text)
    if match is not None:
        return ValueError(match.group(0))
    match = re.search(re.escape(_MARKER) + r"\D*(\d+)", text)
    if match is None:
        return None
    return ValueError(
        f"Batch {match.group(1)} (counting from 0) of the dataset is bad: its inputs hold NaN or "
        "inf, or its class-index labels are outside [0, classes)"
    )


def labels_of(data):
    """The in-memory labels inside `validation_data`, for `check_arrays`."""
    if isinstance(data, (tuple, list)) and len(data) >= 2 and all(_is_array(d) for d in data[:2]):
        return data[0], data[1]
    return None

