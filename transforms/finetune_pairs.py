"""Sentence-pair tasks from our own pairs: ``pipelines.finetune_data --from_pairs``.

StackExchange duplicate-question pairs or translation pairs (our JSONL or TFRecord outputs) become a
labelled pair-classification task, QQP-like: every pair is a positive (label ``1``), and its text A
with the text B of another pair is a negative (``0``). Negatives are chosen without holding the corpus:
pairs are spread over seeded hash buckets of about ``pairs_per_bucket`` pairs, each bucket is put in a
seeded order, and a pair borrows the text B of the next pair in that order whose texts differ from its
own, so the choice depends only on the data and the seed, never on bundling or worker count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam

from transforms import files
from transforms.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.dedup import BadRecordError, parse_example
from transforms.finetune import PARSE_STAGE, BadRowError, InputFile, Row, checked_text, decode_utf8, load_json
from transforms.seeding import stable_hash64

PAIRS_JSONL, PAIRS_TFRECORD = "pairs_jsonl", "pairs_tfrecord"
NEGATIVES_STAGE = "pair_negatives"
POSITIVE, NEGATIVE = "1", "0"


def parse_pair_json(raw: bytes) -> tuple[str, str]:
    """A text pair as our jobs write them in JSONL: a list of texts (StackExchange pairs and
    triplets: the first two are the pair), an object with ``texts`` (``--with_metadata``), or an object
    with ``src_raw``/``tgt_raw`` or ``src``/``tgt``."""
    obj = load_json(raw)
    if isinstance(obj, dict):
        texts = obj.get("texts")
        if texts is None:
            for a, b in (("src_raw", "tgt_raw"), ("src", "tgt")):
                if a in obj or b in obj:
                    texts = [obj.get(a), obj.get(b)]
                    break
        obj = texts
    if not isinstance(obj, list) or len(obj) < 2:
        raise BadRowError("missing_column",
                          "not a list of two texts, nor an object with texts, src_raw/tgt_raw or src/tgt")
    return checked_text(obj[0], "the first text"), checked_text(obj[1], "the second text")


def pair_example_id(seed: int, a: str, b: str, label: str) -> int:
    """``example_id`` of a pair-task record: a non-negative int64 hash of its content (pairs have no
    row numbers that survive the negatives' shuffle)."""
    return stable_hash64(seed, "example_id", a, b, label) >> 1


class _ParsePairLines(AccountedDoFn):
    """JSONL text pairs -> ``(split, Row)`` positives (label ``1``)."""

    stage = PARSE_STAGE

    def __init__(self, inputs: Sequence[InputFile]) -> None:
        self._split = {f.path: f.split for f in inputs}

    def process(self, batch: files.LineBatch) -> Iterator[Any]:
        path = batch.path
        for offset, raw in batch.lines:
            self.took_in(path)
            if not raw.strip():
                self.filtered(path, "blank_line")
                continue
            try:
                a, b = parse_pair_json(raw)
            except BadRowError as e:
                yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, raw, source=path, offset=offset,
                                                             detail=e.detail))
                continue
            self.out(path)
            split = self._split[path]
            yield split, Row(split, -1, a, b, POSITIVE, path, offset)


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
            try:
                feats = parse_example(raw)
            except BadRecordError as e:
                raise BadRowError(e.reason, str(e)) from None
            texts = [feats.get(name) or [None] for name in ("src_raw", "tgt_raw")]
            if any(not isinstance(t[0], bytes) for t in texts):
                raise BadRowError("missing_column", "needs bytes features src_raw and tgt_raw")
            a, b = (checked_text(decode_utf8(t[0]), name)
                    for t, name in zip(texts, ("src_raw", "tgt_raw"), strict=True))
        except BadRowError as e:
            yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, raw[:200], source=path, detail=e.detail))
            return
        self.out(path)
        split = self._split[path]
        yield split, Row(split, -1, a, b, POSITIVE, path, -1)


def bucket_of(seed: int, row: Row, num_buckets: int) -> int:
    return stable_hash64(seed, "negative_bucket", row.text_a, row.text_b) % num_buckets


def pair_with_negatives(seed: int, rows: Sequence[Row]) -> Iterator[tuple[Row, Row | None]]:
    """Each positive with its negative: the bucket's pairs in a seeded order, each pair's text A with
    the text B of the next pair (cyclically) whose B differs from its own; None when none does."""
    order = sorted(rows, key=lambda r: (stable_hash64(seed, "negative_order", r.text_a, r.text_b), r.text_a, r.text_b))
    n = len(order)
    for i, row in enumerate(order):
        negative = None
        for step in range(1, n):
            other = order[(i + step) % n]
            if other.text_b != row.text_b and other.text_a != row.text_a:
                negative = row._replace(text_b=other.text_b, label=NEGATIVE)
                break
        yield row, negative


class _AddNegatives(AccountedDoFn):
    """One bucket of positives -> ``(dest, [Row])``: every positive plus its negative, ids assigned."""

    stage = NEGATIVES_STAGE

    def __init__(self, seed: int) -> None:
        self._seed = seed

    def process(self, item: tuple[tuple[str, int], Iterable[Row]]) -> Iterator[Any]:
        (split, _), rows = item
        out: list[Row] = []
        for row, negative in pair_with_negatives(self._seed, list(rows)):
            self.took_in(split)
            out.append(row._replace(example_id=pair_example_id(self._seed, row.text_a, row.text_b, POSITIVE)))
            if negative is None:
                self.filtered(split, "no_negative_partner_in_bucket")
                continue
            self.out(split)
            out.append(negative._replace(example_id=pair_example_id(self._seed, row.text_a, negative.text_b,
                                                                    NEGATIVE)))
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
        lines = [f for f in self._inputs if f.kind == PAIRS_JSONL]
        records = [f for f in self._inputs if f.kind == PAIRS_TFRECORD]
        stages: list[Accounted] = []
        positives: list[beam.PCollection] = []
        if lines:
            read = pbegin | "ReadPairLines" >> files.ReadLineBatches([f.path for f in lines])
            parsed = read.out | "ParsePairLines" >> _Apply(_ParsePairLines(lines))
            stages += [read, parsed]
            positives.append(parsed.out)
        if records:
            frames = pbegin | "ReadPairRecords" >> files.ReadTFRecords([f.path for f in records])
            parsed = frames.out | "ParsePairRecords" >> _Apply(_ParsePairRecords({f.path: f.split for f in records}))
            stages += [frames, parsed]
            positives.append(parsed.out)
        pairs = tuple(positives) | "AllPairs" >> beam.Flatten(pipeline=pbegin.pipeline)
        seed, per_bucket = self._seed, self._per_bucket
        counts = beam.pvalue.AsDict(pairs | "CountPerSplit" >> beam.combiners.Count.PerKey())
        bucketed = pairs | "Bucket" >> beam.Map(
            lambda kv, n: ((kv[0], bucket_of(seed, kv[1], max(1, n[kv[0]] // per_bucket))), kv[1]), counts)
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


