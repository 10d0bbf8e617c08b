"""The one seam between keras_interp and the deep-learning frameworks.

Everything else in the package is written with `keras.ops` and
`keras.random`; only this file imports TensorFlow, JAX or PyTorch, and only
lazily, for the backend Keras runs on (`keras.config.backend()`).
"""

import keras

SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")


def grad(fn, *, create_graph=False):
    """Returns a function computing the input gradient of `sum(fn(x))`.

    `grad(fn)(x)` is `d sum(fn(x)) / dx`, shaped like `x`, on the active
    Keras backend. When `fn` maps a batch to one score per example and the
    examples do not interact (a model in inference mode), row `i` of the
    result is the gradient of score `i` with respect to example `i`.

    With `create_graph=True` the result stays on the autodiff graph: it can
    be differentiated again, with respect to the model's weights (double
    backprop, needed by Jacobian regularisation and input-gradient
    penalties) or with respect to `x` (attacks on explanations). With
    `create_graph=False` the result is a constant for any outer
    differentiation, which saves memory.

    Args:
        fn: a callable mapping a tensor `x` to a tensor; it may close over a
            model and call it.
        create_graph: whether the gradient is itself differentiable.
            Defaults to `False`.

    Returns:
        A function `x -> gradient`, taking an array or backend tensor and
        returning a backend tensor shaped like `x`.

    Example:

    ```python
    g = keras_interp.backend.grad(lambda x: keras.ops.sum(x**2, axis=1))
    g(np.ones((2, 3), "float32"))  # 2 * x
    ```
    """
    name = keras.config.backend()
    if name == "tensorflow":
        return _tensorflow_grad(fn, create_graph)
    if name == "jax":
        return _jax_grad(fn, create_graph)
    if name == "torch":
        return _torch_grad(fn, create_graph)
    raise ValueError(
        "keras_interp needs automatic differentiation, which the active "
        f"Keras backend does not offer. Expected one of {SUPPORTED_BACKENDS} "
        "(set the KERAS_BACKEND environment variable). "
        f"Received: keras.config.backend()={name!r}"
    )


def _tensorflow_grad(fn, create_graph):
    import tensorflow as tf

    def gradient(x):
        x = tf.convert_to_tensor(x)
        # An enclosing tape (Keras' train step) records the ops of this inner
        # gradient, which is what makes double backprop work on TF.
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x))
        g = tape.gradient(
            total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return g if create_graph else tf.stop_gradient(g)

    return gradient


def _jax_grad(fn, create_graph):
    import jax
    import jax.numpy as jnp

    # jax.grad is a pure transformation: its result is differentiable by any
    # enclosing jax.grad (Keras' stateless train step) without extra work.
    total_grad = jax.grad(lambda x: jnp.sum(fn(x)))

    def gradient(x):
        g = total_grad(jnp.asarray(x))
        return g if create_graph else jax.lax.stop_gradient(g)

    return gradient


def _torch_grad(fn, create_graph):
    import torch

    def gradient(x):
        x = keras.ops.convert_to_tensor(x)
        if not x.requires_grad:
            # A leaf copy to differentiate against; an `x` that already
            # requires grad (an attack iterate) keeps its history.
            x = x.detach().requires_grad_(True)
        # Keras' predict/evaluate loops run under no_grad.
        with torch.enable_grad():
            total = torch.sum(fn(x))
            if not total.requires_grad:
                return torch.zeros_like(x)
            (g,) = torch.autograd.grad(
                total,
                x,
                create_graph=create_graph,
                allow_unused=True,
                materialize_grads=True,
            )
        return g if create_graph else g.detach()

    return gradient


def is_symbolic(x):
    """Whether `x` is a traced or symbolic tensor, whose values are not known.

    Argument checks that read values (finiteness, label ranges) run on
    concrete inputs only: inside a compiled training step the values do
    not exist yet, and the step must not stop for a host round trip.
    """
    if isinstance(x, keras.KerasTensor):
        return True
    name = keras.config.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return isinstance(x, tf.Tensor) and tf.is_symbolic_tensor(x)
    if name == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    return False


def is_tf_dataset(data):
    """Whether `data` is a `tf.data.Dataset` (without importing TensorFlow)."""
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


def assert_finite_batches(dataset, num_classes, marker):
    """`dataset` with each batch asserted finite and its labels in range.

    A failed assertion raises TensorFlow's `InvalidArgumentError` when the
    batch is read, with `marker` and the batch's index in its message.

    Args:
        dataset: a `tf.data.Dataset` of `x` or `(x, y, ...)` batches.
        num_classes: classes of the model, or None (labels unchecked).
        marker: a string the caller looks for in the error.

    Returns:
        The checked `tf.data.Dataset`.
    """
    import tensorflow as tf

    def check(index, batch):
        parts = batch if isinstance(batch, tuple) else (batch,)
        conditions = []
        if parts[0].dtype.is_floating:
            conditions.append(tf.reduce_all(tf.math.is_finite(parts[0])))
        if num_classes is not None and len(parts) > 1 and parts[1].shape.rank in (1, 2):
            y = parts[1]
            if y.shape.rank == 1 or y.shape[-1] == 1:
                y = tf.cast(tf.reshape(y, [-1]), "float64")
                conditions.append(tf.reduce_all((y >= 0) & (y < num_classes)))
        if not conditions:
            return batch
        with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(conditions), [marker, index])]):
            return tf.nest.map_structure(tf.identity, batch)

    return dataset.enumerate().map(check)


def compiled(fn, variables=()):
    """Compiles `fn` for repeated eager calls on the active backend.

    The attribution loop calls the same gradient function once per chunk;
    compiling it once removes the per-op dispatch cost of eager execution.
    TensorFlow gets a `tf.function`; JAX a `jax.jit` whose `variables` are
    read at every call and passed in as arguments (so training updates are
    seen, never baked in as constants); PyTorch runs `fn` eagerly, which is
    already fast.

    Args:
        fn: a function of tensors returning a tensor (or a structure of
            them) that reads Keras `variables`.
        variables: the Keras variables `fn` reads (e.g. `model.variables`).

    Returns:
        A callable with the signature of `fn`.
    """
    name = keras.config.backend()
    if name == "tensorflow":
        return _tensorflow_compiled(fn)
    if name == "jax":
        import jax

        variables = list(variables)

        @jax.jit
        def pure(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        return lambda *args: pure([v.value for v in variables], *args)
    return fn


def _tensorflow_compiled(fn):
    """One concrete function per argument signature, batch axes left free.

    A `tf.function` traces again for each new batch size (a last partial
    chunk), and TensorFlow counts traces per Python function over all the
    `tf.function`s built from it, so one function per model (as the
    attribution, metric and attack caches build) reads as "retracing" after
    a few models. Tracing once per model with the leading axes free, and
    calling the concrete function, traces exactly once per model and shape.
    """
    import tensorflow as tf

    traces = {}

    def call(*args):
        args = [tf.convert_to_tensor(a) for a in args]
        key = tuple((a.dtype, tuple(a.shape[1:]) if a.shape.rank else None) for a in args)
        if key not in traces:
            spec = [
                tf.TensorSpec([None] + list(a.shape[1:]) if a.shape.rank else [], a.dtype) for a in args
            ]
            traces[key] = tf.function(fn).get_concrete_function(*spec)
        return traces[key](*args)

    return call


def fused(fn):
    """Fuses an element-wise-heavy tensor function into compiled kernels.

    For arithmetic over large activations (NsLoss reads every hooked
    activation of N + 1 passes), per-op kernels make one memory pass per op
    in the forward and again in the backward pass. TensorFlow gets the
    function XLA-compiled on its own (`jit_compile=True`), inside an
    otherwise unchanged, non-XLA training step; JAX already fuses inside
    its jitted step; PyTorch runs it eagerly.

    Args:
        fn: a pure function of tensors (no variables, no random draws);
            Python scalars among its arguments are compile-time constants.

    Returns:
        A callable with the signature of `fn`, differentiable like `fn`.
    """
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        # reduce_retracing: a second shape (a last partial batch, another
        # model) gives one trace with relaxed (None) sizes, so `fn` must
        # read sizes with keras.ops.shape. Without it the NsLoss step ran
        # at 2x its floor instead of 1.15x (benchmarks/training.py).
        return tf.function(fn, jit_compile=True, reduce_retracing=True)
    return fn


def remat_sum(fn, chunks, *args):
    """`sum_c fn(chunks[c], *args)`, each chunk rematerialised (`keras.remat`).

    For a sum over chunks of a large computation (NsLoss's passes of the
    perturbed copies): the activations inside `fn` are not stored for the
    backward pass but recomputed there. Each chunk's input is chained to
    the previous chunk's result by a zero, so the forward passes run one
    after the other rather than side by side. How many chunks' recomputed
    activations are alive at once in the backward pass is then the
    scheduler's choice (`benchmarks/memory.py`, 224x224, chunks of one
    copy: TensorFlow 0.54x a single pass's memory, JAX's XLA:CPU 0.88x).
    A `lax.scan` over a checkpointed body bounded JAX to 0.47x but ran
    16x slower on CPU, so it is not used.

    Args:
        fn: `fn(chunk, *args) -> tensor`, differentiable, no state updates
            and no random draws (it is run twice).
        chunks: a tensor whose leading axis indexes the chunks.
        *args: tensors `fn` reads (gradients flow to them).

    Returns:
        The sum of `fn` over the chunks.
    """
    step = keras.remat(fn)
    total = 0.0
    for i in range(chunks.shape[0]):
        chunk = chunks[i]
        if i:
            chunk = chunk + keras.ops.cast(0.0 * keras.ops.sum(total), chunk.dtype)
        total = total + step(chunk, *args)
    return total


def num_replicas():
    """The number of replicas whose gradients a training step sums.

    Under a `tf.distribute` strategy every replica computes the loss of its
    own slice of the global batch and the gradients are summed, so Keras
    divides each replica's compiled loss by this number (and multiplies it
    back for the logs). 1 outside a strategy and on JAX, whose
    `keras.distribution` runs one program over the global batch, and on
    PyTorch.
    """
    if keras.config.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_rows(rows):
    """Where this replica's `rows` examples sit in the step's global batch.

    Args:
        rows: the number of examples of the batch this replica computes
            (an int or a scalar tensor).

    Returns:
        `(start, total)` scalar tensors inside a `tf.distribute` replica
        context with more than one replica (one all-gather of the replicas'
        batch sizes, so uneven last batches are placed exactly), otherwise
        None: the batch is the whole batch.
    """
    if keras.config.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    sizes = context.all_gather(tf.reshape(tf.cast(rows, "int32"), (1,)), axis=0)
    return tf.reduce_sum(sizes[: context.replica_id_in_sync_group]), tf.reduce_sum(sizes)


def draw_rows(sample, shape, copies=1):
    """A random draw for this replica's rows, made for the global batch.

    `sample(shape) -> tensor` draws from a seed generator the model owns.
    The rows of `shape` are `copies` blocks of the local batch, block-major
    (row `k * B + m` belongs to example `m`). Outside a multi-replica
    `tf.distribute` step this is `sample(shape)`. Inside one, every replica
    draws for the global batch from the same (mirrored) generator state and
    keeps the rows of its own examples: replicas get different draws, and
    the draws of the whole step are those of one device training on the
    global batch with the same seed. (On JAX, `keras.distribution` already
    runs the draw once for the global batch.)

    Args:
        sample: `sample(shape) -> tensor`, one `keras.random` call.
        shape: the local shape, `[copies * B, ...]`.
        copies: blocks of B rows in `shape[0]`. Defaults to 1.

    Returns:
        A tensor of `shape`.
    """
    batch = shape[0] // copies
    placement = replica_rows(batch)
    if placement is None:
        return sample(shape)
    import tensorflow as tf

    start, total = placement
    full = sample((copies * total,) + tuple(shape[1:]))
    inner = tf.shape(full)[1:]
    full = tf.reshape(full, tf.concat([[copies, total], inner], axis=0))
    part = tf.reshape(full[:, start : start + batch], tf.concat([[-1], inner], axis=0))
    part.set_shape([None] + list(full.shape[2:]))
    return part


def check_distribution():
    """Raises if a `keras.distribution` is set on a backend that ignores it.

    Keras 3 applies `keras.distribution` (e.g. `DataParallel`) only in its
    JAX trainer; on TensorFlow and PyTorch `fit` would silently train on one
    device.

    Raises:
        ValueError: naming the backend and what to use instead.
    """
    name = keras.config.backend()
    distribution = keras.distribution.distribution()
    if distribution is None or name == "jax":
        return
    instead = {
        "tensorflow": "On TensorFlow use a tf.distribute strategy (e.g. "
        "tf.distribute.MirroredStrategy, building and compiling the model in "
        "`strategy.scope()`).",
        "torch": "Keras 3 has no distributed training for PyTorch: train on one "
        "device, or switch to KERAS_BACKEND=jax.",
    }.get(name, "")
    raise ValueError(
        "keras.distribution is applied by Keras' JAX trainer only; on the "
        f"{name!r} backend `fit` would train on one device and ignore it. "
        f"{instead} Unset it with keras.distribution.set_distribution(None). "
        f"Received: keras.config.backend()={name!r}, "
        f"keras.distribution.distribution()={distribution}"
    )


_SUMMARY_WRITERS = {}


def image_summary(log_dir, tag, images, step):
    """Writes images to TensorBoard's event files under `log_dir`.

    TensorBoard's file format comes with TensorFlow, so this works on any
    Keras backend as long as TensorFlow is installed.

    Args:
        log_dir: the TensorBoard log folder.
        tag: the images' name in TensorBoard.
        images: uint8 array `[k, H, W, C]`, C = 1, 3 or 4.
        step: the step (e.g. the 0-based epoch).

    Returns:
        True if written, False if TensorFlow or TensorBoard is not installed.
    """
    try:
        import tensorboard  # noqa: F401  (tf.summary.image needs it)
        import tensorflow as tf
    except ImportError:
        return False
    writer = _SUMMARY_WRITERS.get(log_dir)
    if writer is None:
        writer = _SUMMARY_WRITERS[log_dir] = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        tf.summary.image(tag, images, step=step, max_outputs=len(images))
    writer.flush()
    return True
