"""BERT masked-LM pretraining records, as ``create_pretraining_data.py`` writes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specs.example_codec import FLOAT32, INT64
from specs.feature_spec import Feature, FeatureSpec


def pretraining_spec(max_seq_length: int, max_predictions_per_seq: int, *, v2_names: bool = False,
                     dynamic_masking: bool = False, tokenization: Mapping[str, Any] | None = None) -> FeatureSpec:
    """BERT masked-LM pretraining records, feature for feature as ``create_pretraining_data.py``
    writes them (``input_word_ids``/``input_type_ids`` with v2 names). With dynamic masking only the
    unmasked ids and segments are stored and the trainer masks on the fly. ``tokenization``
    (``specs.vocabulary.Vocabulary.params()``: fingerprint, size, casing, word limit, special ids)
    goes into the params, so readers can check they use the vocabulary the ids came from."""
    ids = "input_word_ids" if v2_names else "input_ids"
    segs = "input_type_ids" if v2_names else "segment_ids"
    L, P = max_seq_length, max_predictions_per_seq
    feats = [
        Feature(ids, INT64, (L,), "WordPiece ids, [CLS] A [SEP] B [SEP], zero-padded"),
        Feature(segs, INT64, (L,), "0 for [CLS] A [SEP], 1 for B [SEP], 0 padding"),
    ]
    params: dict[str, Any] = {"max_seq_length": L, "v2_names": v2_names, "dynamic_masking": dynamic_masking}
    if not dynamic_masking:
        feats += [
            Feature("input_mask", INT64, (L,), "1 for real tokens, 0 for padding"),
            Feature("masked_lm_positions", INT64, (P,), "positions of predicted tokens, sorted, zero-padded"),
            Feature("masked_lm_ids", INT64, (P,), "original ids at the masked positions"),
            Feature("masked_lm_weights", FLOAT32, (P,), "1.0 for real predictions, 0.0 padding"),
            Feature("next_sentence_labels", INT64, (1,), "1 when segment B is a random next segment"),
        ]
        params["max_predictions_per_seq"] = P
    params.update(tokenization or {})
    return FeatureSpec("bert_pretraining", tuple(feats), params)
