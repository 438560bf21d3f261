"""One accounted record parser: a line of a file becomes a record, is filtered as blank, or is a dead letter.

Every job that reads records one per line (translation pairs, text pairs for fine-tuning) has the same
loop: take the line in, skip it when blank, parse it, dead-letter it with the parser's reason when it
cannot be parsed. ``ParseLines`` is that loop once; a job gives it only the parse function. A parse
function raises ``BadRecordError`` with the dead-letter reason for a record it cannot use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from transforms.accounting import AccountedDoFn, DeadLetter
from transforms.files import LineBatch


class BadRecordError(ValueError):
    """A record that cannot be used; ``reason`` names the dead-letter reason, ``detail`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


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


# A parse function: (path, byte offset, line) -> the record to emit; raises BadRecordError.
LineParser = Callable[[str, int, bytes], Any]


class ParseLines(AccountedDoFn):
    """``LineBatch`` -> one output per non-blank line, accounted per input file under ``stage``:
    blank lines are filtered (``blank_line``), lines the parser rejects are dead letters naming the
    file, the byte offset and the parser's reason."""

    def __init__(self, stage: str, parse: LineParser) -> None:
        self.stage = stage
        self._parse = parse

    def process(self, batch: LineBatch) -> Iterator[Any]:
        path = batch.path
        for offset, raw in batch.lines:
            self.took_in(path)
            if not raw.strip():
                self.filtered(path, "blank_line")
                continue
            try:
                record = self._parse(path, offset, raw)
            except BadRecordError as e:
                yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, raw, source=path, offset=offset,
                                                             detail=e.detail))
                continue
            self.out(path)
            yield record
