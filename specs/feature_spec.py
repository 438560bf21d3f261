"""What one kind of record holds: ``Feature`` and ``FeatureSpec``, written next to the data as a TF
Metadata schema (``schema.pbtxt``) and a JSON sidecar (``feature_spec.json``), read back by
``read_spec_text``, checked by consumers (``require``) and used to encode records
(``specs.example_codec``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from specs.errors import SpecError
from specs.example_codec import BYTES, DTYPES, FLOAT32, INT64, encode_columns, encode_example

SCHEMA_FILE = "schema.pbtxt"
SPEC_FILE = "feature_spec.json"


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature of a ``tf.train.Example``.

    ``shape`` is ``()`` for a scalar, ``(n,)`` for a fixed-length vector, or ``None`` for a
    variable-length list.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] | None = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise SpecError(f"feature {self.name!r}: dtype {self.dtype!r} is not one of {DTYPES}")

    @property
    def length(self) -> int | None:
        """Number of values a record carries, or None when variable."""
        if self.shape is None:
            return None
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """A named, versioned set of features: what one kind of record holds."""

    name: str
    features: tuple[Feature, ...]
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise SpecError(f"spec {self.name!r}: duplicate feature names in {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    # --- TF Metadata schema -------------------------------------------------------------------
    def to_schema_text(self) -> str:
        """The spec as a TF Metadata ``Schema`` in protobuf text format (what TFX tools read)."""
        lines = []
        kind = {BYTES: "BYTES", INT64: "INT", FLOAT32: "FLOAT"}
        for f in sorted(self.features, key=lambda f: f.name):
            lines.append("feature {")
            lines.append(f'  name: "{f.name}"')
            lines.append(f"  type: {kind[f.dtype]}")
            if f.shape is not None:
                lines.append("  presence {\n    min_fraction: 1.0\n  }")
                lines.append("  shape {")
                for d in f.shape:
                    lines.append(f"    dim {{\n      size: {d}\n    }}")
                lines.append("  }")
            if f.description:
                lines.append(f"  annotation {{\n    comment: {json.dumps(f.description)}\n  }}")
            lines.append("}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_schema_text(cls, text: str, name: str = "", params: Mapping[str, Any] | None = None) -> FeatureSpec:
        """Parses a TF Metadata schema (text format) back into a spec."""
        from google.protobuf import text_format
        from tensorflow_metadata.proto.v0 import schema_pb2

        schema = schema_pb2.Schema()
        try:
            text_format.Parse(text, schema)
        except text_format.ParseError as e:
            raise SpecError(f"malformed TF Metadata schema: {e}") from None
        kinds = {schema_pb2.BYTES: BYTES, schema_pb2.INT: INT64, schema_pb2.FLOAT: FLOAT32}
        features = []
        for f in schema.feature:
            if f.type not in kinds:
                raise SpecError(f"feature {f.name!r}: unsupported schema type {f.type}")
            shape = tuple(d.size for d in f.shape.dim) if f.HasField("shape") else None
            comment = f.annotation.comment[0] if f.annotation.comment else ""
            features.append(Feature(f.name, kinds[f.type], shape, comment))
        return cls(name, tuple(features), dict(params or {}))

    # --- JSON sidecar -------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "params": dict(self.params),
                "features": [
                    {"name": f.name, "dtype": f.dtype, "shape": None if f.shape is None else list(f.shape),
                     "description": f.description}
                    for f in self.features
                ],
            },
            indent=2,
            sort_keys=True,
        ) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        d = json.loads(text)
        return cls(
            d["name"],
            tuple(Feature(f["name"], f["dtype"], None if f["shape"] is None else tuple(f["shape"]),
                          f.get("description", "")) for f in d["features"]),
            d.get("params", {}),
        )

    # --- consumers ----------------------------------------------------------------------------
    def require(self, expected: FeatureSpec, where: str = "") -> None:
        """Raises SpecError with one line naming the first feature that ``expected`` needs and this
        spec does not provide as expected (missing, other dtype, other shape)."""
        at = f" in {where}" if where else ""
        for f in expected.features:
            try:
                found = self[f.name]
            except KeyError:
                raise SpecError(f"feature {f.name!r} is missing{at} (found: {', '.join(self.names)})") from None
            if found.dtype != f.dtype:
                raise SpecError(f"feature {f.name!r}{at} is {found.dtype}, expected {f.dtype}")
            if found.shape != f.shape:
                raise SpecError(f"feature {f.name!r}{at} has shape {found.shape}, expected {f.shape}")

    def tf_parsing_spec(self) -> dict[str, Any]:
        """``{name: tf.io.FixedLenFeature | tf.io.VarLenFeature}`` for ``tf.io.parse_example``."""
        import tensorflow as tf

        dtypes = {BYTES: tf.string, INT64: tf.int64, FLOAT32: tf.float32}
        out: dict[str, Any] = {}
        for f in self.features:
            if f.shape is None:
                out[f.name] = tf.io.VarLenFeature(dtypes[f.dtype])
            else:
                out[f.name] = tf.io.FixedLenFeature(list(f.shape), dtypes[f.dtype])
        return out

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """Serialises one record; see ``encode_example``. Checks names and fixed lengths."""
        for f in self.features:
            if f.name not in values:
                raise SpecError(f"record lacks feature {f.name!r} of spec {self.name!r}")
            n = f.length
            if n is not None:
                v = values[f.name]
                got = 1 if isinstance(v, (bytes, str, int, float)) else len(v)
                if got != n:
                    raise SpecError(f"feature {f.name!r} of spec {self.name!r} has {got} values, expected {n}")
        if len(values) != len(self.features):
            extra = sorted(set(values) - set(self.names))
            raise SpecError(f"record has features not in spec {self.name!r}: {extra}")
        return encode_example({f.name: (f.dtype, values[f.name]) for f in self.features})

    def encode_batch(self, columns: Mapping[str, Any]) -> list[bytes]:
        """Serialises a batch of records given as one array per feature (a row per record), each
        equal to ``encode`` of its row, with numpy over the whole batch instead of Python per value.

        For specs whose features are all fixed-length int64 or float32: pretraining examples are
        made at tens of thousands per second per core, and value by value the encoding would cost
        more than making them. Values are cast to the feature's dtype.
        """
        return encode_columns(self.name, self.features, columns)


def read_spec_text(schema_text: str, spec_json: str | None = None) -> FeatureSpec:
    """Rebuilds a spec from the files a pipeline wrote: the schema is authoritative, the JSON
    sidecar (when present) supplies the name and parameters."""
    name, params = "", {}
    if spec_json:
        side = FeatureSpec.from_json(spec_json)
        name, params = side.name, dict(side.params)
    return FeatureSpec.from_schema_text(schema_text, name, params)

