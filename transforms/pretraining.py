"""Masked-LM pretraining examples as ``create_pretraining_data.py`` makes them, on Beam.

The per-element logic (documents to segment pairs, truncation, masking, TLM pairs, encoding) is in
plain functions that follow the reference algorithm decision for decision, with one generator per
document and pass instead of one global generator; the PTransforms below read documents, tokenise
them in batches, pool them in bounded shuffle buckets (the "random next" documents come from the
same bucket, not from an in-memory list of the whole corpus) and write shuffled, sharded TFRecords.

Output layout (what readers of the data may rely on), under ``OUTPUT_DIR``:

- ``schema.pbtxt`` and ``feature_spec.json``: the feature spec (``specs.pretraining_spec``); build the
  parser from these, see ``specs.read_spec_text``.
- ``params.json``: every parameter the job ran with, the vocabulary's size and special ids, the
  number of records written and the per-language document counts and sampling rates.
- ``pretrain-SSSSS-of-NNNNN.tfrecord`` (``.tfrecord.gz`` with ``--gzip_compress``): the examples,
  ``tf.train.Example`` records, globally shuffled by a seeded hash.
- ``summary.json`` and ``dead_letter/``: the run's accounting (written by ``transforms.runtime``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
import re
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
from transforms import accounting
from transforms.accounting import Accounted, AccountedDoFn, DeadLetter
from transforms.bert_tokenization import CLS, MASK, SEP, BertTokenizer
from transforms.files import ReadLineBatches, lines_from, sort_key
from transforms.seeding import element_rng, stable_hash64, stable_hash128, unit_interval
from transforms.sentences import split_sentences

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
    def from_vocab(cls, vocab: Sequence[str]) -> VocabInfo:
        ids = {t: i for i, t in enumerate(vocab)}
        return cls(len(vocab), ids[CLS], ids[SEP], ids[MASK], tuple(t.startswith("##") for t in vocab))


class SegmentPair(NamedTuple):
    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool


class Instance(NamedTuple):
    """One example before padding: ``[CLS] A [SEP] B [SEP]`` ids (masked unless dynamic)."""

    input_ids: list[int]
    len_a: int  # number of tokens with segment id 0: [CLS] A [SEP]
    masked_lm_positions: list[int]
    masked_lm_ids: list[int]
    is_random_next: bool


# --- instances from documents (reference: create_instances_from_document) ------------------------

def truncate_seq_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int,
                      rng: random.Random) -> tuple[list[int], list[int]]:
    """Trims the longer side (B on ties) one token at a time, from the front or the back with
    probability 1/2 each, until the pair fits; the reference's ``truncate_seq_pair`` without its
    quadratic list deletions."""
    la, lb = len(tokens_a), len(tokens_b)
    fa = ba = fb = bb = 0  # tokens cut from the front/back of A and B
    while la + lb > max_num_tokens:
        front = rng.random() < 0.5
        if la > lb:
            fa, ba = (fa + 1, ba) if front else (fa, ba + 1)
            la -= 1
        else:
            fb, bb = (fb + 1, bb) if front else (fb, bb + 1)
            lb -= 1
    return tokens_a[fa:len(tokens_a) - ba], tokens_b[fb:len(tokens_b) - bb]


def create_segment_pairs(document: Sequence[Sequence[int]], pool: Sequence[Sequence[Sequence[int]]],
                         doc_index: int, params: InstanceParams, rng: random.Random) -> list[SegmentPair]:
    """The A/B pairs of one document and pass, as the reference builds them.

    ``document`` is a list of tokenised sentences; ``pool`` the documents that random next segments
    are drawn from (``pool[doc_index]`` is this document). Sentences accumulate into a chunk until
    the target length (``max_seq_length - 3``, or with ``short_seq_prob`` a random 2..that, drawn
    once per document and pass); A is a random number of the chunk's sentences; B is the rest or,
    when the chunk has one sentence or with probability 1/2, a run from a random other document, in
    which case the unused sentences are put back.
    """
    max_num_tokens = params.max_num_tokens
    target = max_num_tokens
    if rng.random() < params.short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    pairs: list[SegmentPair] = []
    chunk: list[Sequence[int]] = []
    length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = list(itertools.chain.from_iterable(chunk[:a_end]))
            tokens_b: list[int] = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                target_b = target - len(tokens_a)
                other = doc_index
                for _ in range(10):
                    other = rng.randint(0, len(pool) - 1)
                    if other != doc_index:
                        break
                random_doc = pool[other]
                for sentence in itertools.islice(random_doc, rng.randint(0, len(random_doc) - 1), None):
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target_b:
                        break
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = list(itertools.chain.from_iterable(chunk[a_end:]))
            tokens_a, tokens_b = truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            pairs.append(SegmentPair(tokens_a, tokens_b, is_random_next))
            chunk = []
            length = 0
        i += 1
    return pairs


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


def mask_tokens(ids: list[int], special: frozenset[int], params: InstanceParams, vocab: VocabInfo,
                rng: random.Random) -> tuple[list[int], list[int], list[int]]:
    """Masks a copy of ``ids``: ``min(max_predictions_per_seq, max(1, round(len * masked_lm_prob)))``
    predictions (``len`` counts [CLS] and [SEP]); per chosen span 80% [MASK], 10% kept, 10% a random
    id of the whole vocabulary; never a position in ``special``. Returns the masked ids, the sorted
    positions and the original ids there."""
    budget = min(params.max_predictions_per_seq, max(1, round(len(ids) * params.masked_lm_prob)))
    out = list(ids)
    if not params.do_whole_word_mask:
        # Every token is its own word, so the reference's shuffle-and-take is a uniformly random
        # ordered subset of the candidates: draw it directly.
        candidates: list[int] = []
        start = 0
        for sp in sorted(special):
            candidates.extend(range(start, sp))
            start = sp + 1
        candidates.extend(range(start, len(ids)))
        spans = [(candidates[k], candidates[k] + 1)
                 for k in itertools.islice(_random_order(len(candidates), rng), budget)]
    else:
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
    return out, positions, [ids[p] for p in positions]


def make_instance(pair: SegmentPair, params: InstanceParams, vocab: VocabInfo, rng: random.Random) -> Instance:
    """``[CLS] A [SEP] B [SEP]``, masked unless the job masks dynamically."""
    ids = [vocab.cls_id, *pair.tokens_a, vocab.sep_id, *pair.tokens_b, vocab.sep_id]
    len_a = len(pair.tokens_a) + 2
    if params.dynamic_masking:
        return Instance(ids, len_a, [], [], pair.is_random_next)
    special = frozenset((0, len_a - 1, len(ids) - 1))
    masked, positions, labels = mask_tokens(ids, special, params, vocab, rng)
    return Instance(masked, len_a, positions, labels, pair.is_random_next)


def document_instances(document: Sequence[Sequence[int]], pool: Sequence[Sequence[Sequence[int]]],
                       doc_index: int, params: InstanceParams, vocab: VocabInfo,
                       rng: random.Random) -> list[Instance]:
    """All instances of one document and pass, with one generator as the reference uses one."""
    return [make_instance(p, params, vocab, rng)
            for p in create_segment_pairs(document, pool, doc_index, params, rng)]


def tlm_instance(src: list[int], tgt: list[int], params: InstanceParams, vocab: VocabInfo,
                 rng: random.Random) -> Instance:
    """A translation-LM example ``[CLS] src [SEP] tgt [SEP]`` (segments 0 and 1), truncated like a
    sentence pair and masked on both sides; ``next_sentence_labels`` is 0 (a true pair)."""
    a, b = truncate_seq_pair(src, tgt, params.max_num_tokens, rng)
    return make_instance(SegmentPair(a, b, False), params, vocab, rng)


# --- encoding -------------------------------------------------------------------------------------

def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_VARINTS = [_varint_slow(n) for n in range(1 << 14)]


def _varint(n: int) -> bytes:
    return _SMALL_VARINTS[n] if n < 16384 else _varint_slow(n)


def _packed_varints(matrix: np.ndarray) -> list[bytes]:
    """Each row of a non-negative int matrix as protobuf varints, vectorised over the batch."""
    top = int(matrix.max()) if matrix.size else 0
    if top < 0x80:  # every value is one byte: the varints are the values themselves
        width = matrix.shape[1]
        flat = matrix.astype(np.uint8).tobytes()
        return [flat[i:i + width] for i in range(0, len(flat), width)]
    v = matrix.astype(np.uint64)
    if top >= 1 << 35:
        raise ValueError("ids must be below 2**35")
    width = max(1, (top.bit_length() + 6) // 7)  # bytes of the longest varint
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = ((v[..., None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    nbytes = np.ones(v.shape, dtype=np.int64)
    for k in range(1, width):
        nbytes += v >= 1 << (7 * k)
    index = np.arange(width)
    keep = index < nbytes[..., None]
    cont = (index < (nbytes[..., None] - 1)).astype(np.uint8) << 7
    stream = (groups | cont)[keep].tobytes()
    row_ends = np.cumsum(nbytes.sum(axis=1))
    starts = np.concatenate(([0], row_ends[:-1]))
    return [stream[s:e] for s, e in zip(starts.tolist(), row_ends.tolist(), strict=True)]


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


class InstanceEncoder:
    """Serialises instances as ``tf.train.Example`` bytes equal to ``spec.encode`` (features in name
    order, packed values), a batch at a time: the varints are computed with numpy for the whole
    batch, which is several times faster than encoding value by value."""

    def __init__(self, spec: specs.FeatureSpec, params: InstanceParams) -> None:
        self.spec = spec
        self.params = params
        self.ids_name = spec.features[0].name
        self.segs_name = spec.features[1].name
        # Per feature: packed length -> prefix bytes; -1 holds the key field, -2 the type tag.
        self._prefixes: dict[str, dict[int, bytes]] = {
            f.name: {-1: _field(0x0A, f.name.encode("utf-8")), -2: b"\x12" if f.dtype == specs.FLOAT32 else b"\x1a"}
            for f in spec.features}

    def encode(self, instances: Sequence[Instance]) -> list[bytes]:
        if not instances:
            return []
        L, P = self.params.max_seq_length, self.params.max_predictions_per_seq
        B = len(instances)
        ids = np.zeros((B, L), dtype=np.int64)
        segs = np.zeros((B, L), dtype=np.int64)
        lengths = np.empty(B, dtype=np.int64)
        for r, inst in enumerate(instances):
            n = len(inst.input_ids)
            ids[r, :n] = inst.input_ids
            segs[r, inst.len_a:n] = 1
            lengths[r] = n
        columns: dict[str, list[bytes]] = {self.ids_name: _packed_varints(ids), self.segs_name: _packed_varints(segs)}
        if not self.params.dynamic_masking:
            mask = (np.arange(L)[None, :] < lengths[:, None]).astype(np.int64)
            pos = np.zeros((B, P), dtype=np.int64)
            lab = np.zeros((B, P), dtype=np.int64)
            weights = np.zeros((B, P), dtype="<f4")
            nsp = np.zeros((B, 1), dtype=np.int64)
            for r, inst in enumerate(instances):
                k = len(inst.masked_lm_positions)
                pos[r, :k] = inst.masked_lm_positions
                lab[r, :k] = inst.masked_lm_ids
                weights[r, :k] = 1.0
                nsp[r, 0] = int(inst.is_random_next)
            columns["input_mask"] = _packed_varints(mask)
            columns["masked_lm_positions"] = _packed_varints(pos)
            columns["masked_lm_ids"] = _packed_varints(lab)
            columns["next_sentence_labels"] = _packed_varints(nsp)
            columns["masked_lm_weights"] = [row.tobytes() for row in weights]
        layout = [(columns[name], self._prefixes[name]) for name in sorted(columns)]
        out = []
        for r in range(B):
            parts = [b""]
            for values, prefixes in layout:
                packed = values[r]
                prefix = prefixes.get(len(packed))
                if prefix is None:
                    prefix = prefixes[len(packed)] = self._prefix(prefixes, len(packed))
                parts.append(prefix)
                parts.append(packed)
            example = b"".join(parts)
            out.append(b"\x0a" + _varint(len(example)) + example)
        return out

    def _prefix(self, prefixes: dict[int, bytes], n: int) -> bytes:
        """Everything of a feature's map entry before its packed values, which depends only on the
        name, the type and the packed length."""
        key, tag = prefixes[-1], prefixes[-2]
        list_len = 1 + len(_varint(n)) + n
        feature_len = 1 + len(_varint(list_len)) + list_len
        body_len = len(key) + 1 + len(_varint(feature_len)) + feature_len
        return (b"\x0a" + _varint(body_len) + key + b"\x12" + _varint(feature_len) + tag + _varint(list_len)
                + b"\x0a" + _varint(n))


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

    def sentences(self) -> list[list[int]]:
        flat = self.ids.tolist()
        b = self.bounds.tolist()
        return [flat[b[i]:b[i + 1]] for i in range(len(b) - 1)]


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
    """

    def __init__(self, file_pattern: str, max_sentences: int, language: str, **kwargs: Any) -> None:
        super().__init__(file_pattern, **kwargs)
        self._max = max_sentences
        self._language = language

    def read_records(self, file_name: str, range_tracker: Any) -> Iterator[RawDocument]:
        start = range_tracker.start_position()
        sentences: list[str] | None = None  # None: skipping lines of a document another range owns
        offset, separators = 0, 0
        if start == 0:
            if not range_tracker.try_claim(0):
                return
            sentences = []
        with self.open_file(file_name) as f:
            for off, raw in lines_from(f, start):
                text = raw.decode("utf-8", "ignore").strip()
                if text:
                    if sentences is None:
                        continue
                    if not sentences and not separators:
                        offset = off
                    sentences.append(text)
                    if len(sentences) >= self._max:
                        yield RawDocument(file_name, offset, self._language, sentences, separators)
                        sentences, separators = [], 0
                    continue
                if sentences is not None and (sentences or separators):
                    yield RawDocument(file_name, offset, self._language, sentences, separators)
                if not (off == 0 and start == 0) and not range_tracker.try_claim(off):
                    return
                sentences, offset, separators = [], off, 1
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
    blank separator line."""

    stage = "read_text"

    def process(self, doc: RawDocument) -> Iterator[RawDocument]:
        self.took_in(doc.source, len(doc.sentences) + doc.separators)
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
        values = [v.decode("utf-8", "ignore") for v in feats[self._text].bytes_list.value]
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
            batches = pbegin | "ReadJsonLines" >> ReadLineBatches(self._paths)
            return accounting.apply_accounted(batches, "ParseJson",
                                              _ParseJsonDocuments(self._text, self._lang, self._pattern))
        records = (pbegin | "Paths" >> beam.Create(self._paths)
                   | "ReadRecords" >> beam.io.ReadAllFromTFRecord(with_filename=True))
        return accounting.apply_accounted(records, "ParseExamples",
                                          _ParseExampleDocuments(self._text, self._lang, self._pattern))


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


class _AssignPasses(AccountedDoFn):
    """Gives each document its number of passes and its shuffle bucket; a document of an
    over-represented language may get none (filtered as ``language_downsampled``)."""

    stage = "sample_languages"

    def __init__(self, seed: int, alpha: float, dupe_factor: int, docs_per_bucket: int) -> None:
        self._seed, self._alpha, self._dupe, self._per_bucket = seed, alpha, dupe_factor, docs_per_bucket
        self._rates: dict[str, float] | None = None

    def process(self, doc: Document, counts: dict[str, int]) -> Iterator[tuple[int, tuple[Document, int]]]:
        if self._rates is None:
            self._rates = language_pass_rates(counts, self._alpha, self._dupe)
            self._buckets = max(1, round(sum(counts.values()) / self._per_bucket))
        self.took_in(doc.language)
        n = passes_for(self._rates[doc.language], self._seed, doc.key) if self._alpha != 1.0 else self._dupe
        if n == 0:
            self.filtered(doc.language, "language_downsampled")
            return
        self.out(doc.language)
        yield stable_hash64(self._seed, doc.key, "bucket") % self._buckets, (doc, n)


# --- instances -----------------------------------------------------------------------------------

INSTANCE_COUNTS = "instance_counts"


class _CreateInstances(beam.DoFn):
    """One shuffle bucket of documents to encoded examples, every document with every pass.

    The bucket is the pool that random next segments come from; it is sorted by document key so the
    result does not depend on the order the shuffle delivered it in. Each document and pass has its
    own generator (job seed, document key, pass), and each example a sort key from the same, which
    the writer uses as a seeded global shuffle.
    """

    def __init__(self, seed: int, params: InstanceParams, vocab: VocabInfo, spec: specs.FeatureSpec) -> None:
        self._seed, self._params, self._vocab, self._spec = seed, params, vocab, spec

    def setup(self) -> None:
        self._encoder = InstanceEncoder(self._spec, self._params)

    def process(self, bucket: tuple[int, Iterable[tuple[Document, int]]]) -> Iterator[Any]:
        members = sorted(bucket[1], key=lambda m: m[0].key)
        pool = [doc.sentences() for doc, _ in members]
        counts: dict[str, int] = {}
        for index, (doc, passes) in enumerate(members):
            keys: list[bytes] = []
            instances: list[Instance] = []
            for p in range(passes):
                rng = element_rng(self._seed, doc.key, p)
                made = document_instances(pool[index], pool, index, self._params, self._vocab, rng)
                keys.extend(sort_key(self._seed, doc.key, p, i) for i in range(len(made)))
                instances.extend(made)
            counts[doc.language] = counts.get(doc.language, 0) + len(instances)
            yield from zip(keys, self._encoder.encode(instances), strict=True)
        for lang, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(INSTANCE_COUNTS, (lang, n))


class CreatePretrainingExamples(beam.PTransform):
    """Tokenised documents to ``(sort_key, serialized Example)`` pairs, plus per-language counts.

    Documents are counted per language (a small side input), given their passes by
    ``language_pass_rates`` and hashed into ``ceil(N / docs_per_bucket)`` buckets; each bucket,
    grouped, is the bounded pool the random next segments are drawn from.
    """

    def __init__(self, seed: int, params: InstanceParams, vocab: VocabInfo, spec: specs.FeatureSpec,
                 language_alpha: float = 1.0, docs_per_bucket: int = 1000) -> None:
        super().__init__()
        self._seed, self._params, self._vocab, self._spec = seed, params, vocab, spec
        self._alpha, self._per_bucket = language_alpha, docs_per_bucket

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection, Accounted,
                                                      beam.PCollection]:
        """Returns the examples, ``(language, documents)`` counts, the sampling stage's accounting and
        ``(language, examples)`` counts."""
        counts = (docs | "Language" >> beam.Map(lambda d: d.language)
                  | "CountPerLanguage" >> beam.combiners.Count.PerElement())
        sampled = accounting.apply_accounted(
            docs, "AssignPasses", _AssignPasses(self._seed, self._alpha, self._params.dupe_factor, self._per_bucket),
            beam.pvalue.AsDict(counts))
        made = (
            sampled.out
            | "GroupBuckets" >> beam.GroupByKey()
            | "CreateInstances" >> beam.ParDo(
                _CreateInstances(self._seed, self._params, self._vocab, self._spec)).with_outputs(
                    INSTANCE_COUNTS, main="examples")
        )
        instances = made[INSTANCE_COUNTS] | "SumInstances" >> beam.CombinePerKey(sum)
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
            values[name] = v[0].decode("utf-8", "ignore") if v else None
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
    """Pairs to encoded TLM examples, tokenised in batches; ``dupe_factor`` passes, each with its
    own masks."""

    stage = "tlm_tokenize"

    def __init__(self, tokenizer: BertTokenizer, seed: int, params: InstanceParams, vocab: VocabInfo,
                 spec: specs.FeatureSpec) -> None:
        self._tokenizer, self._seed, self._params, self._vocab, self._spec = tokenizer, seed, params, vocab, spec

    def setup(self) -> None:
        self._encoder = InstanceEncoder(self._spec, self._params)

    def _size(self, pair: tuple[Any, ...]) -> int:
        return 2

    def _flush(self) -> list[Any]:
        pairs, self._buffer, self._buffered = self._buffer, [], 0
        if not pairs:
            return []
        ids = self._tokenizer.tokenize_batch([t for p in pairs for t in (p[2], p[3])])
        out: list[Any] = []
        for k, (path, key, _, _, src_lang, tgt_lang) in enumerate(pairs):
            src, tgt = ids[2 * k].tolist(), ids[2 * k + 1].tolist()
            self.took_in(path)
            if not src or not tgt:
                self.filtered(path, "no_tokens")
                continue
            self.out(path)
            instances = [tlm_instance(src, tgt, self._params, self._vocab, element_rng(self._seed, key, "tlm", p))
                         for p in range(self._params.dupe_factor)]
            keys = [sort_key(self._seed, key, "tlm", p) for p in range(len(instances))]
            out.extend(zip(keys, self._encoder.encode(instances), strict=True))
            out.append(beam.pvalue.TaggedOutput(INSTANCE_COUNTS, (f"tlm:{src_lang}-{tgt_lang}", len(instances))))
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
        records = (pbegin | "Paths" >> beam.Create(self._paths)
                   | "ReadRecords" >> beam.io.ReadAllFromTFRecord(with_filename=True))
        parsed = accounting.apply_accounted(records, "ParsePairs", _ParsePairs())
        res = parsed.out | "Instances" >> beam.ParDo(
            _TlmInstances(self._tokenizer, self._seed, self._params, self._vocab, self._spec)).with_outputs(
                accounting.TALLY, accounting.DEAD_LETTER, INSTANCE_COUNTS, main="examples")
        made = Accounted(res.examples, res[accounting.TALLY], res[accounting.DEAD_LETTER])
        return res.examples, res[INSTANCE_COUNTS], [parsed, made]
