"""Segment pairs from documents, as the reference's ``create_instances_from_document`` builds them (no Beam).

Tokenised documents are pooled in one flat id array (``Pool``); a pair names its segments by offsets
into it (``Pair``), so building and truncating pairs copies no tokens.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import random
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from transforms.pretraining.params import InstanceParams


@dataclasses.dataclass
class Pool:
    """Tokenised documents in one flat id array: sentence ``i`` of document ``d`` is
    ``ids[bounds[d][i]:bounds[d][i + 1]]``. Instances name their segments by offsets into it, so
    making a pair copies no tokens; the offsets are Python lists because pairing reads them one at
    a time."""

    ids: np.ndarray
    bounds: list[list[int]]

    @classmethod
    def from_arrays(cls, documents: Sequence[tuple[np.ndarray, np.ndarray]]) -> Pool:
        """From ``(ids, sentence bounds)`` per document, as ``Document`` holds them."""
        starts = np.cumsum([0, *(len(ids) for ids, _ in documents)]).tolist()
        flat = np.concatenate([ids for ids, _ in documents]) if documents else np.zeros(0, dtype=np.int32)
        return cls(flat, [(np.asarray(b, dtype=np.int64) + s).tolist()
                          for (_, b), s in zip(documents, starts[:-1], strict=True)])

    @classmethod
    def from_sentences(cls, documents: Sequence[Sequence[Sequence[int]]]) -> Pool:
        """From documents given as lists of tokenised sentences."""
        return cls.from_arrays([
            (np.asarray([t for s in doc for t in s], dtype=np.int32), np.cumsum([0, *(len(s) for s in doc)]))
            for doc in documents])

    @functools.cached_property
    def id_list(self) -> list[int]:
        """The ids as a Python list, for masking whole words token by token."""
        return self.ids.tolist()

    def tokens(self, start: int, length: int) -> list[int]:
        return self.id_list[start:start + length]


class Pair(NamedTuple):
    """An instance before masking: segments A and B as ``(start, length)`` in a ``Pool``'s ids."""

    a_start: int
    a_len: int
    b_start: int
    b_len: int
    is_random_next: bool


def truncate_pair(pair: Pair, max_num_tokens: int, rng: random.Random) -> Pair:
    """Trims the longer side (B on ties) one token at a time, from the front or the back with
    probability 1/2 each, until the pair fits, as the reference's ``truncate_seq_pair`` does.

    Which side loses each token does not depend on chance, so the cuts per side are computed
    directly; of a side's ``n`` cuts, the number taken from the front is Binomial(n, 1/2), drawn as
    the set bits of ``n`` random bits (the reference's distribution, without a draw per token).
    """
    return _fitted(*pair, max_num_tokens, rng)


def _fitted(a_start: int, la: int, b_start: int, lb: int, is_random_next: bool, max_num_tokens: int,
            rng: random.Random) -> Pair:
    excess = la + lb - max_num_tokens
    if excess <= 0:
        return Pair(a_start, la, b_start, lb, is_random_next)
    gap = min(abs(la - lb), excess)
    rest = excess - gap  # after the gap, the sides are equal and lose tokens alternately, B first
    cut_a = (gap if la > lb else 0) + rest // 2
    cut_b = (gap if la <= lb else 0) + rest - rest // 2
    front_a = rng.getrandbits(cut_a).bit_count() if cut_a else 0
    front_b = rng.getrandbits(cut_b).bit_count() if cut_b else 0
    return Pair(a_start + front_a, la - cut_a, b_start + front_b, lb - cut_b, is_random_next)


def create_segment_pairs(pool: Pool, doc_index: int, params: InstanceParams, rng: random.Random) -> list[Pair]:
    """The A/B pairs of document ``doc_index`` of the pool, for one pass, as the reference builds
    them; the pool is also where random next segments come from.

    Sentences accumulate into a chunk until the target length (``max_seq_length - 3``, or with
    ``short_seq_prob`` a random 2..that, drawn once per document and pass); A is a random number of
    the chunk's sentences; B is the rest or, when the chunk has one sentence or with probability
    1/2, a run of sentences from a random other document (from a random sentence until B reaches
    the length A leaves), in which case the chunk's unused sentences are put back. Chunk and run
    ends are found by bisecting the sentence offsets rather than by adding sentences one by one, and
    a uniform integer below ``n`` is ``int(random() * n)`` where the reference calls ``randint``
    (the same distribution to within ``n / 2**53``, one draw instead of a rejection loop).
    """
    draw, getrandbits, bisect_left, new_pair = rng.random, rng.getrandbits, bisect.bisect_left, _new_pair
    max_num_tokens = params.max_num_tokens
    target = max_num_tokens
    if draw() < params.short_seq_prob:
        target = 2 + int(draw() * (max_num_tokens - 1))
    all_bounds = pool.bounds
    bounds = all_bounds[doc_index]
    sentences = len(bounds) - 1
    documents = len(all_bounds)
    pairs: list[Pair] = []
    append = pairs.append
    i = 0
    while i < sentences:
        end = bisect_left(bounds, bounds[i] + target, i + 1, sentences)  # the chunk is i..end-1
        size = end - i
        a_end = i + 1 + (int(draw() * (size - 1)) if size >= 2 else 0)
        a_start, a_len = bounds[i], bounds[a_end] - bounds[i]
        if size == 1 or draw() < 0.5:
            other = int(draw() * documents)
            if other == doc_index:
                for _ in range(9):
                    other = int(draw() * documents)
                    if other != doc_index:
                        break
            other_bounds = all_bounds[other]
            start = int(draw() * (len(other_bounds) - 1))
            # Sentences from ``start`` until B reaches target - len(A) (at least one sentence).
            stop = bisect_left(other_bounds, other_bounds[start] + (target - a_len if target > a_len else 1),
                               start + 1, len(other_bounds) - 1)
            b_start, b_len, is_random_next = other_bounds[start], other_bounds[stop] - other_bounds[start], True
            i = a_end
        else:
            b_start, b_len, is_random_next = bounds[a_end], bounds[end] - bounds[a_end], False
            i = end
        excess = a_len + b_len - max_num_tokens
        if excess > 0:  # ``_fitted``, inline: pair building is per instance
            gap = a_len - b_len if a_len > b_len else b_len - a_len
            if gap > excess:
                gap = excess
            rest = excess - gap
            cut_a = (gap if a_len > b_len else 0) + rest // 2
            cut_b = (gap if a_len <= b_len else 0) + rest - rest // 2
            if cut_a:
                a_start += getrandbits(cut_a).bit_count()
                a_len -= cut_a
            if cut_b:
                b_start += getrandbits(cut_b).bit_count()
                b_len -= cut_b
        append(new_pair(Pair, (a_start, a_len, b_start, b_len, is_random_next)))
    return pairs


_new_pair = tuple.__new__  # ``Pair(...)`` without the Python-level ``__new__`` NamedTuple adds
