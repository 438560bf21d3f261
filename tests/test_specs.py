"""The feature spec: hand encoding equals TensorFlow's, schema files round-trip, mismatches fail."""

import pytest
import tensorflow as tf

import specs


def _tf_example(values: dict, spec: specs.FeatureSpec) -> bytes:
    ex = tf.train.Example()
    for f in spec.features:
        v = values[f.name]
        v = v if isinstance(v, list) else [v]
        feat = ex.features.feature[f.name]
        if f.dtype == specs.BYTES:
            feat.bytes_list.value.extend(x.encode() if isinstance(x, str) else x for x in v)
        elif f.dtype == specs.INT64:
            feat.int64_list.value.extend(v)
        else:
            feat.float_list.value.extend(v)
    return ex.SerializeToString(deterministic=True)


def test_encoding_equals_protobuf_deterministic_serialisation():
    spec = specs.pretraining_spec(6, 2)
    values = {"input_ids": [101, 2, -1, 2**40, 0, 0], "segment_ids": [0, 0, 1, 1, 0, 0],
              "input_mask": [1, 1, 1, 1, 0, 0], "masked_lm_positions": [2, 0], "masked_lm_ids": [7, 0],
              "masked_lm_weights": [1.0, 0.0], "next_sentence_labels": [1]}
    assert spec.encode(values) == _tf_example(values, spec)
    pairs = specs.TRANSLATION_PAIRS
    values = {"src_raw": "Grüße, 世界", "tgt_raw": b"", "src_lang": "deu", "tgt_lang": "eng"}
    encoded = pairs.encode(values)
    assert encoded == _tf_example(values, pairs)
    parsed = tf.io.parse_single_example(encoded, pairs.tf_parsing_spec())
    assert parsed["src_raw"].numpy().decode() == "Grüße, 世界"


def test_schema_round_trip_and_mismatch_messages():
    spec = specs.pretraining_spec(128, 20, v2_names=True)
    back = specs.read_spec_text(spec.to_schema_text(), spec.to_json())
    assert back.name == spec.name and back.params == dict(spec.params)
    assert sorted(back.features, key=lambda f: f.name) == sorted(spec.features, key=lambda f: f.name)
    back.require(spec)
    with pytest.raises(specs.SpecError, match=r"'input_word_ids' .* shape \(128,\), expected \(64,\)"):
        back.require(specs.pretraining_spec(64, 20, v2_names=True), where="gs://b/x")
    with pytest.raises(specs.SpecError, match="'input_ids' is missing"):
        back.require(specs.pretraining_spec(128, 20))


def test_encode_rejects_wrong_lengths_and_unknown_features():
    spec = specs.pretraining_spec(4, 2, dynamic_masking=True)
    with pytest.raises(specs.SpecError, match="3 values, expected 4"):
        spec.encode({"input_ids": [1, 2, 3], "segment_ids": [0, 0, 0, 0]})
    with pytest.raises(specs.SpecError, match="not in spec"):
        spec.encode({"input_ids": [1] * 4, "segment_ids": [0] * 4, "extra": [1]})
