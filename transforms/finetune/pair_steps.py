"""The ``--from_pairs`` task on Beam: text pairs (JSONL and/or TFRecord files) -> positives and
seeded in-bucket negatives (the algorithm is in ``pairs``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam

from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.core.lines import ReadLineBatches
from transforms.core.parse_lines import ParseLines
from transforms.core.records import BadRecordError, decode_utf8
from transforms.core.tfrecords import ReadTFRecords
from transforms.dedup import parse_example
from transforms.finetune import pairs as pair_task
from transforms.finetune.records import PARSE_STAGE, InputFile, Row, checked_text


class _ParsePairRecords(AccountedDoFn):
    """TFRecord text pairs (``src_raw``, ``tgt_raw``: our translation and StackExchange records) ->
    ``(split, Row)`` positives."""

    stage = PARSE_STAGE

    def __init__(self, splits: Mapping[str, str]) -> None:
        self._split = dict(splits)

    def process(self, item: tuple[str, bytes]) -> Iterator[Any]:
        path, raw = item
        self.took_in(path)
        try:
            feats = parse_example(raw)
            texts = [feats.get(name) or [None] for name in ("src_raw", "tgt_raw")]
            if any(not isinstance(t[0], bytes) for t in texts):
                raise BadRecordError("missing_column", "needs bytes features src_raw and tgt_raw")
            a, b = (checked_text(decode_utf8(t[0]), name)
                    for t, name in zip(texts, ("src_raw", "tgt_raw"), strict=True))
        except BadRecordError as e:
            yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, raw[:200], source=path, detail=e.detail))
            return
        self.out(path)
        split = self._split[path]
        yield split, Row(split, -1, a, b, pair_task.POSITIVE, path, -1)


class _AddNegatives(AccountedDoFn):
    """One bucket of positives -> ``(dest, [Row])``: every positive plus its negative, ids assigned."""

    stage = pair_task.NEGATIVES_STAGE

    def __init__(self, seed: int) -> None:
        self._seed = seed

    def process(self, item: tuple[tuple[str, int], Iterable[Row]]) -> Iterator[Any]:
        (split, _), rows = item
        out: list[Row] = []
        for row, negative in pair_task.pair_with_negatives(self._seed, list(rows)):
            self.took_in(split)
            out.append(row._replace(
                example_id=pair_task.pair_example_id(self._seed, row.text_a, row.text_b, pair_task.POSITIVE)))
            if negative is None:
                self.filtered(split, "no_negative_partner_in_bucket")
                continue
            self.out(split)
            out.append(negative._replace(
                example_id=pair_task.pair_example_id(self._seed, row.text_a, negative.text_b, pair_task.NEGATIVE)))
        yield split, out


class PairTaskRows(beam.PTransform):
    """Text pairs (JSONL and/or TFRecord files, by split) -> a labelled pair-classification task:
    each pair is a positive (``1``) and, with the text B of another pair from the same seeded hash
    bucket, a negative (``0``). Buckets hold about ``pairs_per_bucket`` pairs (their number comes from
    the split's count), so no worker holds more than a bucket. Returns (parse, negatives) accounted
    stages; the rows are the negatives stage's ``out``."""

    def __init__(self, inputs: Sequence[InputFile], seed: int, pairs_per_bucket: int) -> None:
        super().__init__()
        self._inputs, self._seed, self._per_bucket = list(inputs), seed, pairs_per_bucket

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[beam.PCollection, list[Accounted]]:
        """Returns the ``(dest, [Row])`` lists and every accounted stage (reads, parses, negatives)."""
        lines = [f for f in self._inputs if f.kind == pair_task.PAIRS_JSONL]
        records = [f for f in self._inputs if f.kind == pair_task.PAIRS_TFRECORD]
        stages: list[Accounted] = []
        positives: list[beam.PCollection] = []
        if lines:
            read = pbegin | "ReadPairLines" >> ReadLineBatches([f.path for f in lines])
            parsed = read.out | "ParsePairLines" >> _Apply(
                ParseLines(PARSE_STAGE, pair_task.PairLineParser({f.path: f.split for f in lines})))
            stages += [read, parsed]
            positives.append(parsed.out)
        if records:
            frames = pbegin | "ReadPairRecords" >> ReadTFRecords([f.path for f in records])
            parsed = frames.out | "ParsePairRecords" >> _Apply(_ParsePairRecords({f.path: f.split for f in records}))
            stages += [frames, parsed]
            positives.append(parsed.out)
        pairs = tuple(positives) | "AllPairs" >> beam.Flatten(pipeline=pbegin.pipeline)
        seed, per_bucket = self._seed, self._per_bucket
        counts = beam.pvalue.AsDict(pairs | "CountPerSplit" >> beam.combiners.Count.PerKey())
        bucketed = pairs | "Bucket" >> beam.Map(
            lambda kv, n: ((kv[0], pair_task.bucket_of(seed, kv[1], max(1, n[kv[0]] // per_bucket))), kv[1]), counts)
        negatives = bucketed | "GroupBuckets" >> beam.GroupByKey() | "AddNegatives" >> _Apply(_AddNegatives(seed))
        stages.append(negatives)
        return negatives.out, stages


class _Apply(beam.PTransform):
    """``apply_accounted`` as a labelled transform, so composites can chain it with ``|``."""

    def __init__(self, dofn: AccountedDoFn) -> None:
        super().__init__()
        self._dofn = dofn

    def expand(self, pcoll: beam.PCollection) -> Accounted:
        return apply_accounted(pcoll, "Run", self._dofn)


