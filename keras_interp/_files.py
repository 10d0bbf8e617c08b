"""Writing output files so that a run killed midway cannot leave half a file.

Every file the package writes (results.json, the reports, figures, the CLI's
JSON, arrays and models) is first written under a temporary name in its own
folder, then moved onto its name with `os.replace`, which is atomic on one
file system: a reader, or a run killed at any moment, sees the old file or
the new one, never a truncated mix.
"""

import contextlib
import os
import uuid


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; moves it onto `path` on success.

    The temporary name keeps the extension of `path` (`".x.1f3a....tmp.png"`
    for `"x.png"`), so writers that choose the format from it (matplotlib,
    `numpy.savez`, `keras.Model.save`) write the same format. The writer
    creates the file itself, so it gets the usual permissions. If the block
    raises, the temporary file is removed and `path` is left as it was.

    Args:
        path: the file to write, a string or `os.PathLike`.

    Yields:
        The temporary path (a string) to write to.

    Example:

    ```python
    with atomic_path("out/maps.png") as tmp:
        fig.savefig(tmp)
    ```
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    # Hidden, and unique per call: two runs writing the same file never share
    # a temporary name, and a reader listing the folder skips it.
    tmp = os.path.join(folder, f".{stem}.{uuid.uuid4().hex}.tmp{ext}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        # BaseException too: a KeyboardInterrupt must not leave the temporary
        # file behind either.
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding=None):
    """Opens a temporary file beside `path`; moves it onto `path` on success.

    `with atomic_write(path) as f:` replaces `with open(path, "w") as f:`:
    if the block raises, `path` keeps its old contents (or stays absent).

    Args:
        path: the file to write.
        mode: `"w"` (text) or `"wb"` (bytes). Defaults to `"w"`.
        encoding: the text encoding, for `mode="w"`. Defaults to `None`
            (Python's default).

    Yields:
        The open file object.

    Example:

    ```python
    with atomic_write("out/results.json") as f:
        json.dump(results, f)
    ```
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb'. Received: mode={mode!r}")
    with atomic_path(path) as tmp:
        # "x": fail rather than write into a file some other process created.
        with open(tmp, mode.replace("w", "x"), encoding=encoding) as f:
            yield f


def ensure_writable_folder(folder, name="folder", received=None):
    """Creates `folder` if missing and checks that a file can be written in it.

    Called before a long job, so an output location that cannot be written
    fails at once, not after the training whose results it was to hold. The
    check creates and removes an empty file, because permissions alone do
    not tell (root ignores them; /proc and read-only mounts refuse anyway).

    Args:
        folder: the folder (`""` means the current one).
        name: the argument the caller's user set, for the message
            (`"out_dir"`, `"--out"`). Defaults to `"folder"`.
        received: the value of that argument, for the message, when it is
            not `folder` itself (a file path in `folder`). Defaults to
            `folder`.

    Returns:
        `folder`.

    Raises:
        ValueError: if the folder cannot be created or written.
    """
    where = os.fspath(folder) or "."
    probe = os.path.join(where, f".keras_interp_write_test.{uuid.uuid4().hex}")
    try:
        os.makedirs(where, exist_ok=True)
        with open(probe, "x"):
            pass
        os.remove(probe)
    except OSError as e:
        reason = f"{type(e).__name__}: {e.strerror or e}"
        received = os.fspath(folder) if received is None else os.fspath(received)
        raise ValueError(
            f"Cannot write in the folder {where!r} ({reason}). Expected a folder that "
            f"can be created and written to. Received: {name}={received!r}"
        ) from None
    return folder
