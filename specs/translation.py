"""The tokenised translation pairs that ``--materialize_tokens`` writes beside the raw ones.

Each side is packed as one BERT input (``[CLS] text [SEP]``, padded to ``seq_length``) by the
trainer's own tokenisation (``trainer.text.tokenization``) inside a tensorflow-transform graph, so the
names are the TF Hub/Model Garden encoder inputs with a ``src_``/``tgt_`` prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specs import INT64, Feature, FeatureSpec

SIDES = ("src", "tgt")
PACKED = (
    ("input_word_ids", "WordPiece ids, [CLS] text [SEP], zero-padded"),
    ("input_mask", "1 for real tokens, 0 for padding"),
    ("input_type_ids", "segment ids (all 0: one segment per side)"),
)


def tokenized_pairs_spec(seq_length: int, tokenization: Mapping[str, Any] | None = None) -> FeatureSpec:
    """``src_input_word_ids``, ``src_input_mask``, ``src_input_type_ids`` and the same for ``tgt_``;
    ``tokenization`` (``Vocabulary.params()``) is recorded in the params."""
    feats = tuple(Feature(f"{side}_{name}", INT64, (seq_length,), f"{side} side: {doc}")
                  for side in SIDES for name, doc in PACKED)
    return FeatureSpec("tokenized_translation_pairs", feats, {"seq_length": seq_length, **(tokenization or {})})
