"""In-graph BERT tokenisation: the one definition the trainer, the TF Hub preprocessing export and the
tensorflow-transform pipelines share, so materialised tokens are exactly what the trainer would compute.

Everything here is TensorFlow ops on batches (no Python per element), so it runs inside ``tf.data``, a
``tf.function``, a SavedModel and a tensorflow-transform ``preprocessing_fn`` alike.

API
---
``load_vocab(path) -> list[str]``
    Reads a WordPiece ``vocab.txt`` (one token per line, id = line number) with ``tf.io.gfile``, so
    ``gs://`` paths work.

``SpecialTokens.from_vocab(vocab)``
    ``vocab_size``, ``padding_id`` ([PAD]), ``start_of_sequence_id`` ([CLS]), ``end_of_segment_id``
    ([SEP]), ``mask_id`` ([MASK]), ``unknown_id`` ([UNK]); ``as_dict()`` gives the first five, the keys
    of TF Hub's ``tokenize.get_special_tokens_dict()``.

``BertTokenization(vocab, lower_case, implementation="fast")`` (a ``tf.Module``)
    ``vocab`` is a path or a list of tokens. ``lower_case`` is the casing flag (LaBSE and multilingual
    BERT are cased: ``False``). ``implementation="fast"`` uses ``tensorflow_text.FastBertTokenizer``
    with the vocabulary embedded in the graph (no lookup table, no asset file: the simplest thing to
    trace inside a ``preprocessing_fn``); ``"table"`` uses ``tensorflow_text.BertTokenizer`` over a
    ``StaticHashTable``. Both give the same ids on ordinary text.

    ``tokenize(strings) -> tf.RaggedTensor[int32, (batch, (words), (pieces))]``: TF Hub's
    ``tokenize`` output shape.
    ``tokenize_flat(strings) -> tf.RaggedTensor[int32, (batch, (pieces))]``.
    ``pack(segments, seq_length, out_dtype=tf.int32) -> dict``: see ``pack_inputs``.
    ``__call__(texts_a, texts_b=None, seq_length=128, out_dtype=tf.int32) -> dict``: tokenise and pack
    one or two segments in one call.

``pack_inputs(segments, seq_length, special, out_dtype=tf.int32) -> dict``
    ``segments`` is a list of one or more ragged ``(batch, (pieces))`` or ``(batch, (words), (pieces))``
    tensors. Lays out ``[CLS] a [SEP] (b [SEP])``, trims the segments round-robin to fit (as TF Hub's
    ``bert_pack_inputs`` does) and pads to ``seq_length``: ``input_word_ids``, ``input_mask`` (1 for
    real tokens) and ``input_type_ids`` (segment index), each ``(batch, seq_length)``. TF Hub models
    use int32; pass ``out_dtype=tf.int64`` to materialise ``tf.train.Example`` features.

Example inside a tensorflow-transform ``preprocessing_fn``::

    def preprocessing_fn(inputs):
        tok = BertTokenization(vocab_path, lower_case=False)
        src = tok(inputs["src_raw"], seq_length=64, out_dtype=tf.int64)
        return {f"src_{k}": v for k, v in src.items()}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf
import tensorflow_text as text

DEFAULT_SEQ_LENGTH = 128
IMPLEMENTATIONS = ("fast", "table")


def load_vocab(path: str) -> list[str]:
    """The tokens of a WordPiece vocab file, id = line number (trailing newline and CR stripped)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read().decode("utf-8")
    tokens = data.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return [t.rstrip("\r") for t in tokens]


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """Ids of the special tokens, found by name in the vocabulary (BERT vocabularies differ)."""

    vocab_size: int
    padding_id: int
    start_of_sequence_id: int
    end_of_segment_id: int
    mask_id: int
    unknown_id: int

    @classmethod
    def from_vocab(cls, vocab: Sequence[str]) -> SpecialTokens:
        index = {t: i for i, t in enumerate(vocab)}
        missing = [t for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]") if t not in index]
        if missing:
            raise ValueError(f"vocabulary lacks special tokens {missing}")
        return cls(len(vocab), index["[PAD]"], index["[CLS]"], index["[SEP]"], index["[MASK]"], index["[UNK]"])

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


class BertTokenization(tf.Module):
    """WordPiece tokenisation plus BERT input packing for one vocabulary and casing."""

    def __init__(self, vocab: str | Sequence[str], lower_case: bool, implementation: str = "fast",
                 name: str | None = None) -> None:
        super().__init__(name=name)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"tokenizer implementation {implementation!r} is not one of {IMPLEMENTATIONS}")
        tokens = load_vocab(vocab) if isinstance(vocab, str) else list(vocab)
        self.vocab = tokens
        self.lower_case = lower_case
        self.implementation = implementation
        self.special = SpecialTokens.from_vocab(tokens)
        # A piece continues the word before it iff its vocabulary entry starts with "##"; kept as a
        # constant so word structure can be rebuilt from the flat ids of the fast tokenizer.
        self._is_suffix = tf.constant([t.startswith("##") for t in tokens], tf.bool)
        if implementation == "fast":
            self._tokenizer = text.FastBertTokenizer(vocab=tokens, token_out_type=tf.int64, unknown_token="[UNK]",
                                                     lower_case_nfd_strip_accents=lower_case)
        else:
            init = tf.lookup.KeyValueTensorInitializer(tf.constant(tokens), tf.range(len(tokens), dtype=tf.int64))
            table = tf.lookup.StaticHashTable(init, default_value=self.special.unknown_id)
            self._tokenizer = text.BertTokenizer(table, token_out_type=tf.int64, unknown_token="[UNK]",
                                                 lower_case=lower_case)

    def tokenize(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """``(batch, (words), (pieces))`` int32 ids: the shape of TF Hub's ``tokenize``."""
        strings = tf.convert_to_tensor(strings, tf.string)
        if self.implementation == "table":
            return tf.cast(self._tokenizer.tokenize(strings), tf.int32)
        flat = self._tokenizer.tokenize(strings)
        values = flat.flat_values
        starts = tf.where(tf.logical_not(tf.gather(self._is_suffix, values)))[:, 0]
        words = tf.RaggedTensor.from_row_starts(tf.cast(values, tf.int32), starts, validate=False)
        sentence_of_word = tf.gather(flat.value_rowids(), starts)
        return tf.RaggedTensor.from_value_rowids(words, sentence_of_word, nrows=flat.nrows(), validate=False)

    def tokenize_flat(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """``(batch, (pieces))`` int32 ids."""
        strings = tf.convert_to_tensor(strings, tf.string)
        tokens = self._tokenizer.tokenize(strings)
        return tf.cast(_flat(tokens), tf.int32)

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
