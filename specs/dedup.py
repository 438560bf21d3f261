"""Features the dedup job adds to tf.Examples in its ``clusters/`` output.

The dedup job keeps records byte for byte, so its ``deduplicated/`` output has the input's spec; its
``clusters/`` output is every record with three features appended, described here once.
"""

from __future__ import annotations

from collections.abc import Sequence

from specs import BYTES, INT64, Feature, FeatureSpec

CLUSTER_FEATURES = (
    Feature("cluster_id", BYTES, (), "32 hex digits naming the record's duplicate cluster"),
    Feature("cluster_size", INT64, (), "number of input records in the cluster"),
    Feature("is_duplicate", INT64, (), "1 if dedup dropped the record, 0 for the one record kept per cluster"),
)


def text_fields_spec(text_fields: Sequence[str], name: str = "dedup_input") -> FeatureSpec:
    """The part of an input's spec the dedup job relies on, for inputs that came without a spec:
    each text field a scalar bytes feature."""
    return FeatureSpec(name, tuple(Feature(f, BYTES, (), "UTF-8 text compared by dedup") for f in text_fields),
                       {"partial": True})


def with_cluster_features(spec: FeatureSpec) -> FeatureSpec:
    """``spec`` plus the cluster features (a SpecError if the input already has one of them)."""
    return FeatureSpec(f"{spec.name}_clusters", spec.features + CLUSTER_FEATURES, dict(spec.params))
