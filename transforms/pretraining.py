"""Masked-LM pretraining examples as ``create_pretraining_data.py`` makes them, on Beam.

The per-element logic (documents to segment pairs, truncation, masking, TLM pairs, encoding) is in
plain functions that follow the reference algorithm decision for decision, with one generator per
document and pass instead of one global generator; pairs are offsets into the bucket's ids, and
masking and encoding run with numpy over batches of a few thousand instances (``InstanceBatch``),
drawing from the same distributions as the reference with fewer, other draws. The PTransforms below
read documents, tokenise them in batches, pool them in bounded shuffle buckets (the "random next"
documents come from the same bucket, not from an in-memory list of the whole corpus) and write
shuffled, sharded TFRecords.

Output layout (what readers of the data may rely on), under ``OUTPUT_DIR``:

- ``schema.pbtxt`` and ``feature_spec.json``: the feature spec (``specs.pretraining_spec``); build the
  parser from these, see ``specs.read_spec_text``.
- ``params.json``: every parameter the job ran with, the vocabulary's size and special ids, the
  number of records written and the per-language document counts and sampling rates.
- ``pretrain-SSSSS-of-NNNNN.tfrecord`` (``.tfrecord.gz`` with ``--gzip_compress``): the examples,
  ``tf.train.Example`` records, globally shuffled by a seeded hash.
- ``summary.json`` and ``dead_letter/``: the run's accounting (written by ``transforms.core.runtime``).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import json
import math
import random
import re
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io import filebasedsource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

import specs
from specs.vocabulary import Vocabulary
from transforms.core import accounting
from transforms.core import input_checks as checks
from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter
from transforms.core.lines import ReadLineBatches, lines_from, sniff_range
from transforms.core.memory import release_free_memory
from transforms.core.placement import shard_of
from transforms.core.seeding import element_rng, stable_hash64, stable_hash128, unit_interval
from transforms.core.shards import resolve_write_method
from transforms.core.spill import SpillRun, SpillRuns, read_group
from transforms.core.storage import remove_folder, temp_folder
from transforms.core.tfrecords import ReadTFRecords
from transforms.text.bert_tokenization import BertTokenizer
from transforms.text.sentences import split_sentences

UNDETERMINED = "und"


# --- parameters ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class InstanceParams:
    """The reference's instance and masking parameters (same names, same meanings)."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    do_whole_word_mask: bool = False
    max_ngram_size: int | None = None
    dynamic_masking: bool = False

    @property
    def max_num_tokens(self) -> int:
        return self.max_seq_length - 3


@dataclasses.dataclass(frozen=True)
class VocabInfo:
    """What masking and encoding need from the vocabulary."""

    size: int
    cls_id: int
    sep_id: int
    mask_id: int
    continuation: tuple[bool, ...]  # per id: a "##" piece (joins the word before it)

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary) -> VocabInfo:
        return cls(vocab.size, vocab.cls_id, vocab.sep_id, vocab.mask_id,
                   tuple(t.startswith("##") for t in vocab.tokens))


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


# --- instances from documents (reference: create_instances_from_document) ------------------------

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


# --- masking (reference: create_masked_lm_predictions and _masking_ngrams) -----------------------

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


# --- batches of instances ----------------------------------------------------------------------

_KEY_WORDS = 2  # random 32-bit words per instance for its 8-byte sort key


class InstanceBatch:
    """Instances of many documents and passes, masked and encoded together with numpy.

    ``add`` takes one document's (or translation pair's) pairs for one pass and draws all their
    randomness from that pass's generator (the reference uses one generator per run; ours is per
    document and pass, so records do not depend on how documents are grouped into batches): whole-word
    masks in Python, else a block of random words that ``encode`` turns into token masks, plus each
    instance's sort key (a seeded global shuffle for the writer). Per instance, Python costs
    tens of microseconds; numpy over a batch, a few.
    """

    def __init__(self, params: InstanceParams, vocab: VocabInfo, spec: specs.FeatureSpec) -> None:
        self._params, self._vocab, self._spec = params, vocab, spec
        self._whole_words = params.do_whole_word_mask and not params.dynamic_masking
        self._token_words = 0 if params.dynamic_masking or self._whole_words else token_mask_words(params)
        self.pairs: list[Pair] = []
        self._words: list[bytes] = []
        self._whole_word_masks: list[tuple[list[int], list[int]]] = []

    def __len__(self) -> int:
        return len(self.pairs)

    def add(self, pool: Pool, pairs: Sequence[Pair], rng: random.Random) -> None:
        if self._whole_words:
            vocab = self._vocab
            for a_start, a_len, b_start, b_len, _ in pairs:
                ids = [vocab.cls_id, *pool.tokens(a_start, a_len), vocab.sep_id, *pool.tokens(b_start, b_len),
                       vocab.sep_id]
                special = frozenset((0, a_len + 1, len(ids) - 1))
                self._whole_word_masks.append(mask_whole_words(ids, special, self._params, vocab, rng))
        n = len(pairs) * (_KEY_WORDS + self._token_words)
        self._words.append(rng.getrandbits(32 * n).to_bytes(4 * n, "little"))
        self.pairs.extend(pairs)

    def encode(self, pool: Pool) -> list[tuple[bytes, bytes]]:
        """``(sort_key, serialized tf.train.Example)`` for every instance added (``pool``: the one
        their offsets refer to); empties the batch."""
        if not self.pairs:
            return []
        rows, L = len(self.pairs), self._params.max_seq_length
        a_start, a_len, b_start, b_len, random_next = np.fromiter(
            itertools.chain.from_iterable(self.pairs), dtype=np.int64, count=5 * rows).reshape(rows, 5).T
        words = np.frombuffer(b"".join(self._words), dtype="<u4").reshape(rows, -1)
        lengths = a_len + b_len + 3
        col = np.arange(L)
        # Column c holds A's token c - 1 (1 <= c <= len A) or B's token c - len A - 2.
        in_b = col >= a_len[:, None] + 2
        source = np.where(in_b, (b_start - a_len - 2)[:, None], (a_start - 1)[:, None]) + col
        token = (col >= 1) & (col < lengths[:, None] - 1) & (col != a_len[:, None] + 1)
        ids = np.where(token, pool.ids.take(source, mode="clip"), 0)
        row = np.arange(rows)
        ids[:, 0] = self._vocab.cls_id
        ids[row, a_len + 1] = self._vocab.sep_id
        ids[row, lengths - 1] = self._vocab.sep_id
        columns = {self._spec.features[0].name: ids, self._spec.features[1].name: in_b & (col < lengths[:, None])}
        if not self._params.dynamic_masking:
            if self._whole_words:
                masked, positions, labels, count = self._apply_whole_word_masks(ids)
            else:
                masked, positions, labels, count = mask_batch(ids, lengths, a_len + 2, words[:, _KEY_WORDS:],
                                                              self._params, self._vocab)
            columns.update({self._spec.features[0].name: masked, "input_mask": col < lengths[:, None],
                            "masked_lm_positions": positions, "masked_lm_ids": labels,
                            "masked_lm_weights": np.arange(positions.shape[1]) < count[:, None],
                            "next_sentence_labels": random_next})
        keys = np.ascontiguousarray(words[:, :_KEY_WORDS]).view(f"V{4 * _KEY_WORDS}").ravel().tolist()  # bytes
        records = list(zip(keys, self._spec.encode_batch(columns), strict=True))
        self.pairs, self._words, self._whole_word_masks = [], [], []
        return records

    def _apply_whole_word_masks(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        P = self._params.max_predictions_per_seq
        masked = ids.copy()
        positions = np.zeros((len(ids), P), dtype=np.int64)
        labels = np.zeros((len(ids), P), dtype=np.int64)
        count = np.zeros(len(ids), dtype=np.int64)
        for r, (pos, values) in enumerate(self._whole_word_masks):
            k = count[r] = len(pos)
            positions[r, :k] = pos
            labels[r, :k] = ids[r, pos]
            masked[r, pos] = values
        return masked, positions, labels, count


# --- documents -----------------------------------------------------------------------------------

class RawDocument(NamedTuple):
    """A document as read: its sentences, where it came from, and how many input records (lines,
    JSON lines, TFRecords) it accounts for beyond its sentences (blank separator lines)."""

    source: str
    offset: int
    language: str
    sentences: list[str]
    separators: int = 0


class Document(NamedTuple):
    """A tokenised document: sentence ``i`` is ``ids[bounds[i]:bounds[i + 1]]``."""

    key: bytes
    language: str
    ids: np.ndarray
    bounds: np.ndarray


def document_key(doc: RawDocument) -> bytes:
    """Identity of a document for seeding: its text and its byte offset, not its path, so the same
    files give the same records wherever they are stored."""
    return stable_hash128("\n".join(doc.sentences), doc.offset)


def language_from_path(pattern: re.Pattern[str] | None, path: str) -> str:
    if pattern is None:
        return UNDETERMINED
    m = pattern.search(path)
    return m.group(1) if m and m.groups() else (m.group(0) if m else UNDETERMINED)


class _BertTextSource(filebasedsource.FileBasedSource):
    """Reads the BERT text format (a sentence per line, blank lines between documents) as
    ``RawDocument`` s, splittably.

    A document belongs to the byte range holding the blank line just before it (the first
    document of a file to the range holding offset 0), and a reader continues past the end of its
    range to finish its last document, the way line-based text reading treats lines. Each blank
    line is claimed as a split point and accounted for by the document it starts (consecutive blank
    lines give empty documents that carry only their separator). A document longer than
    ``max_sentences`` lines is cut into parts so no worker ever holds an unbounded one.

    The checks every reader makes (``transforms.core.input_checks``) come out as ``InputProblem`` s: a
    file that is not text gives one and no documents, a line that is not UTF-8 gives one and is
    left out of its document, and a compressed stream that breaks off gives one in place of its
    partial last line.
    """

    def __init__(self, file_pattern: str, max_sentences: int, language: str, **kwargs: Any) -> None:
        super().__init__(file_pattern, **kwargs)
        self._max = max_sentences
        self._language = language

    def read_records(self, file_name: str, range_tracker: Any) -> Iterator[RawDocument | checks.InputProblem]:
        start = range_tracker.start_position()
        cr_only = yield from sniff_range(file_name, range_tracker)
        if cr_only is None:
            return
        sentences: list[str] | None = None  # None: skipping lines of a document another range owns
        offset, separators = 0, 0
        if start == 0:
            if not range_tracker.try_claim(0):
                return
            sentences = []
        try:
            with checks.open_checked(file_name) as f:
                for off, raw in lines_from(f, start, cr_only):
                    if raw.strip():
                        if sentences is None:
                            continue
                        try:  # decoded once; only a line that fails goes through the shared check
                            sentence = raw.decode("utf-8").strip()
                        except UnicodeDecodeError:
                            yield checks.utf8_problem(file_name, off, raw)
                            continue
                        if not sentences and not separators:
                            offset = off
                        sentences.append(sentence)
                        if len(sentences) >= self._max:
                            yield RawDocument(file_name, offset, self._language, sentences, separators)
                            sentences, separators = [], 0
                        continue
                    if sentences is not None and (sentences or separators):
                        yield RawDocument(file_name, offset, self._language, sentences, separators)
                    if not (off == 0 and start == 0) and not range_tracker.try_claim(off):
                        return
                    sentences, offset, separators = [], off, 1
        except checks.TruncatedInputError as e:
            if sentences or separators:  # the whole lines before the break are read as usual
                yield RawDocument(file_name, offset, self._language, sentences or [], separators)
            yield e.problem(file_name)
            return
        if sentences or separators:
            yield RawDocument(file_name, offset, self._language, sentences or [], separators)


class ReadBertText(beam.PTransform):
    """Files in the BERT text format to ``RawDocument`` s, split across workers by byte range."""

    def __init__(self, paths: Sequence[str], max_sentences: int, language_pattern: re.Pattern[str] | None,
                 desired_bundle_size: int = 64 << 20) -> None:
        super().__init__()
        self._paths = list(paths)
        self._max = max_sentences
        self._pattern = language_pattern
        self._bundle = desired_bundle_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        max_sentences, pattern = self._max, self._pattern

        def source_from_file(path: str) -> _BertTextSource:
            return _BertTextSource(path, max_sentences, language_from_path(pattern, path),
                                   compression_type=CompressionTypes.AUTO, validate=False)

        return (
            pbegin
            | "Paths" >> beam.Create(self._paths)
            | "ReadRanges" >> filebasedsource.ReadAllFiles(
                True, CompressionTypes.AUTO, self._bundle, 1 << 20, source_from_file, False)
        )


class _CountTextLines(AccountedDoFn):
    """Accounts for the lines of the BERT text format: each is a sentence of a document or a
    blank separator line. The reader's checks are accounted as in every pipeline: stage
    ``read_input`` takes in every line (and each problem) and dead-letters the problems."""

    stage = "read_text"

    def process(self, doc: RawDocument | checks.InputProblem) -> Iterator[Any]:
        if isinstance(doc, checks.InputProblem):
            self.took_in(doc.path, stage=checks.READ_STAGE)
            yield self.dead_letter(doc.path, doc.letter(), stage=checks.READ_STAGE)
            return
        lines = len(doc.sentences) + doc.separators
        self.took_in(doc.source, lines, stage=checks.READ_STAGE)
        self.out(doc.source, lines, stage=checks.READ_STAGE)
        self.took_in(doc.source, lines)
        self.out(doc.source, len(doc.sentences))
        self.filtered(doc.source, "blank_line", doc.separators)
        if doc.sentences:
            yield doc


class _ParseJsonDocuments(AccountedDoFn):
    """JSON lines (``{"text": ..., "lang": ...}``) to documents split into sentences."""

    stage = "read_jsonl"

    def __init__(self, text_field: str, language_field: str, language_pattern: re.Pattern[str] | None) -> None:
        self._text, self._lang, self._pattern = text_field, language_field, language_pattern

    def process(self, batch: Any) -> Iterator[Any]:
        path = batch.path
        for offset, raw in batch.lines:
            self.took_in(path)
            if not raw.strip():
                self.filtered(path, "blank_line")
                continue
            try:
                record = json.loads(raw)
            except ValueError as e:
                yield self.dead_letter(path, DeadLetter.make(self.stage, "invalid_json", raw, source=path,
                                                             offset=offset, detail=str(e)))
                continue
            text = record.get(self._text) if isinstance(record, dict) else None
            if not isinstance(text, str):
                yield self.dead_letter(path, DeadLetter.make(self.stage, "missing_text_field", raw, source=path,
                                                             offset=offset, detail=f"no string field {self._text!r}"))
                continue
            sentences = split_sentences(text)
            if not sentences:
                self.filtered(path, "empty_text")
                continue
            lang = record.get(self._lang)
            language = lang if isinstance(lang, str) and lang else language_from_path(self._pattern, path)
            self.out(path)
            yield RawDocument(path, offset, language, sentences)


class _ParseExampleDocuments(AccountedDoFn):
    """``tf.train.Example`` documents: a bytes feature holding the text (one value: split into
    sentences; several: one sentence each) and optionally one holding the language."""

    stage = "read_tfrecord"

    def __init__(self, text_feature: str, language_feature: str, language_pattern: re.Pattern[str] | None) -> None:
        self._text, self._lang, self._pattern = text_feature, language_feature, language_pattern

    def process(self, item: tuple[str, bytes]) -> Iterator[Any]:
        path, raw = item
        self.took_in(path)
        feats, letter = _example_features(self, path, raw)
        if letter is not None:
            yield letter
            return
        if self._text not in feats or not feats[self._text].bytes_list.value:
            yield self.dead_letter(path, DeadLetter.make(self.stage, "missing_text_feature", raw[:200], source=path,
                                                         detail=f"no bytes feature {self._text!r}"))
            return
        raw_values = feats[self._text].bytes_list.value
        error = next(filter(None, (checks.utf8_error(v, f"feature {self._text!r}") for v in raw_values)), None)
        if error:
            yield self.dead_letter(path, DeadLetter.make(self.stage, checks.INVALID_UTF8, raw[:200], source=path,
                                                         detail=error))
            return
        values = [v.decode("utf-8") for v in raw_values]
        sentences = split_sentences(values[0]) if len(values) == 1 else [s.strip() for s in values if s.strip()]
        if not sentences:
            self.filtered(path, "empty_text")
            return
        lang_values = feats[self._lang].bytes_list.value if self._lang in feats else []
        language = lang_values[0].decode("utf-8", "ignore") if lang_values else language_from_path(self._pattern, path)
        self.out(path)
        yield RawDocument(path, stable_hash64(raw), language, sentences)


class ReadDocuments(beam.PTransform):
    """Input files of one format to ``RawDocument`` s, accounted per file.

    ``fmt`` is ``text`` (the BERT format), ``jsonl`` or ``tfrecord``.
    """

    def __init__(self, paths: Sequence[str], fmt: str, *, max_sentences: int = 10_000,
                 language_pattern: re.Pattern[str] | None = None, text_field: str = "text",
                 language_field: str = "lang") -> None:
        super().__init__()
        self._paths, self._fmt, self._max = list(paths), fmt, max_sentences
        self._pattern, self._text, self._lang = language_pattern, text_field, language_field

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        if self._fmt == "text":
            docs = pbegin | "ReadBertText" >> ReadBertText(self._paths, self._max, self._pattern)
            return accounting.apply_accounted(docs, "CountLines", _CountTextLines())
        if self._fmt == "jsonl":
            frames = pbegin | "ReadJsonLines" >> ReadLineBatches(self._paths)
            docs = accounting.apply_accounted(frames.out, "ParseJson",
                                              _ParseJsonDocuments(self._text, self._lang, self._pattern))
        else:
            frames = pbegin | "ReadRecords" >> ReadTFRecords(self._paths)
            docs = accounting.apply_accounted(frames.out, "ParseExamples",
                                              _ParseExampleDocuments(self._text, self._lang, self._pattern))
        return Accounted(docs.out, (frames.tally, docs.tally) | "Tallies" >> beam.Flatten(),
                         (frames.dead_letter, docs.dead_letter) | "DeadLetters" >> beam.Flatten())


# --- tokenisation --------------------------------------------------------------------------------

class _BatchingDoFn(AccountedDoFn):
    """Buffers elements of a bundle and processes them together (the tokenizer is fast per batch,
    slow per call); results leave at the latest when the bundle finishes."""

    batch_lines = 4096

    def start_bundle(self) -> None:
        super().start_bundle()
        self._buffer: list[Any] = []
        self._buffered = 0

    def _size(self, element: Any) -> int:
        raise NotImplementedError

    def _flush(self) -> list[Any]:
        raise NotImplementedError

    def process(self, element: Any) -> Iterator[Any]:
        self._buffer.append(element)
        self._buffered += self._size(element)
        if self._buffered >= self.batch_lines:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        for out in self._flush():
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, WindowedValue(out.value, MIN_TIMESTAMP, [GlobalWindow()]))
            else:
                yield WindowedValue(out, MIN_TIMESTAMP, [GlobalWindow()])
        yield from super().finish_bundle()


class _TokenizeDocuments(_BatchingDoFn):
    """Sentences to WordPiece ids; a sentence without tokens is dropped as the reference drops it,
    a document left without sentences is dropped after it."""

    stage = "tokenize"

    def __init__(self, tokenizer: BertTokenizer) -> None:
        self._tokenizer = tokenizer

    def _size(self, doc: RawDocument) -> int:
        return len(doc.sentences)

    def _flush(self) -> list[Any]:
        docs, self._buffer, self._buffered = self._buffer, [], 0
        if not docs:
            return []
        ids = self._tokenizer.tokenize_batch([s for d in docs for s in d.sentences])
        out: list[Any] = []
        k = 0
        for doc in docs:
            sentences = [a for a in ids[k:k + len(doc.sentences)] if len(a)]
            k += len(doc.sentences)
            self.took_in(doc.source, len(doc.sentences))
            self.out(doc.source, len(sentences))
            self.filtered(doc.source, "no_tokens", len(doc.sentences) - len(sentences))
            if sentences:
                lengths = np.fromiter((len(a) for a in sentences), dtype=np.int64, count=len(sentences))
                bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
                out.append(Document(document_key(doc), doc.language, np.concatenate(sentences), bounds))
        return out


class TokenizeDocuments(beam.PTransform):
    """``RawDocument`` s to ``Document`` s of ids, tokenised in batches of a few thousand lines."""

    def __init__(self, tokenizer: BertTokenizer) -> None:
        super().__init__()
        self._tokenizer = tokenizer

    def expand(self, docs: beam.PCollection) -> Accounted:
        return accounting.apply_accounted(docs, "Tokenize", _TokenizeDocuments(self._tokenizer))


# --- language-balanced sampling ------------------------------------------------------------------

def language_pass_rates(counts: Mapping[str, int], alpha: float, dupe_factor: int) -> dict[str, float]:
    """Expected passes per document for each language under exponentially smoothed sampling.

    With document shares ``p_l = n_l / N``, the smoothed shares are ``q_l = p_l**alpha / sum_k
    p_k**alpha`` (alpha=1 keeps the corpus as it is, alpha=0 makes languages equal, XLM-R uses
    0.3). The total work stays ``dupe_factor * N`` document passes, divided as ``q``: a document of
    language ``l`` gets ``dupe_factor * N * q_l / n_l`` passes on average, so rare languages are
    seen more often (with different masks and pairs) and common ones less.
    """
    total = sum(counts.values())
    if total == 0:
        return {}
    weights = {lang: (n / total) ** alpha for lang, n in counts.items() if n > 0}
    norm = sum(weights.values())
    return {lang: dupe_factor * total * (w / norm) / counts[lang] for lang, w in weights.items()}


def passes_for(rate: float, seed: int, key: bytes) -> int:
    """Stochastic rounding of an expected pass count, seeded by the document."""
    whole = math.floor(rate)
    return whole + (1 if unit_interval(seed, key, "passes") < rate - whole else 0)


def bucket_count(counts: Mapping[str, int], docs_per_bucket: int) -> int:
    """Shuffle buckets for a corpus of ``sum(counts)`` documents: about ``docs_per_bucket`` each."""
    return max(1, round(sum(counts.values()) / docs_per_bucket))


def bucket_hash(seed: int, key: bytes) -> int:
    """The 64-bit hash that places a document in a bucket (``files.shard_of`` of it)."""
    return stable_hash64(seed, key, "bucket")


_DOC_HEADER = struct.Struct(">HH")  # language length, ids dtype length


def encode_document(doc: Document) -> bytes:
    """A tokenised document as bytes for a spilled run (its key travels beside it)."""
    language, dtype = doc.language.encode("utf-8"), doc.ids.dtype.str.encode("ascii")
    bounds = np.asarray(doc.bounds, dtype="<i8")
    return b"".join((_DOC_HEADER.pack(len(language), len(dtype)), language, dtype,
                     len(bounds).to_bytes(4, "big"), bounds.tobytes(), doc.ids.tobytes()))


def decode_document(key: bytes, data: bytes) -> Document:
    lang_len, dtype_len = _DOC_HEADER.unpack_from(data)
    pos = _DOC_HEADER.size
    language = data[pos:pos + lang_len].decode("utf-8")
    dtype = np.dtype(data[pos + lang_len:pos + lang_len + dtype_len].decode("ascii"))
    pos += lang_len + dtype_len
    n = int.from_bytes(data[pos:pos + 4], "big")
    bounds = np.frombuffer(data, dtype="<i8", count=n, offset=pos + 4)
    ids = np.frombuffer(data, dtype=dtype, offset=pos + 4 + 8 * n)
    return Document(key, language, ids, bounds)


class _SpillDocuments(SpillRuns):
    """Documents to spilled runs, placed by their bucket hash and sorted in a bucket by key."""

    def __init__(self, folder: str, seed: int) -> None:
        super().__init__(folder)
        self._seed = seed

    def process(self, doc: Document) -> Iterator[SpillRun]:
        return self.add(np.array([bucket_hash(self._seed, doc.key)], dtype=np.uint64), [doc.key],
                        [encode_document(doc)])


class _KeyByBucket(beam.DoFn):
    """The shuffle method's bucket key: ``shard_of`` the bucket hash, as the spilled runs are read."""

    def __init__(self, seed: int, docs_per_bucket: int) -> None:
        self._seed, self._per_bucket = seed, docs_per_bucket

    def process(self, doc: Document, counts: dict[str, int]) -> Iterator[tuple[int, Document]]:
        yield shard_of(bucket_hash(self._seed, doc.key), bucket_count(counts, self._per_bucket)), doc


# --- instances -----------------------------------------------------------------------------------

INSTANCE_COUNTS = "instance_counts"


BATCH_INSTANCES = 2048  # instances masked and encoded together, and sent to the writer as one element


class _CreateInstances(AccountedDoFn):
    """One shuffle bucket of documents to lists of encoded examples, every document with every pass.

    The bucket arrives grouped (``(index, documents)``, the shuffle method) or as its index, read
    from the spilled runs (the spill method); either way its documents are sorted by key, so the
    result depends on neither the method nor the order of arrival. Each document first gets its
    number of passes (``language_pass_rates``; a document of an over-represented language may get
    none and is filtered as ``language_downsampled``); the documents with passes are the pool that
    random next segments come from. Each document and pass has its own generator (job seed,
    document key, pass), which also draws each example's sort key (the writer's seeded global
    shuffle). Examples leave in lists of about ``BATCH_INSTANCES``: a Beam element costs more than
    making an example, and the writer takes lists.
    """

    stage = "sample_languages"

    def __init__(self, seed: int, params: InstanceParams, vocab: VocabInfo, spec: specs.FeatureSpec,
                 alpha: float, docs_per_bucket: int) -> None:
        self._seed, self._params, self._vocab, self._spec = seed, params, vocab, spec
        self._alpha, self._per_bucket = alpha, docs_per_bucket

    def process(self, bucket: int | tuple[int, Iterable[Document]], counts: dict[str, int],
                runs: list[SpillRun] | None = None) -> Iterator[Any]:
        if runs is None:
            docs = sorted(bucket[1], key=lambda d: d.key)
        else:
            docs = [decode_document(k, v) for k, v in read_group(runs, bucket, bucket_count(counts, self._per_bucket))]
        rates = language_pass_rates(counts, self._alpha, self._params.dupe_factor)
        members: list[tuple[Document, int]] = []
        for doc in docs:
            self.took_in(doc.language)
            n = passes_for(rates[doc.language], self._seed, doc.key) if self._alpha != 1.0 else self._params.dupe_factor
            if n == 0:
                self.filtered(doc.language, "language_downsampled")
                continue
            self.out(doc.language)
            members.append((doc, n))
        yield from self._instances(members)
        del docs, members  # the bucket is done: its memory goes back to the system
        release_free_memory()

    def _instances(self, members: list[tuple[Document, int]]) -> Iterator[Any]:
        pool = Pool.from_arrays([(doc.ids, doc.bounds) for doc, _ in members])
        batch = InstanceBatch(self._params, self._vocab, self._spec)
        counts: dict[str, int] = {}
        for index, (doc, passes) in enumerate(members):
            made = 0
            for p in range(passes):
                rng = element_rng(self._seed, doc.key, p)
                pairs = create_segment_pairs(pool, index, self._params, rng)
                batch.add(pool, pairs, rng)
                made += len(pairs)
                if len(batch) >= BATCH_INSTANCES:  # after a pass, not a document: a batch stays bounded
                    yield batch.encode(pool)
            counts[doc.language] = counts.get(doc.language, 0) + made
        if len(batch):
            yield batch.encode(pool)
        for lang, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(INSTANCE_COUNTS, (lang, n))


class CreatePretrainingExamples(beam.PTransform):
    """Tokenised documents to lists of ``(sort_key, serialized Example)`` pairs, plus per-language
    counts.

    Documents are counted per language (a small side input) and placed by a seeded hash into
    ``round(N / docs_per_bucket)`` buckets (``files.shard_of``, equal ranges of the hash); each
    bucket is the bounded pool the random next segments are drawn from. Off Dataflow (``spill``,
    see ``files.WriteShards``) the documents go to run files in a hidden folder of ``temp_dir``
    (removed when the examples are made) and each bucket is read back from them, so the local
    runner never holds the tokenised corpus; on Dataflow a ``GroupByKey`` groups them. The
    examples are the same either way.
    """

    def __init__(self, seed: int, params: InstanceParams, vocab: VocabInfo, spec: specs.FeatureSpec,
                 language_alpha: float = 1.0, docs_per_bucket: int = 1000, temp_dir: str = "",
                 method: str = "auto") -> None:
        super().__init__()
        self._seed, self._params, self._vocab, self._spec = seed, params, vocab, spec
        self._alpha, self._per_bucket = language_alpha, docs_per_bucket
        self._temp_dir, self._method = temp_dir, method

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection, Accounted,
                                                      beam.PCollection]:
        """Returns the examples, ``(language, documents)`` counts, the sampling stage's accounting and
        ``(language, examples)`` counts."""
        counts = (docs | "Language" >> beam.Map(lambda d: d.language)
                  | "CountPerLanguage" >> beam.combiners.Count.PerElement())
        as_counts = beam.pvalue.AsDict(counts)
        create = _CreateInstances(self._seed, self._params, self._vocab, self._spec, self._alpha, self._per_bucket)
        outputs = (accounting.TALLY, accounting.DEAD_LETTER, INSTANCE_COUNTS)
        method = resolve_write_method(self._method, docs.pipeline)
        if method == "shuffle":
            made = (
                docs
                | "KeyByBucket" >> beam.ParDo(_KeyByBucket(self._seed, self._per_bucket), as_counts)
                | "GroupBuckets" >> beam.GroupByKey()
                | "CreateInstances" >> beam.ParDo(create, as_counts).with_outputs(*outputs, main="examples")
            )
        else:
            if not self._temp_dir:
                raise ValueError("CreatePretrainingExamples needs temp_dir to spill documents")
            temp = temp_folder(self._temp_dir, "documents")
            per_bucket = self._per_bucket
            runs = (docs | "SpillDocuments" >> beam.ParDo(_SpillDocuments(temp, self._seed))
                    | "ListRuns" >> beam.combiners.ToList())
            made = (
                runs
                | "BucketIndices" >> beam.FlatMap(lambda _, c: list(range(bucket_count(c, per_bucket))), as_counts)
                | "SpreadBuckets" >> beam.Reshuffle()
                | "CreateInstances" >> beam.ParDo(create, as_counts, beam.pvalue.AsSingleton(runs)).with_outputs(
                    *outputs, main="examples")
            )
            _ = (made[INSTANCE_COUNTS] | "BucketsDone" >> beam.combiners.Count.Globally()
                 | "RemoveTemp" >> beam.Map(lambda _, folder=temp: remove_folder(folder)))
        instances = made[INSTANCE_COUNTS] | "SumInstances" >> beam.CombinePerKey(sum)
        sampled = Accounted(made.examples, made[accounting.TALLY], made[accounting.DEAD_LETTER])
        return made.examples, counts, sampled, instances


# --- translation LM ------------------------------------------------------------------------------

def _example_features(fn: AccountedDoFn, path: str, raw: bytes) -> tuple[Any, Any]:
    """``(features map, None)`` for a ``tf.train.Example``, or ``(None, dead letter to yield)``: a corrupt
    record is bad data, not a reason to stop the job."""
    from tensorflow.core.example import example_pb2

    try:
        return example_pb2.Example.FromString(raw).features.feature, None
    except Exception as e:
        return None, fn.dead_letter(path, DeadLetter.make(fn.stage, "invalid_example", raw[:200], source=path,
                                                          detail=str(e)))


class _ParsePairs(AccountedDoFn):
    """Translation-pair records (``specs.TRANSLATION_PAIRS``) to ``(key, src, tgt, src_lang,
    tgt_lang)``; a record lacking a side is dead-lettered, an empty side filtered."""

    stage = "read_pairs"

    def process(self, item: tuple[str, bytes]) -> Iterator[Any]:
        path, raw = item
        self.took_in(path)
        feats, letter = _example_features(self, path, raw)
        if letter is not None:
            yield letter
            return
        values = {}
        for name in ("src_raw", "tgt_raw", "src_lang", "tgt_lang"):
            v = feats[name].bytes_list.value if name in feats else []
            error = checks.utf8_error(v[0], f"feature {name!r}") if v else None
            if error:
                yield self.dead_letter(path, DeadLetter.make(self.stage, checks.INVALID_UTF8, raw[:200], source=path,
                                                             detail=error))
                return
            values[name] = v[0].decode("utf-8") if v else None
        if values["src_raw"] is None or values["tgt_raw"] is None:
            yield self.dead_letter(path, DeadLetter.make(self.stage, "missing_text_feature", raw[:200], source=path,
                                                         detail="needs bytes features src_raw and tgt_raw"))
            return
        src, tgt = values["src_raw"].strip(), values["tgt_raw"].strip()
        if not src or not tgt:
            self.filtered(path, "empty_side")
            return
        self.out(path)
        yield (path, stable_hash128(src, tgt), src, tgt, values["src_lang"] or UNDETERMINED,
               values["tgt_lang"] or UNDETERMINED)


class _TlmInstances(_BatchingDoFn):
    """Pairs to lists of encoded TLM examples, tokenised in batches; ``dupe_factor`` passes, each
    with its own masks."""

    stage = "tlm_tokenize"

    def __init__(self, tokenizer: BertTokenizer, seed: int, params: InstanceParams, vocab: VocabInfo,
                 spec: specs.FeatureSpec) -> None:
        self._tokenizer, self._seed, self._params, self._vocab, self._spec = tokenizer, seed, params, vocab, spec

    def _size(self, pair: tuple[Any, ...]) -> int:
        return 2

    def _flush(self) -> list[Any]:
        pairs, self._buffer, self._buffered = self._buffer, [], 0
        if not pairs:
            return []
        ids = self._tokenizer.tokenize_batch([t for p in pairs for t in (p[2], p[3])])
        kept = []
        for k, (path, key, _, _, src_lang, tgt_lang) in enumerate(pairs):
            self.took_in(path)
            if not len(ids[2 * k]) or not len(ids[2 * k + 1]):
                self.filtered(path, "no_tokens")
                continue
            self.out(path)
            kept.append((key, f"tlm:{src_lang}-{tgt_lang}", ids[2 * k], ids[2 * k + 1]))
        pool = Pool.from_arrays([(np.concatenate((src, tgt)), np.array([0, len(src), len(src) + len(tgt)]))
                                 for _, _, src, tgt in kept])
        batch = InstanceBatch(self._params, self._vocab, self._spec)
        counts: dict[str, int] = {}
        for (key, pair_langs, _, _), (src, tgt, end) in zip(kept, pool.bounds, strict=True):
            for p in range(self._params.dupe_factor):
                rng = element_rng(self._seed, key, "tlm", p)
                batch.add(pool, [truncate_pair(Pair(src, tgt - src, tgt, end - tgt, False), self._params.max_num_tokens,
                                               rng)], rng)
            counts[pair_langs] = counts.get(pair_langs, 0) + self._params.dupe_factor
        out: list[Any] = [batch.encode(pool)] if kept else []
        out.extend(beam.pvalue.TaggedOutput(INSTANCE_COUNTS, item) for item in sorted(counts.items()))
        return out


class CreateTlmExamples(beam.PTransform):
    """Translation-pair TFRecords to TLM examples: ``[CLS] src [SEP] tgt [SEP]`` masked on both
    sides. Returns the examples, the per-pair instance counts and the accounting of both stages."""

    def __init__(self, paths: Sequence[str], tokenizer: BertTokenizer, seed: int, params: InstanceParams,
                 vocab: VocabInfo, spec: specs.FeatureSpec) -> None:
        super().__init__()
        self._paths, self._tokenizer, self._seed = list(paths), tokenizer, seed
        self._params, self._vocab, self._spec = params, vocab, spec

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection, list[Accounted]]:
        frames = pbegin | "ReadRecords" >> ReadTFRecords(self._paths)
        parsed = accounting.apply_accounted(frames.out, "ParsePairs", _ParsePairs())
        res = parsed.out | "Instances" >> beam.ParDo(
            _TlmInstances(self._tokenizer, self._seed, self._params, self._vocab, self._spec)).with_outputs(
                accounting.TALLY, accounting.DEAD_LETTER, INSTANCE_COUNTS, main="examples")
        made = Accounted(res.examples, res[accounting.TALLY], res[accounting.DEAD_LETTER])
        return res.examples, res[INSTANCE_COUNTS], [frames, parsed, made]
