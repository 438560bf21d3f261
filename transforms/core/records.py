"""Parsing records (no Beam): the one bad-record error, whose ``reason`` becomes the dead-letter reason,
the one way a parser leaves a record out on purpose (``RecordFiltered``, a filter reason), and the small
helpers every job's parser needs (UTF-8, dotted JSON fields, the language ``--language_pattern`` finds
in a path)."""

from __future__ import annotations

import re
from typing import Any

from specs.errors import ConfigError


class BadRecordError(ValueError):
    """A record that cannot be used; ``reason`` names the dead-letter reason, ``detail`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


class RecordFiltered(Exception):  # noqa: N818 - not an error: the record is left out on purpose
    """A record the parser leaves out on purpose; ``reason`` names the filter reason (a counter and a
    ``summary.json`` entry, not a dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_utf8(raw: bytes) -> str:
    """A record's bytes as text; not UTF-8 is the dead-letter reason ``invalid_utf8``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRecordError("invalid_utf8", str(e)) from None


def dotted_lookup(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"`` (a JSON record's field by its dotted path); None when a step is missing."""
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def language_pattern(value: str | None, flag: str = "--language_pattern") -> re.Pattern[str] | None:
    """``--language_pattern`` compiled (None when not given); one line naming the flag when it is not a
    regex or has no group for the language (``transforms.core.flags.add_language_pattern``)."""
    if not value:
        return None
    try:
        pattern = re.compile(value)
    except re.error as e:
        raise ConfigError(f"{flag} {value!r}: {e}") from None
    if pattern.groups < 1:
        raise ConfigError(f"{flag} {value!r} needs a group for the language")
    return pattern


def language_of_path(pattern: re.Pattern[str] | None, path: str, default: str) -> str:
    """The language ``--language_pattern`` finds in a file's path: its group 1 where the pattern is
    found in the path and the group is not empty, else ``default`` (the job's language of a record
    that names none). Every job reads the flag so; a record's own language field wins over it."""
    found = pattern.search(path) if pattern else None
    return found.group(1) if found and found.group(1) else default
