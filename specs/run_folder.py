"""The output-folder contract: one run per folder, complete or visibly not.

Every polyembed job writes into a *run folder* (``--output_dir``, or the folder of pretrain_data's
``--output_file``). At start-up the launcher *claims* it (``claim``): the folder must be absent, empty,
or hold a previous run of the same job, whose files are then removed (the run keeps the path the
user named, so trainer configs and later jobs need not change); a folder holding anything else stops
the job with one line. Claiming writes ``_RUN_STARTED.json`` (job, start time, command line). After
every shard and sidecar is written the launcher writes ``_RUN_COMPLETE.json`` (``write_complete``)
LAST, with the job, the summary totals, the outputs and the times. Readers (``pipelines.inspect``, the
trainer's input pipelines, jobs reading another job's output) call ``require_complete`` and refuse a
folder without the marker; ``allow_incomplete`` is the override for data that did not come from a
polyembed job (files without any polyembed marker) or a run known to be partial.

This module is shared by the Beam side and the trainer, whose distribution ships only ``trainer/``
and ``specs/``: it imports neither Beam nor TensorFlow. Local paths use ``os``; other paths
(``gs://``) go through the ``fs`` the caller passes (``transforms.core.runtime.BEAM_FS``: Beam's
FileSystems) or else ``tf.io.gfile``, imported only when such a path is used. An ``fs`` has
``exists``, ``is_file``, ``names`` (a folder's top-level entries), ``read``, ``write`` and ``remove``.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import posixpath
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

STARTED_FILE = "_RUN_STARTED.json"
COMPLETE_FILE = "_RUN_COMPLETE.json"
MARKER_FILES = frozenset({STARTED_FILE, COMPLETE_FILE})
# How far above a data folder the run folder may be (translation_pairs: OUT/train/; stackexchange:
# OUT/<pair_type>/tfrecord/; translation_pairs --materialize_tokens: OUT/tokens/train/).
MAX_DEPTH = 3


class RunFolderError(ValueError):
    """A run folder that cannot be written or must not be read. The message is one line."""


# --- a file system with no heavy import -----------------------------------------------------------

def _is_remote(path: str) -> bool:
    return "://" in path


def _join(folder: str, name: str) -> str:
    return posixpath.join(folder, name) if _is_remote(folder) else os.path.join(folder, name)


def _parent(path: str) -> str:
    path = path.rstrip("/")
    return posixpath.dirname(path) if _is_remote(path) else os.path.dirname(path)


class _GfileFs:
    def __init__(self, gfile: Any) -> None:
        self.gfile = gfile

    def exists(self, path: str) -> bool:
        return self.gfile.exists(path)

    def is_file(self, path: str) -> bool:
        return self.gfile.exists(path) and not self.gfile.isdir(path)

    def names(self, folder: str) -> list[str]:
        return sorted(n.rstrip("/") for n in self.gfile.listdir(folder)) if self.gfile.isdir(folder) else []

    def read(self, path: str) -> str:
        with self.gfile.GFile(path, "r") as f:
            return f.read()

    def write(self, path: str, text: str) -> None:
        with self.gfile.GFile(path, "w") as f:
            f.write(text)

    def remove(self, folder: str, names: Sequence[str]) -> None:
        for name in names:
            path = _join(folder, name)
            (self.gfile.rmtree if self.gfile.isdir(path) else self.gfile.remove)(path)


class _LocalFs:
    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_file(self, path: str) -> bool:
        return os.path.exists(path) and not os.path.isdir(path)

    def names(self, folder: str) -> list[str]:
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

    def read(self, path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    def write(self, path: str, text: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def remove(self, folder: str, names: Sequence[str]) -> None:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def _fs(path: str, fs: Any = None) -> Any:
    """``fs`` when the caller has one (the Beam launcher passes Beam's FileSystems), else ``os`` for
    local paths and ``tf.io.gfile`` for the others (the trainer)."""
    if fs is not None:
        return fs
    if not _is_remote(path):
        return _LocalFs()
    import tensorflow as tf

    return _GfileFs(tf.io.gfile)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _read_json(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        data = json.loads(fs.read(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- writers' side ---------------------------------------------------------------------------------

def check_writable_place(folder: str, flag: str, fs: Any = None) -> None:
    """A file where the folder (or one of its parents) should be: one line, before any work (every
    command that writes a folder, a run folder or not, e.g. ``trainer.convert_checkpoint``)."""
    fs = _fs(folder, fs)
    if _is_remote(folder):
        if fs.is_file(folder.rstrip("/")):
            raise RunFolderError(f"{flag} {folder} is a file, not a folder")
        return
    path = os.path.abspath(folder)
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    if path and not os.path.isdir(path):
        what = "is a file" if path == os.path.abspath(folder) else f"is inside {path}, which is a file"
        raise RunFolderError(f"{flag} {folder} {what}, not a folder")


def claim(folder: str, job: str, argv: Sequence[str] = (), flag: str = "--output_dir",
          owned: Sequence[str] | None = None, dry_run: bool = False, fs: Any = None) -> list[str]:
    """Makes ``folder`` this run's: checks it is a folder we may write, removes a previous run of the
    same ``job`` and writes ``_RUN_STARTED.json``. Returns the names removed.

    ``owned`` (pretrain_data's ``--output_file``, which may name a file in a shared folder such as
    /tmp) limits the claim to those names or ``fnmatch`` patterns plus the run's sidecars, which the
    caller lists there; other entries of the folder are left alone. Without it the whole folder is the
    run's. ``dry_run`` checks and changes nothing. ``fs``: see the module docstring.
    Raises ``RunFolderError`` (one line) for a file in the way, a folder of something else, or a
    folder that cannot be written.
    """
    fs = _fs(folder, fs)
    check_writable_place(folder, flag, fs)
    try:
        names = fs.names(folder)
    except PermissionError:
        raise RunFolderError(f"{flag} {folder}: permission denied") from None
    previous = _previous_job(fs, folder, names)
    if owned is None:
        ours = names
        if names and previous is None:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise RunFolderError(f"{flag} {folder} is not empty and holds no polyembed run ({shown}); "
                                 "give an empty or new folder")
    else:
        ours = [n for n in names if n in MARKER_FILES or any(fnmatch.fnmatchcase(n, p) for p in owned)]
        data = [n for n in ours if n not in MARKER_FILES]
        if data and previous is None:
            raise RunFolderError(f"{flag}: {_join(folder, data[0])} exists and is not from a polyembed run; "
                                 "remove it or name another file")
    if ours and previous is not None and previous != job:
        raise RunFolderError(f"{flag} {folder} holds a {previous} run; give {job} its own folder")
    if dry_run:
        return ours
    try:
        if ours:
            fs.remove(folder, ours)
        fs.write(_join(folder, STARTED_FILE), json.dumps(
            {"job": job, "started": _now(), "argv": list(argv)}, indent=2, sort_keys=True) + "\n")
    except PermissionError:
        raise RunFolderError(f"{flag} {folder}: permission denied") from None
    except OSError as e:
        raise RunFolderError(f"{flag} {folder}: cannot write there ({e.strerror or type(e).__name__})") from None
    return ours


def _previous_job(fs: Any, folder: str, names: Sequence[str]) -> str | None:
    """The job whose run the folder holds (from its markers), or None."""
    for marker in (COMPLETE_FILE, STARTED_FILE):
        if marker in names:
            data = _read_json(fs, _join(folder, marker)) or {}
            return str(data.get("job") or "unknown job")
    return None


def write_complete(folder: str, job: str, summary: Mapping[str, Any], outputs: Mapping[str, str],
                   fs: Any = None) -> dict[str, Any]:
    """Writes ``_RUN_COMPLETE.json``; call it LAST, after every shard and sidecar is in place."""
    fs = _fs(folder, fs)
    started = _read_json(fs, _join(folder, STARTED_FILE)) or {}
    totals: dict[str, Any] = {}
    for stage, s in (summary.get("stages") or {}).items():
        t = s.get("total") or {}
        totals[stage] = {"in": t.get("in", 0), "out": t.get("out", 0),
                         "filtered": sum((t.get("filtered") or {}).values()),
                         "dead_lettered": sum((t.get("dead_lettered") or {}).values())}
    marker = {"job": job, "started": started.get("started"), "finished": _now(), "balanced": summary.get("balanced"),
              "totals": totals, "outputs": dict(outputs), "argv": started.get("argv", [])}
    fs.write(_join(folder, COMPLETE_FILE), json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return marker


# --- readers' side ---------------------------------------------------------------------------------

def find_run(path: str, fs: Any = None) -> tuple[str, dict[str, Any] | None, bool] | None:
    """The run folder holding ``path`` (a data folder, a file or a glob): ``(folder, marker, started)``
    for the nearest folder at most ``MAX_DEPTH`` levels up with a marker, else None."""
    fs = _fs(path, fs)
    folder = path.rstrip("/")
    if any(c in folder for c in "*?[") or fs.is_file(folder):
        folder = _parent(folder)
        while any(c in folder for c in "*?["):
            folder = _parent(folder)
    for _ in range(MAX_DEPTH + 1):
        if not folder:
            break
        complete, started = _join(folder, COMPLETE_FILE), _join(folder, STARTED_FILE)
        if fs.exists(complete):
            return folder, _read_json(fs, complete) or {}, True
        if fs.exists(started):
            return folder, None, True
        up = _parent(folder)
        if up == folder:
            break
        folder = up
    return None


def require_complete(path: str, what: str, allow_incomplete: bool = False,
                     override: str = "--allow_incomplete", fs: Any = None) -> dict[str, Any] | None:
    """Returns the completion marker of the run holding ``path``; raises ``RunFolderError`` (one line)
    when there is none, naming ``what`` (the flag or key that gave the path) and the ``override``."""
    found = find_run(path, fs)
    if found is not None and found[1] is not None:
        return found[1]
    if allow_incomplete:
        return None
    if found is None:
        raise RunFolderError(f"{what} {path}: no {COMPLETE_FILE} here or up to {MAX_DEPTH} folders above, so "
                             f"not a finished polyembed run ({override} reads it anyway)")
    raise RunFolderError(f"{what} {path}: the run in {found[0]} did not finish (no {COMPLETE_FILE}); rerun it "
                         f"({override} reads the partial data anyway)")


def is_marker(name: str) -> bool:
    """True for the marker files' base names (readers listing a folder skip them)."""
    return os.path.basename(name.rstrip("/")) in MARKER_FILES
