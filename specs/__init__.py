"""The one place where polyembed's record formats are defined.

Every pipeline writes the spec of what it produced next to its output (``schema.pbtxt``, a TF Metadata
schema, plus ``feature_spec.json`` with the spec's name and parameters), and the trainer builds its
``tf.io`` parsing spec from what it finds there. This package imports neither apache_beam nor
tensorflow at import time, so both the Beam workers and the trainer can use it.

A face over its modules, whose names are re-exported here:

- ``feature_spec``: ``Feature``, ``FeatureSpec`` (schema and JSON sidecar, ``require``, encoding),
  ``read_spec_text``, the file names ``SCHEMA_FILE`` and ``SPEC_FILE``;
- ``example_codec``: the hand-written, deterministic ``tf.train.Example`` encoding (``encode_example``,
  and numpy batches for ``FeatureSpec.encode_batch``), and the dtypes ``BYTES``, ``INT64``, ``FLOAT32``;
- ``pretraining``: ``pretraining_spec``; ``pairs``: ``text_pair_spec``, ``TRANSLATION_PAIRS``,
  ``SCORED_TRANSLATION_PAIRS``, ``distillation_pairs_spec``;
- ``errors``: ``SpecError`` (a spec missing, malformed or not what a consumer expects), beside
  ``ConfigError``.

The other formats have modules of their own (``dedup``, ``finetune``, ``translation``), as do the
vocabulary, run folders and the command-line policy.
"""

from specs.errors import SpecError
from specs.example_codec import BYTES, FLOAT32, INT64, encode_example
from specs.feature_spec import SCHEMA_FILE, SPEC_FILE, Feature, FeatureSpec, read_spec_text
from specs.pairs import (
    SCORED_TRANSLATION_PAIRS,
    TEACHER_EMBEDDING,
    TRANSLATION_PAIRS,
    distillation_pairs_spec,
    text_pair_spec,
)
from specs.pretraining import pretraining_spec

__all__ = [
    "BYTES", "FLOAT32", "INT64", "SCHEMA_FILE", "SCORED_TRANSLATION_PAIRS", "SPEC_FILE", "TEACHER_EMBEDDING",
    "TRANSLATION_PAIRS", "Feature", "FeatureSpec", "SpecError", "distillation_pairs_spec", "encode_example",
    "pretraining_spec", "read_spec_text", "text_pair_spec",
]
