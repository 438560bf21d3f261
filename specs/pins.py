"""The lock's pins: ``requirements/lock.txt`` and the subsets ``make lock`` writes beside it.

Remote machines resolve their own packages unless told otherwise, so a Dataflow worker or a Vertex AI
job could run other versions than the machine that launched it. The launchers pin them from these
files (``transforms.core.runtime`` for Dataflow's ``--requirements_file``, ``trainer.submit`` for the
wheels it uploads) and check the launcher's own versions against them. This module is the one reader
of those files; it lives in ``specs/`` because both sides use it, and it imports nothing heavy.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
from collections.abc import Iterable, Mapping

REQUIREMENTS = pathlib.Path(__file__).resolve().parent.parent / "requirements"
LOCK = REQUIREMENTS / "lock.txt"
DATAFLOW = REQUIREMENTS / "dataflow.txt"
TRAINER = REQUIREMENTS / "trainer.txt"

# Packages whose versions must be the same on the launcher and on the machines it starts: Beam's
# runner and SDK harness, and everything whose binary formats or protos cross between them.
WORKER_CRITICAL = ("apache-beam", "tensorflow", "tensorflow-text", "tensorflow-transform", "tfx-bsl",
                   "tensorflow-metadata", "protobuf", "numpy", "pyarrow")

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalise(name: str) -> str:
    """A distribution name as PyPI compares it (PEP 503): ``tf_keras`` and ``TF-Keras`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: str | pathlib.Path) -> dict[str, str]:
    """``{normalised name: version}`` for every ``name==version`` line of a requirements file (extras,
    hashes, markers and comments are ignored; a name pinned twice keeps its first pin)."""
    pins: dict[str, str] = {}
    for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins.setdefault(normalise(m.group(1)), m.group(2))
    return pins


def installed_version(name: str) -> str | None:
    """The version of ``name`` installed in this interpreter, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def launcher_mismatches(pins: Mapping[str, str], names: Iterable[str] = WORKER_CRITICAL) -> list[str]:
    """``"name X here, Y pinned"`` for each of ``names`` that ``pins`` pins to another version than the
    one installed here; names the file does not pin are not compared."""
    found = []
    for name in names:
        pinned, here = pins.get(normalise(name)), installed_version(name)
        if pinned is not None and here != pinned:
            found.append(f"{name} {here or '(not installed)'} here, {pinned} pinned")
    return found


def lock_python(path: str | pathlib.Path = LOCK) -> str:
    """The Python minor version the lock was made for, from the command ``make lock`` recorded in its
    header (``--python-version 3.11``); the Makefile's ``LOCK_PYTHON`` is where it is chosen."""
    m = re.search(r"--python-version[ =](\d+\.\d+)", pathlib.Path(path).read_text(encoding="utf-8")[:2000])
    if not m:
        raise ValueError(f"{path}: no --python-version in its header; regenerate it with `make lock`")
    return m.group(1)
