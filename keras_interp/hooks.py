"""Layers at any depth of a model, and one network that outputs their activations.

A pretrained backbone nested in a classifier (`h = backbone(inputs)`) is
one layer of the outer model, and its inner layers' outputs belong to the
backbone's own graph, not the outer one. To read them in one forward pass
the outer graph is traced again with every nested functional or
Sequential model inlined: the same layer objects (so the same weights)
are called on the outer tensors, and the hooked layers' outputs are
collected on the way. Nothing is copied and nothing runs twice.

Layers are named by paths: `"dense"` at the top, `"backbone/block_1_expand"`
inside a nested model.
"""

import keras


def _is_graph_model(layer):
    # A subclassed model has no graph to inline; it stays one layer.
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, keras.Model) and getattr(layer, "outputs", None) is not None
    )


def _takes_training(operation):
    """Whether Keras passes a model's `training` on to `operation`: layers
    (their call-context arguments), not `keras.ops` calls in a graph."""
    default = ("training",) if isinstance(operation, keras.layers.Layer) else ()
    return "training" in getattr(operation, "_call_context_args", default)


def layer_paths(model):
    """`[(path, layer)]` for every layer at any depth, containers excluded.

    In network order; nested functional and Sequential models are walked
    into, input layers left out. A layer shared by several models appears
    once, under its first path.
    """
    out, seen = [], set()

    def walk(container, prefix):
        for layer in container.layers:
            if isinstance(layer, keras.layers.InputLayer) or id(layer) in seen:
                continue
            seen.add(id(layer))
            path = prefix + layer.name
            if _is_graph_model(layer):
                walk(layer, path + "/")
            else:
                out.append((path, layer))

    walk(model, "")
    return out


def _listed(paths, limit=40):
    shown = ", ".join(paths[:limit])
    return shown + (f", ... ({len(paths) - limit} more)" if len(paths) > limit else "")


def select_layers(model, specs, argument="layers"):
    """The layers of `model` (at any depth) that `specs` names, in network order.

    Args:
        model: a functional or Sequential model.
        specs: None for every layer with weights (logits included); or a
            list of paths (`"outer/inner"`), bare layer names (unique at
            any depth) and layer classes (every layer of that class at any
            depth).
        argument: the argument's name, for error messages.

    Returns:
        A non-empty list of layers.

    Raises:
        ValueError: for an unknown or ambiguous name (the message lists the
            available paths), or a selection that matches nothing.
    """
    paths = layer_paths(model)
    if specs is None:
        chosen = [layer for _, layer in paths if layer.weights]
    else:
        by_path = dict(paths)
        chosen = []
        for spec in specs:
            if isinstance(spec, str):
                if spec in by_path:
                    matches = [by_path[spec]]
                else:
                    matches = [layer for path, layer in paths if path.rsplit("/", 1)[-1] == spec]
                    if len(matches) > 1:
                        named = [path for path, layer in paths if path.rsplit("/", 1)[-1] == spec]
                        raise ValueError(
                            f"`{argument}` names {spec!r}, a name that several nested layers "
                            f"share; give its path, one of: {named}. Received: {argument}={specs!r}"
                        )
                    if not matches:
                        raise ValueError(
                            f"`{argument}` names a layer that {model.name!r} does not have. "
                            f"Available layers: {_listed([p for p, _ in paths])}. "
                            f"Received: {argument}={specs!r}"
                        )
            else:
                matches = [layer for _, layer in paths if isinstance(layer, spec)]
            chosen += [layer for layer in matches if all(layer is not c for c in chosen)]
        # Network order, whatever order the user listed them in.
        chosen = [layer for _, layer in paths if any(layer is c for c in chosen)]
    if not chosen:
        raise ValueError(
            f"No layer of {model.name!r} matches. Received: {argument}={specs!r}"
        )
    return chosen


def path_of(model, layer):
    """The path of `layer` in `model` (see `layer_paths`)."""
    for path, candidate in layer_paths(model):
        if candidate is layer:
            return path
    raise ValueError(f"{layer.name!r} is not a layer of {model.name!r}.")


def probe(model, layers, call=None):
    """A functional model: `model`'s inputs -> `[output, *activations of layers]`.

    The graph of `model` is traced again on new inputs with nested graph
    models inlined, calling the very same layer objects: the probe shares
    every weight and runs one forward pass. A nested model called with
    `training=False` (Keras' transfer-learning pattern) passes it on to
    every inner layer, as Keras does when it runs the nested model.

    Args:
        model: a functional or Sequential model with one output.
        layers: layers of `model` at any depth (e.g. from `select_layers`).
        call: optional `call(layer, *args, **kwargs) -> outputs`, used
            instead of `layer(*args, **kwargs)` for every non-container
            layer, to change how a layer runs in the probe (e.g. random
            layers). Defaults to calling the layer.

    Returns:
        A `keras.Model` whose first output is `model`'s output.
    """
    wanted = list(layers)
    wanted_ids = {id(layer) for layer in wanted}
    found = {}
    leaf = call or (lambda layer, *args, **kwargs: layer(*args, **kwargs))

    def run(layer, *args, **kwargs):
        if _is_graph_model(layer):
            return _inline(layer, args, kwargs)
        outputs = leaf(layer, *args, **kwargs)
        if id(layer) in wanted_ids and id(layer) not in found:
            found[id(layer)] = outputs
        return outputs

    def _inline(container, args, kwargs):
        training = kwargs.get("training")

        def inner(layer, *a, **k):
            # As Keras' own functional call does: only to operations that
            # take it (layers), not to `keras.ops` calls in the graph such
            # as ConvNeXt's residual `x + block(x)`.
            if training is not None and _takes_training(layer):
                k = {**k, "training": training}
            return run(layer, *a, **k)

        if isinstance(container, keras.Sequential):
            h = args[0]
            for layer in container.layers:
                if not isinstance(layer, keras.layers.InputLayer):
                    h = inner(layer, h)
            return h
        clone = keras.models.clone_model(
            container, input_tensors=args[0], clone_function=lambda layer: layer, call_function=inner
        )
        return clone.outputs[0] if len(clone.outputs) == 1 else clone.outputs

    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in model.inputs]
    graph_inputs = inputs[0] if len(inputs) == 1 else inputs
    output = _inline(model, (graph_inputs,), {})
    missing = [layer.name for layer in wanted if id(layer) not in found]
    if missing:
        raise ValueError(
            f"The layers {missing} are not on the path from {model.name!r}'s inputs to its output."
        )
    return keras.Model(graph_inputs, [output] + [found[id(layer)] for layer in wanted])
