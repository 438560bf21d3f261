"""One accounted record parser: a line of a file becomes a record, is filtered, or is a dead letter.

Every job that reads records one per line (translation pairs, text pairs for fine-tuning, JSONL
documents for pretraining, JSONL records to deduplicate) has the same loop: take the line in, skip it
when blank, parse it, dead-letter it with the parser's reason when it cannot be parsed. ``ParseLines``
is that loop once; a job gives it only the parse function, which raises ``core.records.BadRecordError``
with the dead-letter reason for a record it cannot use, or ``core.records.RecordFiltered`` with the
filter reason for one it leaves out on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from transforms.core.accounting import AccountedDoFn, DeadLetter
from transforms.core.lines import LineBatch
from transforms.core.records import BadRecordError, RecordFiltered

# A parse function: (path, byte offset, line) -> the record to emit; raises BadRecordError or
# RecordFiltered.
LineParser = Callable[[str, int, bytes], Any]


class ParseLines(AccountedDoFn):
    """``LineBatch`` -> one output per non-blank line, accounted per input file under ``stage``:
    blank lines are filtered (``blank_line``), as are lines the parser leaves out (its reason); lines
    the parser rejects are dead letters naming the file, the byte offset and the parser's reason."""

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
            except RecordFiltered as e:
                self.filtered(path, e.reason)
                continue
            self.out(path)
            yield record
