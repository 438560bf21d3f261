"""Sentence-pair tasks from our own pairs (no Beam): ``pipelines.finetune_data --from_pairs``.

StackExchange duplicate-question pairs or translation pairs (our JSONL or TFRecord outputs) become a
labelled pair-classification task, QQP-like: every pair is a positive (label ``1``), and its text A
with the text B of another pair is a negative (``0``). Negatives are chosen without holding the corpus:
pairs are spread over seeded hash buckets of about ``pairs_per_bucket`` pairs, each bucket is put in a
seeded order, and a pair borrows the text B of the next pair in that order whose texts differ from its
own, so the choice depends only on the data and the seed, never on bundling or worker count
(``pair_steps`` wires this up on Beam).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from transforms.core.records import BadRecordError
from transforms.core.seeding import stable_hash64
from transforms.finetune.records import Row, checked_text, load_json

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
        raise BadRecordError("missing_column",
                          "not a list of two texts, nor an object with texts, src_raw/tgt_raw or src/tgt")
    return checked_text(obj[0], "the first text"), checked_text(obj[1], "the second text")


def pair_example_id(seed: int, a: str, b: str, label: str) -> int:
    """``example_id`` of a pair-task record: a non-negative int64 hash of its content (pairs have no
    row numbers that survive the negatives' shuffle)."""
    return stable_hash64(seed, "example_id", a, b, label) >> 1



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


class PairLineParser:
    """A JSONL text pair -> ``(split, Row)``, a positive (the parse function of ``core.records.ParseLines``)."""

    def __init__(self, splits: dict[str, str]) -> None:
        self._split = dict(splits)

    def __call__(self, path: str, offset: int, raw: bytes) -> tuple[str, Row]:
        a, b = parse_pair_json(raw)
        split = self._split[path]
        return split, Row(split, -1, a, b, POSITIVE, path, offset)
