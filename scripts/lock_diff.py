"""Prints how an environment's resolved versions differ from requirements/lock.txt.

    python scripts/lock_diff.py RESOLVED.txt [LOCK.txt]

``make test-latest`` calls it, so the drift lane says which newer releases it ran on. It reads the pins
through ``specs.pins``, the project's one reader of requirements files.
"""

from __future__ import annotations

import pathlib
import sys

from specs.pins import LOCK, read_pins


def drift(lock: dict[str, str], resolved: dict[str, str]) -> list[str]:
    """One line per package whose version differs, or that only one side has."""
    lines = []
    for name in sorted(lock.keys() | resolved.keys()):
        old, new = lock.get(name), resolved.get(name)
        if old != new:
            lines.append(f"  {name}: {old or '(not in the lock)'} -> {new or '(not resolved)'}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    resolved = pathlib.Path(argv[0])
    lock = pathlib.Path(argv[1]) if len(argv) == 2 else LOCK
    found: dict[pathlib.Path, dict[str, str]] = {}
    for path in (resolved, lock):
        try:
            found[path] = read_pins(path)
        except OSError as e:
            print(f"lock_diff: error: {path}: {e.strerror}", file=sys.stderr)
            return 2
        if not found[path]:
            print(f"lock_diff: error: {path} pins no package", file=sys.stderr)
            return 1
    changes = drift(found[lock], found[resolved])
    print(f"{resolved}: {len(found[resolved])} packages, {len(changes)} differ from {lock}"
          + (":" if changes else ""))
    if changes:
        print("\n".join(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
