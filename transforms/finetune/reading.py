"""Reading task rows on Beam: task files (TSV/JSONL) -> accounted ``(dest, [Row])`` lists, numbered."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam

from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.core.formats import TSV
from transforms.core.line_numbers import NumberLineBatches
from transforms.core.lines import LineBatch, ReadLineBatches
from transforms.core.records import BadRecordError
from transforms.finetune.records import (
    PARSE_STAGE,
    InputFile,
    Labels,
    Row,
    parse_json_row,
    parse_tsv_row,
)


class _ParseRows(AccountedDoFn):
    """A numbered batch of lines -> ``(dest, [Row])`` lists; headers and blank lines are filtered,
    bad rows dead-lettered. ``example_id`` is the row's number among the split's data rows (header
    excluded, files in plan order), as the reference's ``ex_index``; a dead-lettered row keeps its
    number, so ids still point at rows of the input."""

    stage = PARSE_STAGE

    def __init__(self, inputs: Sequence[InputFile], labels: Labels, dests: Sequence[str]) -> None:
        self._files = {f.path: f for f in inputs}
        self._order = [f.path for f in inputs]
        self._labels, self._dests = labels, frozenset(dests)
        self._cached_bases: dict[str, int] | None = None

    def _bases(self, line_counts: Mapping[str, int]) -> dict[str, int]:
        """Per file: the data rows in the files of its split that come before it (the side input is
        the same for every batch, so this is computed once per DoFn instance)."""
        if self._cached_bases is None:
            before: dict[str, int] = {}
            self._cached_bases = {}
            for path in self._order:
                f = self._files[path]
                self._cached_bases[path] = before.get(f.split, 0)
                before[f.split] = before.get(f.split, 0) + max(0, line_counts.get(path, 0) - f.has_header)
        return self._cached_bases

    def process(self, item: tuple[LineBatch, int], line_counts: Mapping[str, int]) -> Iterator[Any]:
        batch, start = item
        path = batch.path
        f = self._files[path]
        base = self._bases(line_counts)[path]
        out: dict[str, list[Row]] = {}
        for i, (offset, raw) in enumerate(batch.lines):
            if raw is None:  # not UTF-8: the reader's dead letter, but it keeps its row number
                continue
            self.took_in(path)
            index = start + i
            if f.has_header and index == 0:
                self.filtered(path, "header")
                continue
            if not raw.strip():
                self.filtered(path, "blank_line")
                continue
            try:
                if f.kind == TSV:
                    a, b, label, language = parse_tsv_row(raw, f.fmt, self._labels)
                else:
                    a, b, label, language = parse_json_row(raw, f.fmt, self._labels)
                dest = f.dest(language)
                if dest not in self._dests:
                    raise BadRecordError("unknown_language", f"language {language!r} has no output")
            except BadRecordError as e:
                yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, raw, source=path, offset=offset,
                                                             detail=e.detail))
                continue
            self.out(path)
            out.setdefault(dest, []).append(Row(dest, base + index - f.has_header, a, b, label, path, offset))
        yield from out.items()


class ReadTaskRows(beam.PTransform):
    """Task files (TSV/JSONL) -> the accounted read and parse stages; the parse stage's ``out`` holds
    ``(dest, [Row])`` lists, rows numbered within their split.

    Lines are read splittably; each batch's first line index comes from a join with the per-file
    batch summaries (a batch's offset and size, not its lines), so numbering holds no file in memory.
    """

    def __init__(self, inputs: Sequence[InputFile], labels: Labels, dests: Sequence[str]) -> None:
        super().__init__()
        self._inputs, self._labels, self._dests = list(inputs), labels, list(dests)

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[Accounted, Accounted]:
        # Lines that are not UTF-8 stay in their batch as None (dead-lettered by the reader), so row
        # numbers still count every line of the file.
        read = pbegin | "ReadLines" >> ReadLineBatches([f.path for f in self._inputs], keep_places=True)
        numbered = read.out | "Number" >> NumberLineBatches()
        parsed = apply_accounted(numbered.batches, "Parse", _ParseRows(self._inputs, self._labels, self._dests),
                                 beam.pvalue.AsDict(numbered.line_counts))
        return read, parsed


