"""Masking as the reference's ``create_masked_lm_predictions`` and ``_masking_ngrams`` mask (no Beam):
whole words and n-grams of them in Python, one instance at a time; single tokens with numpy over a
batch of rows (``mask_batch``)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

import numpy as np

from transforms.pretraining.params import InstanceParams, VocabInfo


def _word_grams(ids: Sequence[int], special: frozenset[int], continuation: Sequence[bool]) -> list[tuple[int, int]]:
    """Whole words as maskable spans ``[begin, end)``: a ``##`` piece joins the open word;
    [CLS]/[SEP] close it and are never part of one."""
    grams: list[tuple[int, int]] = []
    start = -1
    for i, t in enumerate(ids):
        if start >= 0 and continuation[t] and i not in special:
            continue
        if start >= 0:
            grams.append((start, i))
        start = -1 if i in special else i
    if start >= 0:
        grams.append((start, len(ids)))
    return grams


def _random_order(n: int, rng: random.Random) -> Iterator[int]:
    """0..n-1 in uniformly random order, drawn lazily (a Fisher-Yates shuffle that stops when the
    caller does): masking takes about ``budget`` of ~``max_seq_length`` candidates, so this costs
    ``budget`` draws where shuffling the whole list, as the reference does, costs ``n``."""
    moved: dict[int, int] = {}
    draw = rng.random
    for j in range(n):
        k = j + int(draw() * (n - j))
        yield moved.get(k, k)
        moved[k] = moved.get(j, j)


def _choose_spans(grams: list[tuple[int, int]], max_ngram_size: int, budget: int,
                  rng: random.Random) -> list[tuple[int, int]]:
    """Non-overlapping spans of 1..max_ngram_size contiguous grams covering at most ``budget``
    tokens, sizes drawn with weights 1, 1/2, 1/3, ...; a span that does not fit is skipped, not
    retried (the reference's ``_masking_ngrams``)."""
    chosen: list[tuple[int, int]] = []
    masked = 0
    if max_ngram_size == 1:
        for k in _random_order(len(grams), rng):
            if masked >= budget:
                break
            begin, end = grams[k]
            if masked + end - begin <= budget:
                chosen.append((begin, end))
                masked += end - begin
        return chosen
    by_size: dict[int, list[tuple[int, int]]] = {}
    for n in range(1, max_ngram_size + 1):
        spans = [(grams[k][0], grams[k + n - 1][1]) for k in range(len(grams) - n + 1)
                 if all(grams[j][1] == grams[j + 1][0] for j in range(k, k + n - 1))]
        rng.shuffle(spans)
        by_size[n] = spans
    sizes = list(range(1, max_ngram_size + 1))
    cum_weights = list(itertools.accumulate(1.0 / n for n in sizes))
    taken: set[int] = set()
    while masked < budget and any(by_size.values()):
        size = rng.choices(sizes, cum_weights=cum_weights)[0]
        if masked + size > budget:
            by_size[size].clear()
            continue
        if not by_size[size]:
            continue
        begin, end = by_size[size].pop()
        if masked + end - begin > budget or any(p in taken for p in range(begin, end)):
            continue
        taken.update(range(begin, end))
        chosen.append((begin, end))
        masked += end - begin
    return chosen


def mask_whole_words(ids: list[int], special: frozenset[int], params: InstanceParams, vocab: VocabInfo,
                     rng: random.Random) -> tuple[list[int], list[int]]:
    """Whole-word (and n-gram) masking of one instance, in Python: ``min(max_predictions_per_seq,
    max(1, round(len * masked_lm_prob)))`` predictions at most (``len`` counts [CLS] and [SEP]),
    chosen as whole words or n-grams of them; per chosen span 80% [MASK], 10% kept, 10% a random
    id of the whole vocabulary; never a position in ``special``. Returns the sorted positions and
    the ids written there."""
    out = list(ids)
    budget = min(params.max_predictions_per_seq, max(1, round(len(ids) * params.masked_lm_prob)))
    spans = _choose_spans(_word_grams(ids, special, vocab.continuation), params.max_ngram_size or 1, budget, rng)
    positions: list[int] = []
    for begin, end in spans:
        if rng.random() < 0.8:
            for p in range(begin, end):
                out[p] = vocab.mask_id
        elif rng.random() >= 0.5:
            for p in range(begin, end):
                out[p] = int(rng.random() * vocab.size)
        positions.extend(range(begin, end))
    positions.sort()
    return positions, [out[p] for p in positions]


def token_mask_words(params: InstanceParams) -> int:
    """Random 32-bit words ``mask_batch`` needs per instance: a sort key per position, one word per
    prediction for the 80/10/10 choice and two (53 bits, as ``random.random``) for a random id."""
    return params.max_seq_length + 3 * params.max_predictions_per_seq


def mask_batch(ids: np.ndarray, lengths: np.ndarray, len_a: np.ndarray, words: np.ndarray, params: InstanceParams,
               vocab: VocabInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Token-level masking of a batch of ``[CLS] A [SEP] B [SEP]`` rows (``ids``, zero-padded to
    ``max_seq_length``; ``len_a`` counts [CLS] A [SEP]), with numpy.

    Per row, ``min(max_predictions_per_seq, max(1, round(len * masked_lm_prob)))`` positions (as
    Python rounds, half to even) form a uniformly random subset of the positions other than [CLS]
    and the two [SEP] (the reference shuffles those and takes the first ones: the same
    distribution): the ones with the smallest random sort keys. Each is 80% [MASK], 10% kept, 10% a
    random id of the whole vocabulary. ``words`` (uint32, ``token_mask_words`` per row) is the
    rows' randomness. Returns the masked ids and, zero-padded to ``max_predictions_per_seq``, the
    sorted positions and the original ids there, and the number of predictions per row.
    """
    rows, length = ids.shape
    P = params.max_predictions_per_seq
    k = min(P, length)
    col = np.arange(length)
    candidate = (col >= 1) & (col < lengths[:, None] - 1) & (col != len_a[:, None] - 1)
    # Random high bits and the column in the low ones make the keys distinct, so every sort
    # algorithm orders them the same way; non-candidates sort last.
    keys = words[:, :length].astype(np.uint64)
    keys <<= np.uint64(max(1, (length - 1).bit_length()))
    keys |= np.where(candidate, col, col | 1 << 62).astype(np.uint64)
    count = np.minimum(np.minimum(P, np.maximum(1, np.round(lengths * params.masked_lm_prob))).astype(np.int64),
                       lengths - 3)
    valid = np.arange(k) < count[:, None]
    if k < length:
        # The row's count-th smallest key (from the k smallest, by value: cheaper than sorting every
        # row whole or partitioning indices); the positions are the columns whose keys are at most
        # that, in column order (a stable sort of a bool row is a counting sort).
        smallest = np.sort(np.partition(keys, k - 1, axis=1)[:, :k], axis=1)
        threshold = smallest[np.arange(rows), np.maximum(count - 1, 0)]
        # Exactly ``count`` keys per row are at most that (the keys are distinct); their columns,
        # row by row in column order, go to the row's first ``count`` slots.
        at_row, at_col = np.nonzero((keys <= threshold[:, None]) & (count > 0)[:, None])
        positions = np.zeros((rows, k), dtype=np.intp)
        positions[at_row, np.arange(len(at_row)) - (np.cumsum(count) - count)[at_row]] = at_col
    else:
        order = np.argsort(keys, axis=1)
        positions = np.where(valid, np.sort(np.where(valid, order, length), axis=1), 0)
    row = np.arange(rows)[:, None]
    labels = np.where(valid, ids[row, positions], 0)
    choice = words[:, length:length + k] * 2.0 ** -32
    pick = words[:, length + P:length + P + 2 * k]
    uniform = ((pick[:, 0::2] >> 5) * 67108864.0 + (pick[:, 1::2] >> 6)) * 2.0 ** -53  # as random.random()
    replaced = np.where(choice < 0.8, vocab.mask_id,
                        np.where(choice < 0.9, labels, (uniform * vocab.size).astype(np.int64)))
    masked = ids.copy()
    masked[row, positions] = np.where(valid, replaced, ids[row, positions])
    if k < P:
        positions, labels = (np.pad(m, ((0, 0), (0, P - k))) for m in (positions, labels))
    return masked, positions, labels, count
