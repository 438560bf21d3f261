"""``ScorePairs``: every translation pair gets the cosine and ratio margin of its two sides' sentence
embeddings (``margin``), and pairs under a margin threshold are filtered (counted as ``low_margin``).

The steps, and why:

1. Each pair goes to a bucket of its language pair, ``hash(pair) % n_buckets`` with ``n_buckets`` from
   the language pair's count, so a bucket holds about ``bucket_size`` pairs and the same pairs land
   together on every run, whatever the order they arrive in. The bucket is the candidate set of the
   margin's k nearest neighbours and the unit of memory: a worker holds one bucket's pairs and
   embeddings (``bucket_size`` x 2 x dim floats, and a ``bucket_size``^2 float64 cosine matrix).
2. Each bucket's distinct texts per side, sorted, are cut into chunks of ``batch_size``, and
   RunInference embeds each chunk in one model call (see ``TextEmbedderHandler``: fixed chunks make
   the embeddings, hence the bytes written, independent of bundles).
3. The pairs and the embeddings of a bucket meet again (CoGroupByKey) and ``margin.aligned_margins``
   scores them; an accounted DoFn counts every pair out or filtered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference

from specs.errors import ConfigError
from transforms.core import accounting
from transforms.core.accounting import Accounted, AccountedDoFn
from transforms.core.seeding import stable_hash64
from transforms.encoders.handler import TextEmbedderHandler
from transforms.encoders.margin import aligned_margins
from transforms.translation.records import TranslationPair
from transforms.translation.sampling import pair_key

SCORE_STAGE = "score_pairs"
LOW_MARGIN = "low_margin"
SOURCE, TARGET = "src", "tgt"
# Texts per model call. all-MiniLM-L6-v2 on CPU (seq_length 128) embeds 48-50 sentences per CPU second at
# every batch size from 16 to 256; 64 keeps a call's activations small and a bucket's last chunk short.
EMBED_BATCH_SIZE = 64

BucketKey = tuple[str, int]


def bucket_count(pairs: int, bucket_size: int) -> int:
    """Buckets for a language pair of ``pairs`` pairs: about ``bucket_size`` each, at least one."""
    return max(1, round(pairs / bucket_size))


def bucket_of(pair: TranslationPair, counts: Mapping[str, int], bucket_size: int) -> BucketKey:
    """``(language pair, bucket index)`` from a hash of the pair's content (not its arrival)."""
    n = bucket_count(counts[pair.lang_pair], bucket_size)
    return pair.lang_pair, stable_hash64(b"margin_bucket", pair_key(pair)) % n


def both_sides(pair: TranslationPair) -> tuple[tuple[str, str], ...]:
    return (SOURCE, pair.src), (TARGET, pair.tgt)


def text_chunks(key: BucketKey, pairs: Iterable[TranslationPair], batch_size: int,
                sides: Callable[[TranslationPair], Iterable[tuple[str, str]]] = both_sides
                ) -> Iterator[tuple[tuple[BucketKey, str], tuple[str, ...]]]:
    """The bucket's distinct texts of each side (``sides(pair)``: the ``(side, text)`` a pair needs
    embedded), sorted, in chunks of ``batch_size``: the model calls."""
    by_side: dict[str, set[str]] = {}
    for pair in pairs:
        for side, text in sides(pair):
            by_side.setdefault(side, set()).add(text)
    for side in sorted(by_side):
        texts = sorted(by_side[side])
        for i in range(0, len(texts), batch_size):
            yield (key, side), tuple(texts[i:i + batch_size])


def score_bucket(pairs: Iterable[TranslationPair], embedded: Iterable[tuple[str, tuple[str, ...], np.ndarray]],
                 k: int) -> list[TranslationPair]:
    """The bucket's pairs, in content order, with ``score`` (cosine) and ``margin`` set from the
    embeddings of their texts (``(side, texts, vectors)`` chunks)."""
    vectors: dict[str, dict[str, np.ndarray]] = {SOURCE: {}, TARGET: {}}
    for side, texts, chunk in embedded:
        vectors[side].update(zip(texts, chunk, strict=True))
    ordered = sorted(pairs)
    x = np.stack([vectors[SOURCE][p.src] for p in ordered])
    y = np.stack([vectors[TARGET][p.tgt] for p in ordered])
    scores, margins = aligned_margins(x, y, k)
    return [p._replace(score=float(s), margin=float(m)) for p, s, m in zip(ordered, scores, margins, strict=True)]


class _ScoreBuckets(AccountedDoFn):
    stage = SCORE_STAGE

    def __init__(self, k: int, min_margin: float | None) -> None:
        self._k, self._min = k, min_margin

    def process(self, item: tuple[BucketKey, Mapping[str, Any]]) -> Iterator[TranslationPair]:
        _, joined = item
        (pairs,) = joined["pairs"]  # the bucket's one grouped iterable
        for pair in score_bucket(pairs, joined["vectors"], self._k):
            self.took_in(pair.lang_pair)
            if self._min is not None and pair.margin < self._min:
                self.filtered(pair.lang_pair, LOW_MARGIN)
                continue
            self.out(pair.lang_pair)
            yield pair


class ScorePairs(beam.PTransform):
    """``TranslationPair``s -> the same pairs with ``score`` and ``margin`` (see the module docstring),
    less those with a margin under ``min_margin`` (``None``: none filtered). Returns ``Accounted``."""

    def __init__(self, export_path: str, k: int = 4, bucket_size: int = 1000, min_margin: float | None = None,
                 batch_size: int = EMBED_BATCH_SIZE) -> None:
        super().__init__()
        if k < 1:
            raise ConfigError(f"--margin_k: {k} must be >= 1")
        if bucket_size <= k:
            raise ConfigError(f"--margin_bucket_size: {bucket_size} must be larger than --margin_k ({k})")
        if min_margin is not None and not math.isfinite(min_margin):
            raise ConfigError(f"--min_margin: {min_margin} is not a number")
        self._path, self._k, self._size, self._min, self._batch = export_path, k, bucket_size, min_margin, batch_size

    def expand(self, pairs: beam.PCollection) -> Accounted:
        joined = pairs | "EmbedBuckets" >> EmbedBuckets(self._path, self._size, self._batch)
        return accounting.apply_accounted(joined, "Score", _ScoreBuckets(self._k, self._min))


class EmbedBuckets(beam.PTransform):
    """Steps 1 and 2 of the module docstring, for any use of a bucket's embeddings: ``TranslationPair``s ->
    ``(bucket, {"pairs": [the bucket's pairs], "vectors": [(side, texts, embeddings), ...]})``, the texts
    each pair needs embedded given by ``sides`` (both sides by default)."""

    def __init__(self, export_path: str, bucket_size: int, batch_size: int = EMBED_BATCH_SIZE,
                 sides: Callable[[TranslationPair], Iterable[tuple[str, str]]] = both_sides) -> None:
        super().__init__()
        self._path, self._size, self._batch, self._sides = export_path, bucket_size, batch_size, sides

    def expand(self, pairs: beam.PCollection) -> beam.PCollection:
        size, batch, sides = self._size, self._batch, self._sides
        counts = (pairs | "LangPair" >> beam.Map(lambda p: (p.lang_pair, 1))
                  | "CountPerLangPair" >> beam.CombinePerKey(sum))
        buckets = (
            pairs
            | "ToBucket" >> beam.Map(lambda p, c: (bucket_of(p, c, size), p), beam.pvalue.AsDict(counts))
            | "GroupBuckets" >> beam.GroupByKey()
        )
        vectors = (
            buckets
            | "Chunks" >> beam.FlatMapTuple(lambda key, ps: text_chunks(key, ps, batch, sides))
            | "Embed" >> RunInference(KeyedModelHandler(TextEmbedderHandler(self._path)))
            | "ByBucket" >> beam.MapTuple(_by_bucket)
        )
        return {"pairs": buckets, "vectors": vectors} | "Join" >> beam.CoGroupByKey()


def _by_bucket(key: tuple[BucketKey, str], result: PredictionResult
               ) -> tuple[BucketKey, tuple[str, tuple[str, ...], np.ndarray]]:
    (bucket, side) = key
    return bucket, (side, result.example, result.inference)
