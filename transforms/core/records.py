"""Parsing records (no Beam): the one bad-record error, whose ``reason`` becomes the dead-letter reason,
the one way a parser leaves a record out on purpose (``RecordFiltered``, a filter reason), and the small
helpers every job's parser needs."""

from __future__ import annotations

from typing import Any


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
