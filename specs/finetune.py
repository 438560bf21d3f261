"""Sentence-prediction (fine-tuning) records, feature for feature as Model Garden writes them.

``create_finetuning_data.py`` (``classifier_data_lib.file_based_convert_examples_to_features``) writes
``input_ids``, ``input_mask``, ``segment_ids`` (int64 ``[max_seq_length]``), ``label_ids`` (one int64,
or one float for regression), ``is_real_example`` and ``example_id`` (one int64 each), and
``SentencePredictionDataLoader`` reads them under those names (``label_type`` int or float).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specs import FLOAT32, INT64, Feature, FeatureSpec

SPEC_NAME = "sentence_prediction"


def sentence_prediction_spec(max_seq_length: int, regression: bool = False,
                             tokenization: Mapping[str, Any] | None = None) -> FeatureSpec:
    """``[CLS] A [SEP] (B [SEP])`` packed to ``max_seq_length`` with an int (class id) or float
    (regression target) label, as ``create_finetuning_data.py`` writes them. ``tokenization``
    (``specs.vocabulary.Vocabulary.params()``) goes into the params, so readers can check the ids
    against the vocabulary they use."""
    L = max_seq_length
    label = (Feature("label_ids", FLOAT32, (), "regression target") if regression
             else Feature("label_ids", INT64, (), "class id: index in the meta data's label list"))
    feats = (
        Feature("input_ids", INT64, (L,), "WordPiece ids, [CLS] A [SEP] (B [SEP]), zero-padded"),
        Feature("input_mask", INT64, (L,), "1 for real tokens, 0 for padding"),
        Feature("segment_ids", INT64, (L,), "0 for [CLS] A [SEP], 1 for B [SEP], 0 padding"),
        label,
        Feature("is_real_example", INT64, (), "always 1 (the reference pads TPU eval batches with 0s)"),
        Feature("example_id", INT64, (), "row number in the split's input (see docs/finetuning.md)"),
    )
    params = {"max_seq_length": L, "label_type": "float" if regression else "int", **(tokenization or {})}
    return FeatureSpec(SPEC_NAME, feats, params)
