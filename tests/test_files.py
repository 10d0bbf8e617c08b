"""keras_interp._files: an interrupted write leaves the old file whole, or none."""

import importlib.util
import os
import signal
import subprocess
import sys

import pytest

from keras_interp import _files


class _Interrupted(Exception):
    pass


def test_a_writer_that_fails_midway_leaves_the_old_file_and_no_other(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"old": true}')
    with pytest.raises(_Interrupted):
        with _files.atomic_write(path) as f:
            f.write('{"new": ')
            f.flush()
            raise _Interrupted
    assert path.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_writer_that_fails_leaves_no_file_where_there_was_none(tmp_path):
    with pytest.raises(_Interrupted):
        with _files.atomic_write(tmp_path / "report.md", encoding="utf-8") as f:
            f.write("# half a report")
            raise _Interrupted
    assert os.listdir(tmp_path) == []


def test_a_finished_write_replaces_the_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    with _files.atomic_write(path, "wb") as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["data.bin"]
    with pytest.raises(ValueError, match="Received: mode='a'"):
        with _files.atomic_write(path, "a"):
            pass


def test_atomic_path_keeps_the_extension_and_cleans_up(tmp_path):
    path = tmp_path / "maps.png"
    with _files.atomic_path(path) as tmp:
        # Writers such as matplotlib and numpy.savez choose the format from it.
        assert tmp.endswith(".png") and os.path.dirname(tmp) == str(tmp_path)
        assert not os.path.exists(tmp)
        with open(tmp, "wb") as f:
            f.write(b"png")
    assert path.read_bytes() == b"png"
    with pytest.raises(_Interrupted):
        with _files.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise _Interrupted
    assert path.read_bytes() == b"png"
    assert os.listdir(tmp_path) == ["maps.png"]


_KILLED_MIDWAY = """
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("files_alone", {module!r})
files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files)
with files.atomic_write({path!r}) as f:
    f.write("new, but only half")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_while_writing_leaves_the_old_file(tmp_path):
    # SIGKILL runs no cleanup: only the rename's atomicity protects the file.
    path = tmp_path / "results.json"
    path.write_text("old, complete")
    script = _KILLED_MIDWAY.format(module=_files.__file__, path=str(path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert out.returncode == -signal.SIGKILL
    assert path.read_text() == "old, complete"


def test_files_module_imports_no_framework():
    # The CLI's checks use it; it must stay standard-library only.
    spec = importlib.util.spec_from_file_location("files_alone", _files.__file__)
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    spec.loader.exec_module(module)
    assert not {"keras", "tensorflow", "jax", "torch", "numpy"} & (set(sys.modules) - before)


def test_ensure_writable_folder_creates_it_and_leaves_nothing(tmp_path):
    folder = tmp_path / "a" / "b"
    assert _files.ensure_writable_folder(folder) == folder
    assert folder.is_dir() and os.listdir(folder) == []


@pytest.mark.parametrize("where", ["proc", "under_a_file", "a_file"])
def test_ensure_writable_folder_refuses_what_cannot_be_written(tmp_path, where):
    # /proc and a path through a file refuse writes even to root, whom
    # permission bits do not stop.
    blocker = tmp_path / "notes.txt"
    blocker.write_text("")
    folder = {
        "proc": "/proc/self/keras_interp_test",
        "under_a_file": blocker / "out",
        "a_file": blocker,
    }[where]
    with pytest.raises(ValueError, match="Cannot write in the folder") as info:
        _files.ensure_writable_folder(folder, name="out_dir")
    assert f"Received: out_dir={os.fspath(folder)!r}" in str(info.value)
    assert os.listdir(tmp_path) == ["notes.txt"]
