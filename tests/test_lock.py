"""requirements/lock.txt against what it claims: the environment is exactly the lock, the lock satisfies
every range setup.py declares (so a range or dependency changed without `make lock` fails here), and the
subsets written beside it pin the lock's versions."""

from __future__ import annotations

import importlib.metadata
import os
import sysconfig

import pytest
from packaging.requirements import Requirement

from specs import pins

EXTRAS = ("trainer", "test")  # what `make install` installs: .[trainer,test]


def test_the_installed_environment_is_the_lock():
    """`make install` installs exactly requirements/lock.txt (the drift lane, which installs the newest
    releases instead, skips this)."""
    if os.environ.get("POLYEMBED_LANE") == "latest":
        pytest.skip("the latest lane runs on the newest releases, not on the lock")
    lock = pins.read_pins(pins.LOCK)
    site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}  # not the checkout's egg-info
    installed = {pins.normalise(d.metadata["Name"]): d.version
                 for d in importlib.metadata.distributions(path=sorted(site))}
    assert {n: (v, installed.get(n)) for n, v in lock.items() if installed.get(n) != v} == {}
    assert set(installed) - set(lock) <= {"polyembed"}


def test_the_lock_satisfies_every_range_setup_py_declares():
    lock = pins.read_pins(pins.LOCK)
    declared = [Requirement(r) for r in importlib.metadata.requires("polyembed") or []]
    wanted = [r for r in declared if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in EXTRAS)]
    assert len(wanted) > 10
    unmet = {str(r): lock.get(pins.normalise(r.name)) for r in wanted
             if lock.get(pins.normalise(r.name)) is None or not r.specifier.contains(lock[pins.normalise(r.name)],
                                                                                     prereleases=True)}
    assert unmet == {}, "setup.py changed without `make lock`"


@pytest.mark.parametrize("subset", [pins.DATAFLOW, pins.TRAINER])
def test_each_subset_pins_the_locks_versions(subset):
    lock, part = pins.read_pins(pins.LOCK), pins.read_pins(subset)
    assert part and {n: v for n, v in part.items() if lock.get(n) != v} == {}
    assert {"tensorflow", "numpy", "protobuf"} <= set(part)


def test_the_lock_records_its_python():
    assert pins.lock_python() == "3.11"


def test_lock_diff_lists_what_moved_and_refuses_a_missing_or_empty_file(tmp_path):
    """scripts/lock_diff.py, which the drift lane prints: a changed pin is listed; a missing or empty
    file is one line and a non-zero exit, never a traceback or a report on nothing."""
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "lock_diff.py"
    moved = tmp_path / "resolved.txt"
    moved.write_text(pins.LOCK.read_text().replace(f"numpy=={pins.read_pins(pins.LOCK)['numpy']}", "numpy==9.9.9"))
    done = subprocess.run([sys.executable, str(script), str(moved)], capture_output=True, text=True)
    assert done.returncode == 0 and f"  numpy: {pins.read_pins(pins.LOCK)['numpy']} -> 9.9.9" in done.stdout
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for path, code in ((tmp_path / "missing.txt", 2), (empty, 1)):
        done = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
        assert done.returncode == code and done.stderr.count("\n") == 1 and "lock_diff: error:" in done.stderr
