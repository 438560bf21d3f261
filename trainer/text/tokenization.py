"""In-graph BERT tokenisation: the one definition the trainer, the TF Hub preprocessing export and the
tensorflow-transform pipelines share, giving the reference ``FullTokenizer``'s ids.

Everything here is TensorFlow ops on batches (no Python per element), so it runs inside ``tf.data``, a
``tf.function``, a SavedModel and a tensorflow-transform ``preprocessing_fn`` alike. The character
rules come from ``specs.vocabulary`` (Python's ``unicodedata``, the tables the reference uses), from
which the Beam engine (``transforms.text.bert_tokenization``) is built too.

Two paths, one result:

- the fast path (most lines): delete NUL, U+FFFD, control and format characters (zero-width
  (non-)joiners included) with a regular expression over Python's classes; uncased: TensorFlow's
  ``lower`` and ``NFD`` (ICU), then drop Python's Mn; then ``FastWordpieceTokenizer`` splits on
  whitespace, punctuation and CJK ideographs (its sets equal Python's on every code point Python
  assigns; measured) and runs WordPiece with a byte limit equal to the character limit;
- the exact path, for lines the fast path could get wrong: a code point Python leaves unassigned or
  that ICU treats otherwise (``_icu_skew_pattern``, measured on every code point when built), or a
  word over the byte limit (it may still be within the reference's character limit). Code points are
  classified with ``specs.vocabulary.char_table()``; uncased lines go through ``lower_case_map()`` in
  code-point space (with ``str.lower``'s final-sigma rule); words are split by regular expressions
  over Python's classes, a word over ``max_chars_per_word`` characters becomes ``[UNK]``, the others
  go through WordPiece over a lookup table.

API
---
``load_vocab(path, lower_case) -> specs.vocabulary.Vocabulary`` (``tf.io.gfile``: ``gs://`` works).

``SpecialTokens.from_vocabulary(vocab)``: ``vocab_size``, ``padding_id``, ``start_of_sequence_id``,
``end_of_segment_id``, ``mask_id``, ``unknown_id``; ``as_dict()`` gives the first five, the keys of TF
Hub's ``tokenize.get_special_tokens_dict()``.

``BertTokenization(vocab, lower_case=None, implementation="fast")`` (a ``tf.Module``)
    ``vocab`` is a ``Vocabulary`` (casing included), or a path or token list plus ``lower_case``.
    ``implementation="table"`` always takes the exact path (no compiled WordPiece model: for very
    large vocabularies); ``"fast"`` takes it only where needed. Both give the same ids.
    ``tokenize(strings) -> tf.RaggedTensor[int32, (batch, (words), (pieces))]`` (TF Hub's shape);
    ``tokenize_flat(strings) -> (batch, (pieces))``; ``pack(segments, seq_length, out_dtype)``;
    ``__call__(texts_a, texts_b=None, seq_length=128, out_dtype=tf.int32)`` tokenises and packs.

``pack_inputs(segments, seq_length, special, out_dtype=tf.int32) -> dict``
    ``[CLS] a [SEP] (b [SEP])`` trimmed round-robin (as TF Hub's ``bert_pack_inputs``) and padded:
    ``input_word_ids``, ``input_mask``, ``input_type_ids``, each ``(batch, seq_length)``.
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as text

from specs import vocabulary as sv

DEFAULT_SEQ_LENGTH = 128
IMPLEMENTATIONS = ("fast", "table")


def load_vocab(path: str, lower_case: bool) -> sv.Vocabulary:
    """The vocabulary at ``path`` (local or ``gs://``, read with ``tf.io.gfile``)."""

    def read(p: str) -> bytes:
        with tf.io.gfile.GFile(p, "rb") as f:
            return f.read()

    return sv.Vocabulary.load(path, lower_case, reader=read)


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """The special-token ids of a ``Vocabulary`` under TF Hub's names, as the graph uses them."""

    vocab_size: int
    padding_id: int
    start_of_sequence_id: int
    end_of_segment_id: int
    mask_id: int
    unknown_id: int

    @classmethod
    def from_vocabulary(cls, vocab: sv.Vocabulary) -> SpecialTokens:
        return cls(vocab.size, vocab.pad_id, vocab.cls_id, vocab.sep_id, vocab.mask_id, vocab.unk_id)

    def as_dict(self) -> dict[str, int]:
        """The keys TF Hub's ``tokenize.get_special_tokens_dict()`` returns."""
        return {"vocab_size": self.vocab_size, "padding_id": self.padding_id,
                "start_of_sequence_id": self.start_of_sequence_id, "end_of_segment_id": self.end_of_segment_id,
                "mask_id": self.mask_id}


def _flat(segment: tf.RaggedTensor) -> tf.RaggedTensor:
    """``(batch, (pieces))`` from either Hub's word-structured or a flat ragged tensor."""
    return segment.merge_dims(-2, -1) if segment.ragged_rank > 1 else segment


def pack_inputs(segments: Sequence[tf.RaggedTensor], seq_length: int | tf.Tensor, special: SpecialTokens,
                out_dtype: tf.DType = tf.int32) -> dict[str, tf.Tensor]:
    """``[CLS] a [SEP] (b [SEP] ...)`` padded to ``seq_length``; segments trimmed round-robin so each
    keeps as many tokens as the others where possible (what TF Hub's ``bert_pack_inputs`` does)."""
    if not segments:
        raise ValueError("pack_inputs needs at least one segment")
    flat = [tf.cast(_flat(s), tf.int64) for s in segments]
    budget = seq_length - (len(flat) + 1)
    trimmed = text.RoundRobinTrimmer(max_seq_length=budget).trim(flat)
    ids, type_ids = text.combine_segments(trimmed, start_of_sequence_id=special.start_of_sequence_id,
                                          end_of_segment_id=special.end_of_segment_id)
    word_ids, mask = text.pad_model_inputs(ids, max_seq_length=seq_length, pad_value=special.padding_id)
    type_ids, _ = text.pad_model_inputs(type_ids, max_seq_length=seq_length, pad_value=0)
    return {"input_word_ids": tf.cast(word_ids, out_dtype), "input_mask": tf.cast(mask, out_dtype),
            "input_type_ids": tf.cast(type_ids, out_dtype)}


def _lower_case_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``lower_case_map()`` as sorted keys and a ragged table: (keys, starts, lengths, values)."""
    mapping = sorted(sv.lower_case_map().items())
    keys = np.array([k for k, _ in mapping], np.int32)
    lengths = np.array([len(m) for _, m in mapping], np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
    values = np.array([ord(c) for _, m in mapping for c in m], np.int32)
    return keys, starts, lengths, values


@functools.cache
def _mn_pattern() -> str:
    """Python's non-spacing marks (what the reference's accent stripping drops), as an RE2 class body."""
    return sv.ranges_pattern(cp for cp, cat in enumerate(sv.categories()) if cat == "Mn")


@functools.cache
def _icu_skew_pattern() -> str:
    """The code points where the uncased fast path (TensorFlow's ICU ``lower`` and ``NFD``, then
    dropping Python's Mn) would differ from ``lower_case_map()``, or where ICU's final-sigma context
    sets differ from Python's; control characters; and non-Mn characters that NFD reorders. Measured
    here on every assigned code point, so it follows whichever ICU TensorFlow ships."""
    table = sv.char_table()
    lower_map = sv.lower_case_map()
    cats = sv.categories()
    cps = [cp for cp, cat in enumerate(cats) if cat not in ("Cn", "Co", "Cs", "Cc") and cp != sv.CAPITAL_SIGMA]
    chars = [chr(cp) for cp in cps]

    with tf.init_scope():  # eagerly, also when first built while tracing (a preprocessing_fn)
        skew = _measure_icu_skew(cps, chars, table, lower_map)
    # Control characters: deleted only after lower-casing on the fast path, they would end a sigma's
    # context (and ICU's lower() stops at NUL).
    controls = [cp for cp, cat in enumerate(cats) if cat == "Cc" and chr(cp) not in "\t\n\r"]
    return sv.ranges_pattern(sorted(skew + controls))


def _measure_icu_skew(cps: list[int], chars: list[str], table: bytes, lower_map: dict[int, str]) -> list[int]:
    def lower(texts: list[str]) -> tf.Tensor:
        # One string per test, "\n"-separated ("\n" is neither cased nor case-ignorable): a few
        # large op calls instead of one per code point.
        return tf.strings.lower(tf.constant("\n".join(texts)), encoding="utf-8")

    def split(joined: tf.Tensor) -> list[bytes]:
        return joined.numpy().split(b"\n")

    strip = split(tf.strings.regex_replace(text.normalize_utf8(lower(chars), "NFD"),
                                           f"[{sv.class_pattern(sv.DELETE)}{_mn_pattern()}]+", ""))
    after = split(lower([c + "\u03a3" for c in chars]))
    between = split(lower(["\u0391" + c + "\u03a3" for c in chars]))
    final = "\u03c2".encode()
    skew = []
    for cp, ch, got, a, b in zip(cps, chars, strip, after, between, strict=True):
        flags = table[cp]
        cls = flags & sv.CLASS_MASK
        want = "" if cls == sv.DELETE else lower_map.get(cp, ch)
        cased = a.endswith(final)
        ignorable = not cased and b.endswith(final)
        if (got.decode() != want or cased != bool(flags & sv.CASED) or ignorable != bool(flags & sv.CASE_IGNORABLE)
                or (unicodedata.combining(ch) and unicodedata.category(ch) != "Mn")):
            skew.append(cp)
    return skew


class BertTokenization(tf.Module):
    """WordPiece tokenisation plus BERT input packing for one ``Vocabulary`` (casing included)."""

    def __init__(self, vocab: sv.Vocabulary | str | Sequence[str], lower_case: bool | None = None,
                 implementation: str = "fast", name: str | None = None) -> None:
        """``vocab``: a ``Vocabulary``, or a path / token list plus ``lower_case``."""
        super().__init__(name=name)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"tokenizer implementation {implementation!r} is not one of {IMPLEMENTATIONS}")
        if not isinstance(vocab, sv.Vocabulary):
            if lower_case is None:
                raise ValueError("BertTokenization of a vocabulary path or token list needs lower_case")
            vocab = (load_vocab(vocab, lower_case) if isinstance(vocab, str)
                     else sv.Vocabulary(tuple(vocab), lower_case))
        elif lower_case is not None and lower_case != vocab.lower_case:
            raise ValueError(f"lower_case={lower_case} contradicts the vocabulary's {vocab.lower_case}")
        self.vocab = vocab
        self.lower_case = vocab.lower_case
        self.implementation = implementation
        self.special = SpecialTokens.from_vocabulary(vocab)
        self._chars = tf.constant(np.frombuffer(sv.char_table(), np.uint8))
        self._delete_pattern = f"[{sv.class_pattern(sv.DELETE)}]+"
        alone = f"[{sv.class_pattern(sv.PUNCT)}{sv.class_pattern(sv.CJK)}]"
        self._split_pattern = f"[{sv.class_pattern(sv.SPACE)}]+|{alone}"
        self._keep_pattern = alone
        if vocab.lower_case:
            keys, starts, lengths, values = _lower_case_tables()
            self._map_keys, self._map_starts = tf.constant(keys), tf.constant(starts)
            self._map_lengths, self._map_values = tf.constant(lengths), tf.constant(values)
        names = sv.vocab_names(vocab.tokens)
        limit = vocab.max_chars_per_word
        # The exact path: words over the limit are replaced by "[UNK]" before WordPiece, so the
        # engine's byte limit only has to let every word within it through (4 bytes a character).
        init = tf.lookup.KeyValueTensorInitializer(tf.constant(names), tf.range(len(names), dtype=tf.int64))
        # Anonymous: a named table gets a random "hash_table_<uuid4>" shared name, which made every
        # saved graph holding it (the preprocessing export, translation_pairs' transform_fn) differ
        # from run to run although it computes the same ids.
        table = tf.lookup.StaticHashTable(init, default_value=vocab.unk_id, experimental_is_anonymous=True)
        self._word_wordpiece = text.WordpieceTokenizer(table, suffix_indicator="##", max_bytes_per_word=4 * limit,
                                                       token_out_type=tf.int64, unknown_token=sv.UNK)
        self._is_suffix = tf.constant([t.startswith("##") for t in names], tf.bool)
        if implementation == "fast":
            # The fast path splits lines itself; its punctuation, whitespace and CJK sets equal the
            # reference's on every code point Python assigns (lines with others take the exact path).
            # Its limit counts bytes: a word of at most `limit` bytes has at most `limit` characters,
            # and a longer word ([UNK] here) sends its line to the exact path.
            self._line_wordpiece = text.FastWordpieceTokenizer(
                vocab=names, suffix_indicator="##", max_bytes_per_word=limit, token_out_type=tf.int64,
                unknown_token=sv.UNK, no_pretokenization=False)
            strip = sv.class_pattern(sv.DELETE) + (_mn_pattern() if vocab.lower_case else "")
            self._strip_pattern = f"[{strip}]+"
            exact_only = sv.unassigned_pattern() + (_icu_skew_pattern() if vocab.lower_case else "")
            self._exact_pattern = f".*[{exact_only}].*"

    def _final_sigmas(self, cps: tf.Tensor, rows: tf.Tensor, flags: tf.Tensor) -> tf.Tensor:
        """``cps`` with each capital sigma that ``str.lower`` makes final (a cased letter before it and
        none after it, skipping case-ignorable characters, within its line) replaced by ``ς``."""
        sigma = tf.where(tf.equal(cps, sv.CAPITAL_SIGMA))[:, 0]
        significant = tf.equal(flags & sv.CASE_IGNORABLE, 0)
        where_significant = tf.where(significant)[:, 0]
        count = tf.cumsum(tf.cast(significant, tf.int64))  # a sigma is significant itself
        n = tf.shape(where_significant, out_type=tf.int64)[0]

        def cased_at(k: tf.Tensor) -> tf.Tensor:
            ok = (k >= 0) & (k < n)
            pos = tf.gather(where_significant, tf.clip_by_value(k, 0, tf.maximum(n - 1, 0)))
            same_line = tf.equal(tf.gather(rows, pos), tf.gather(rows, sigma))
            return ok & same_line & tf.not_equal(tf.gather(flags, pos) & sv.CASED, 0)

        k = tf.gather(count, sigma) - 1
        final = cased_at(k - 1) & tf.logical_not(cased_at(k + 1))
        positions = tf.boolean_mask(sigma, final)[:, None]
        return tf.tensor_scatter_nd_update(cps, positions, tf.fill(tf.shape(positions)[:1], sv.FINAL_SIGMA))

    def _lower_case(self, cps: tf.Tensor, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Every code point through ``lower_case_map()`` (one code point to zero or more)."""
        keys = self._map_keys
        pos = tf.minimum(tf.searchsorted(keys, cps), tf.size(keys) - 1)
        hit = tf.equal(tf.gather(keys, pos), cps)
        lengths = tf.where(hit, tf.gather(self._map_lengths, pos), 1)
        source = tf.repeat(tf.range(tf.size(cps)), lengths)
        first = tf.cumsum(lengths, exclusive=True)
        within = tf.range(tf.reduce_sum(lengths)) - tf.gather(first, source)
        # Code points without a mapping read any valid index (their value is not used).
        index = tf.minimum(tf.gather(tf.gather(self._map_starts, pos), source) + within, tf.size(self._map_values) - 1)
        mapped = tf.gather(self._map_values, index)
        out = tf.where(tf.gather(hit, source), mapped, tf.gather(cps, source))
        return out, tf.gather(rows, source)

    def _lower_case_lines(self, strings: tf.Tensor) -> tf.Tensor:
        """Uncased vocabularies: each line cleaned, lower-cased, NFD'd and stripped of Mn, in code
        point space (``lower_case_map``), so Python's Unicode tables decide, not ICU's."""
        decoded = tf.strings.unicode_decode(strings, "UTF-8", errors="replace", replacement_char=0xFFFD)
        cps, rows = decoded.flat_values, decoded.value_rowids()
        flags = tf.cast(tf.gather(self._chars, cps), tf.int32)
        keep = tf.where(tf.not_equal(flags & sv.CLASS_MASK, sv.DELETE))[:, 0]
        cps, rows, flags = tf.gather(cps, keep), tf.gather(rows, keep), tf.gather(flags, keep)
        cps = self._final_sigmas(cps, rows, flags)
        cps, rows = self._lower_case(cps, rows)
        lines = tf.RaggedTensor.from_value_rowids(cps, rows, nrows=decoded.nrows(), validate=False)
        return tf.strings.unicode_encode(lines, "UTF-8")

    def _words(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """``(batch, (words))``: the reference's words of each string, a word over the limit as ``[UNK]``."""
        if self.lower_case:
            strings = self._lower_case_lines(strings)
        else:
            strings = tf.strings.regex_replace(strings, self._delete_pattern, "")
        words = text.regex_split(strings, self._split_pattern, self._keep_pattern)
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > self.vocab.max_chars_per_word
        return words.with_flat_values(tf.where(too_long, sv.UNK, words.flat_values))

    def _exact(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """``(batch, (words), (pieces))`` by the exact path: code points classified with Python's
        tables, words split by regular expressions over those classes, WordPiece per word."""
        words = self._words(strings)
        return words.with_flat_values(self._word_wordpiece.tokenize(words.flat_values))

    def _fast(self, strings: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor]:
        """``(batch, (pieces))`` by the fast path, and which lines it may get wrong: lines with a code
        point Python leaves unassigned or that ICU (inside TensorFlow's case and normalisation ops)
        treats otherwise, and lines with a word over the byte limit."""
        exact = tf.strings.regex_full_match(strings, self._exact_pattern)
        if self.lower_case:
            strings = text.normalize_utf8(tf.strings.lower(strings, encoding="utf-8"), "NFD")
        strings = tf.strings.regex_replace(strings, self._strip_pattern, "")
        pieces, starts, ends = self._line_wordpiece.tokenize_with_offsets(strings)
        # Flat values and a segment reduction: ragged elementwise ops and reduce_any cost as much as
        # the WordPiece op itself.
        too_long = (tf.equal(pieces.flat_values, self.special.unknown_id)
                    & (ends.flat_values - starts.flat_values > self.vocab.max_chars_per_word))
        too_long = tf.math.unsorted_segment_max(tf.cast(too_long, tf.int32), pieces.value_rowids(), pieces.nrows())
        return pieces, exact | (too_long > 0)

    def tokenize_flat(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """``(batch, (pieces))`` int32 ids."""
        strings = tf.convert_to_tensor(strings, tf.string)
        if self.implementation == "table":
            return tf.cast(self._exact(strings).merge_dims(-2, -1), tf.int32)
        fast, needs_exact = self._fast(strings)

        def with_exact_rows() -> tf.RaggedTensor:
            # Each line from the path that is right for it: the exact rows appended, picked by index.
            exact = self._exact(tf.boolean_mask(strings, needs_exact)).merge_dims(-2, -1)
            n = tf.shape(needs_exact, out_type=tf.int64)[0]
            pick = tf.where(needs_exact, n + tf.cumsum(tf.cast(needs_exact, tf.int64), exclusive=True),
                            tf.range(n, dtype=tf.int64))
            return tf.gather(tf.concat([fast, exact], axis=0), pick)

        return tf.cast(tf.cond(tf.reduce_any(needs_exact), with_exact_rows, lambda: fast), tf.int32)

    def tokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """``(batch, (words), (pieces))`` int32 ids: the shape of TF Hub's ``tokenize``. A piece
        continues the word before it iff its vocabulary entry starts with ``##`` (the first piece of
        a word never does: words hold no ``#``)."""
        flat = self.tokenize_flat(strings)
        values = flat.flat_values
        word_starts = tf.where(tf.logical_not(tf.gather(self._is_suffix, values)))[:, 0]
        words = tf.RaggedTensor.from_row_starts(values, word_starts, validate=False)
        line_of_word = tf.gather(flat.value_rowids(), word_starts)
        return tf.RaggedTensor.from_value_rowids(words, line_of_word, nrows=flat.nrows(), validate=False)

    def pack(self, segments: Sequence[tf.RaggedTensor], seq_length: int | tf.Tensor = DEFAULT_SEQ_LENGTH,
             out_dtype: tf.DType = tf.int32) -> dict[str, tf.Tensor]:
        return pack_inputs(segments, seq_length, self.special, out_dtype)

    def __call__(self, texts_a: tf.Tensor, texts_b: tf.Tensor | None = None,
                 seq_length: int | tf.Tensor = DEFAULT_SEQ_LENGTH,
                 out_dtype: tf.DType = tf.int32) -> dict[str, tf.Tensor]:
        """Tokenises one or two batches of strings and packs them as one BERT input each row."""
        segments = [self.tokenize_flat(texts_a)]
        if texts_b is not None:
            segments.append(self.tokenize_flat(texts_b))
        return self.pack(segments, seq_length, out_dtype)


def trim_to_longest(packed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """A packed batch (``input_word_ids``, ``input_mask``, ``input_type_ids``) cut to its longest real
    sequence: the positions after it are padding in every row, and a masked encoder gives the same outputs
    without them (sentence-transformers' dynamic padding). Not for TPU, which compiles one static shape."""
    length = tf.reduce_max(tf.reduce_sum(tf.cast(packed["input_mask"], tf.int32), axis=1))
    return {name: value[:, :length] for name, value in packed.items()}
