"""Reading the inputs of ``pipelines.dedup`` as JobRecords, every record accounted (Beam)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam

from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.core.lines import ReadLineBatches
from transforms.core.parse_lines import ParseLines
from transforms.core.records import BadRecordError
from transforms.core.tfrecords import ReadTFRecords
from transforms.dedup.records import JSONL, READ_STAGE, record_from_example, record_from_json


class _ParseExamples(AccountedDoFn):
    stage = READ_STAGE

    def __init__(self, text_fields: Sequence[str], rank_field: str | None) -> None:
        self._fields, self._rank = tuple(text_fields), rank_field

    def process(self, item: tuple[str, bytes]) -> Iterator[Any]:
        path, raw = item
        self.took_in(path)
        try:
            record = record_from_example(path, raw, self._fields, self._rank)
        except BadRecordError as e:
            yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, repr(raw), source=path,
                                                         detail=str(e)))
            return
        self.out(path)
        yield record


class ReadDedupInput(beam.PTransform):
    """Reads JSONL (splittably, with byte offsets) or TFRecord files of tf.Examples as JobRecords;
    blank JSONL lines are filtered, unreadable records dead-lettered (stage ``read``)."""

    def __init__(self, paths: Sequence[str], fmt: str, text_fields: Sequence[str], rank_field: str | None) -> None:
        super().__init__()
        self._paths, self._fmt, self._fields, self._rank = list(paths), fmt, list(text_fields), rank_field

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        if self._fmt == JSONL:
            read = pbegin | "ReadLines" >> ReadLineBatches(self._paths)
            parse = functools.partial(record_from_json, text_fields=tuple(self._fields), rank_field=self._rank)
            parsed = apply_accounted(read.out, "ParseJsonl", ParseLines(READ_STAGE, parse))
        else:
            read = pbegin | "ReadTFRecords" >> ReadTFRecords(self._paths)
            parsed = apply_accounted(read.out, "ParseExamples", _ParseExamples(self._fields, self._rank))
        return Accounted(parsed.out, (read.tally, parsed.tally) | "Tallies" >> beam.Flatten(),
                         (read.dead_letter, parsed.dead_letter) | "DeadLetters" >> beam.Flatten())
