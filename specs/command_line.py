"""The project's one command-line policy, shared by the Beam jobs (``transforms.core.runtime``), the
trainer's commands (``trainer.cli``) and the commands that are neither (``pipelines.inspect``): every
flag listed in ``--help`` with its default and a one-line meaning, no abbreviations, absl-style
booleans so reference command lines work unchanged, and an unknown flag answered in one line naming
the closest known one.

It lives in ``specs/`` because that is the one layer below both the data side and the trainer (and
in both distributions, setup.py): how a command line is read is, like a record format, a contract
both sides keep with the user. Standard library only, so ``--help`` answers before TensorFlow or
Beam is imported.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every flag that has a default worth showing."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=110)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, [], "") or default is argparse.SUPPRESS or "%(default)" in text:
            return text
        if isinstance(default, str) and (not default.isprintable() or default.strip() != default):
            return f"{text} (default: {default!r})".replace("%", "%%")  # a newline or a space, shown as such
        return super()._get_help_string(action)


def flag_names(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o.startswith("--")]


def unknown_flag_message(unknown: Sequence[str], known: Sequence[str]) -> str | None:
    """One line for the first unknown argument (``--flag`` with the closest known flag, difflib), or
    None when there is none."""
    for arg in unknown:
        if arg == "--":
            return None
        flag = arg.split("=", 1)[0]
        if not flag.startswith("-"):
            return f"unexpected argument {arg!r} (flags are --name=value; --help lists them)"
        close = difflib.get_close_matches(flag, list(known), n=1)
        return f"unknown flag {flag}" + (f"; did you mean {close[0]}?" if close else "; --help lists every flag")
    return None


class StrictParser(argparse.ArgumentParser):
    """argparse without abbreviations, with defaults in ``--help``, whose errors are one line on stderr
    (exit 2) and which names the closest known flag for an unknown one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        args = sys.argv[1:] if args is None else list(args)
        known = flag_names(self)
        # unknown flags first: a typo of a required flag should be named as a typo, not as a missing flag
        flags = [a for a in args[:args.index("--") if "--" in args else len(args)] if a.startswith("--")]
        message = unknown_flag_message([f for f in flags if f.split("=", 1)[0] not in known], known)
        if message:
            self.error(message)
        parsed, unknown = self.parse_known_args(args, namespace)
        message = unknown_flag_message(unknown, known)
        if message:
            self.error(message)
        return parsed


def flag_bool(value: str) -> bool:
    """absl-style booleans (``--flag``, ``--flag=true``, ``--flag=False``, ``--flag=0``), so reference
    command lines such as ``--do_lower_case=True`` work unchanged."""
    v = value.strip().lower()
    if v in ("1", "true", "t", "yes", "y"):
        return True
    if v in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
