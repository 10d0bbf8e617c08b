"""Layer classes named in saved configs, resolved through Keras' registry only.

A `.keras` file is data: a string in it must never choose a module to
import or an attribute to look up. A layer class is saved by its Keras
name (`"Conv2D"`, or `"package>Name"` for a class registered with
`keras.saving.register_keras_serializable`) and loaded by looking that
name up in tables built from what this process already imported.
"""

import keras


def _builtin():
    # Built once from Keras' public namespace; a name from a file is only
    # ever a key into this table, never an argument to getattr.
    table = {}
    for name in dir(keras.layers):
        value = getattr(keras.layers, name)
        if isinstance(value, type) and issubclass(value, keras.layers.Layer):
            table[name] = value
    return table


_BUILTIN = _builtin()


def _path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def name_of(cls):
    """The name a layer class is saved under: its Keras-registered name."""
    for name, value in _BUILTIN.items():
        if value is cls:
            return name
    return keras.saving.get_registered_name(cls)


def resolve(name, what="layer class"):
    """The layer class saved as `name`, from Keras' registry.

    Accepts a built-in Keras layer's name, a name registered with
    `keras.saving.register_keras_serializable` (`"package>Name"`), and, for
    files saved by earlier versions, the full `module.Class` path of one of
    those classes (matched as a string, nothing imported).

    Raises:
        ValueError: for anything else, before anything is imported.
    """
    if isinstance(name, str):
        if name in _BUILTIN:
            return _BUILTIN[name]
        registered = keras.saving.get_custom_objects()
        value = registered.get(name)
        if isinstance(value, type) and issubclass(value, keras.layers.Layer):
            return value
        known = list(_BUILTIN.values()) + [
            v for v in registered.values() if isinstance(v, type) and issubclass(v, keras.layers.Layer)
        ]
        for cls in known:
            if _path(cls) == name:
                return cls
    raise ValueError(
        f"A saved {what} must name a built-in Keras layer or a class "
        "registered with `keras.saving.register_keras_serializable` (import "
        "the module that registers it before loading); keras_interp never "
        f"imports a module named in a file. Received: {name!r}"
    )
