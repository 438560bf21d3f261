"""The one place where polyembed's record formats are defined.

Every pipeline writes the spec of what it produced next to its output (``schema.pbtxt``, a TF Metadata
schema, plus ``feature_spec.json`` with the spec's name and parameters), and the trainer builds its
``tf.io`` parsing spec from what it finds there. This module imports neither apache_beam nor
tensorflow at import time, so both the Beam workers and the trainer can use it.

Examples are encoded here by hand (``encode_example``) rather than through the ``tf.train.Example``
protobuf class: it avoids importing TensorFlow into every Beam worker just to build messages, it is
several times faster than filling a message per record, and it is deterministic by construction
(features in name order, the same bytes as protobuf's ``SerializeToString(deterministic=True)``).
``FeatureSpec.encode_batch`` writes the same bytes for a whole batch of fixed-length numeric records
with numpy.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import struct
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

SCHEMA_FILE = "schema.pbtxt"
SPEC_FILE = "feature_spec.json"

BYTES = "bytes"
INT64 = "int64"
FLOAT32 = "float32"
_DTYPES = (BYTES, INT64, FLOAT32)


class SpecError(ValueError):
    """A spec is missing, malformed, or does not match what a consumer expects."""


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
        if self.dtype not in _DTYPES:
            raise SpecError(f"feature {self.name!r}: dtype {self.dtype!r} is not one of {_DTYPES}")

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
        missing = [f.name for f in self.features if f.name not in columns]
        if missing or len(columns) != len(self.features):
            raise SpecError(f"batch of spec {self.name!r}: missing {missing}, "
                            f"not in spec {sorted(set(columns) - set(self.names))}")
        features = sorted(self.features, key=lambda f: f.name)
        rows = len(columns[features[0].name])
        if rows == 0:
            return []
        # The records' pieces in order, each a uint8 matrix (a row per record), the mask of its bytes
        # to keep (None: all) and its bytes per row.
        pieces: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]] = []
        for f in features:
            n = f.length
            if f.dtype == BYTES or n is None:
                raise SpecError(f"encode_batch: feature {f.name!r} of spec {self.name!r} is not fixed-length numeric")
            values = np.asarray(columns[f.name])
            if values.size != rows * n:
                raise SpecError(f"feature {f.name!r} of spec {self.name!r}: shape {values.shape}, expected "
                                f"{rows} records of {n} values")
            if f.dtype == INT64 and values.dtype == bool:  # 0/1 flags are their own one-byte varints
                data, keep, sizes = values.reshape(rows, n).view(np.uint8), None, np.full(rows, n)
            elif f.dtype == INT64:
                data, keep, sizes = _varint_matrix(values.reshape(rows, n).astype(np.int64, copy=False).view(np.uint64))
            else:
                data, keep, sizes = values.reshape(rows, n).astype("<f4").view(np.uint8), None, np.full(rows, 4 * n)
            pieces.append(_prefix_matrix(sizes, lambda size, f=f: _entry_prefix(f.name, f.dtype, size)))
            pieces.append((data, keep, sizes))
        body = sum(sizes for _, _, sizes in pieces)
        pieces.insert(0, _prefix_matrix(body, _example_prefix))
        # Consecutive pieces of one kind form a block: fixed-width ones (no mask) are copied whole,
        # the others compacted by their masks (a compaction copies byte by byte through an index,
        # so the fixed bytes stay out of it); each record is its blocks' slices joined.
        blocks = [_block_slices(list(run)) for _, run in itertools.groupby(pieces, lambda p: p[1] is None)]
        if len(blocks) == 1:
            return blocks[0]
        return list(map(b"".join, zip(*blocks, strict=True)))


def _block_slices(pieces: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]) -> list[bytes]:
    """Per row, the bytes of consecutive pieces (all with a mask, or all without one)."""
    data = pieces[0][0] if len(pieces) == 1 else np.concatenate([d for d, _, _ in pieces], axis=1)
    if pieces[0][1] is None:
        return np.ascontiguousarray(data).view(f"V{data.shape[1]}").ravel().tolist()  # a bytes per row
    keep = pieces[0][1] if len(pieces) == 1 else np.concatenate([k for _, k, _ in pieces], axis=1)
    flat = np.compress(keep.reshape(-1), data.reshape(-1)).tobytes()  # ~1.6x faster than data[keep]
    ends = np.cumsum(sum(sizes for _, _, sizes in pieces)).tolist()
    return [flat[s:e] for s, e in zip([0, *ends[:-1]], ends, strict=True)]


# --- hand-rolled, deterministic tf.train.Example encoding -------------------------------------

def _varint_slow(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# Tags, lengths of texts and most ids are below 2**14: their varints are looked up, not computed.
_SMALL_VARINTS = tuple(_varint_slow(n) for n in range(1 << 14))


def _varint(n: int) -> bytes:
    """``n`` as a protobuf varint (negative int64 as its two's complement, 10 bytes)."""
    return _SMALL_VARINTS[n] if 0 <= n < 16384 else _varint_slow(n)


def _len_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _feature(dtype: str, value: Any) -> bytes:
    if dtype == BYTES:
        items = [value] if isinstance(value, (bytes, str)) else value
        body = b"".join(_len_delimited(1, v.encode("utf-8") if isinstance(v, str) else bytes(v)) for v in items)
        return _len_delimited(1, body)
    if dtype == INT64:
        items = [value] if isinstance(value, int) else value
        packed = b"".join(_varint(int(v)) for v in items)
        return _len_delimited(3, _len_delimited(1, packed) if packed else b"")
    items = [value] if isinstance(value, (int, float)) else value
    packed = struct.pack(f"<{len(items)}f", *items)
    return _len_delimited(2, _len_delimited(1, packed) if packed else b"")


def _example_prefix(size: int) -> bytes:
    """The bytes of an Example before its ``size`` bytes of features."""
    return _varint(1 << 3 | 2) + _varint(size)


@functools.lru_cache(maxsize=1 << 14)  # a batch has a few hundred distinct sizes, the next batch the same ones
def _entry_prefix(name: str, dtype: str, size: int) -> bytes:
    """The bytes of a feature's map entry that come before its ``size`` bytes of packed values."""
    packed = bytes(size)
    tag = 2 if dtype == FLOAT32 else 3
    feature = _len_delimited(tag, _len_delimited(1, packed) if packed else b"")
    entry = _len_delimited(1, _len_delimited(1, name.encode("utf-8")) + _len_delimited(2, feature))
    return entry[:len(entry) - size]


def _prefix_matrix(lengths: np.ndarray, prefix: Callable[[int], bytes]
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Per row, ``prefix(lengths[row])`` as a uint8 matrix, the mask of its bytes (prefixes vary in
    length with their varints) and their number; computed once per distinct length."""
    if lengths.min() == lengths.max():  # fixed-length features: one prefix for every row
        first = np.frombuffer(prefix(int(lengths[0])), dtype=np.uint8)
        return np.broadcast_to(first, (len(lengths), len(first))), None, np.full(len(lengths), len(first))
    # The distinct lengths (ascending) and each row's index among them, as np.unique(return_inverse=True)
    # gives them, by counting instead of sorting (lengths are small non-negative integers).
    present = np.bincount(lengths)
    distinct = np.flatnonzero(present)
    lookup = np.zeros(len(present), dtype=np.intp)
    lookup[distinct] = np.arange(len(distinct))
    inverse = lookup[lengths]
    table = [prefix(int(n)) for n in distinct]
    width = max(len(t) for t in table)
    matrix = np.zeros((len(table), width), dtype=np.uint8)
    for i, t in enumerate(table):
        matrix[i, :len(t)] = np.frombuffer(t, dtype=np.uint8)
    sizes = np.array([len(t) for t in table])
    if (sizes == width).all():
        return matrix[inverse], None, sizes[inverse]
    return matrix[inverse], (np.arange(width) < sizes[:, None])[inverse], sizes[inverse]


def _varint_matrix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Each row of a uint64 matrix as packed protobuf varints: a uint8 matrix with a slot per value
    (4 bytes below 2**21, else the longest varint's width), the mask of the bytes to keep (None
    when every value takes one byte) and the bytes per row."""
    rows, n = values.shape
    top = int(values.max()) if values.size else 0
    if top < 0x80:
        return values.astype(np.uint8), None, np.full(rows, n)
    width = (top.bit_length() + 6) // 7
    if width <= 3:  # every vocabulary id: gathers from tables, no per-byte arithmetic
        table, used = _varint_table()
        index = values.view(np.int64)
        nbytes = (values >= 1 << 7).astype(np.int8)
        nbytes += 1 + (values >= 1 << 14)
        return (table[index].view(np.uint8).reshape(rows, 4 * n), used[index].view(bool).reshape(rows, 4 * n),
                nbytes.sum(axis=1, dtype=np.int64))
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    slots = ((values[..., None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    nbytes = np.ones(values.shape, dtype=np.int8)
    for k in range(1, width):
        nbytes += values >= np.uint64(1 << (7 * k))
    slots |= (np.arange(width) < nbytes[..., None] - 1).astype(np.uint8) << 7
    keep = np.arange(width, dtype=np.int8) < nbytes[..., None]
    return slots.reshape(rows, -1), keep.reshape(rows, -1), nbytes.sum(axis=1, dtype=np.int64)


@functools.cache
def _varint_table() -> tuple[np.ndarray, np.ndarray]:
    """For every value below 2**21: its varint (at most 3 bytes) in a 4-byte slot, and the slot's
    used bytes (1 per used byte), both as little-endian uint32; built once per process."""
    v = np.arange(1 << 21, dtype=np.uint32)
    more1, more2 = (v >= 1 << 7).astype(np.uint32), (v >= 1 << 14).astype(np.uint32)
    table = (v & 0x7F) | more1 << 7 | ((v >> 7) & 0x7F) << 8 | more2 << 15 | (v >> 14) << 16
    used = 1 | more1 << 8 | more2 << 16
    return table.astype("<u4"), used.astype("<u4")


def encode_example(features: Mapping[str, tuple[str, Any]]) -> bytes:
    """Serialises ``{name: (dtype, value_or_values)}`` as a ``tf.train.Example``.

    Bytes features take ``bytes``/``str`` (UTF-8) or a sequence of them; int64 and float32 features
    take a number or a sequence. Features are written in name order, which is what protobuf's
    deterministic serialisation does for the ``Features`` map, so the output equals
    ``tf.train.Example.SerializeToString(deterministic=True)`` byte for byte.
    """
    entries = b"".join(
        _len_delimited(1, _len_delimited(1, name.encode("utf-8")) + _len_delimited(2, _feature(*features[name])))
        for name in sorted(features)
    )
    return _len_delimited(1, entries)


# --- the specs themselves ---------------------------------------------------------------------

def text_pair_spec(num_texts: int = 2, with_langs: bool = False, name: str = "text_pairs") -> FeatureSpec:
    """Raw text pairs (or triplets) for the dual encoder: ``src_raw`` anchor, ``tgt_raw`` positive,
    ``neg_raw`` an optional hard negative; LaBSE's published format for translation pairs."""
    if num_texts not in (2, 3):
        raise SpecError(f"text pairs have 2 or 3 texts, not {num_texts}")
    feats = [Feature("src_raw", BYTES, (), "anchor text, UTF-8"), Feature("tgt_raw", BYTES, (), "positive text, UTF-8")]
    if num_texts == 3:
        feats.append(Feature("neg_raw", BYTES, (), "hard-negative text, UTF-8"))
    if with_langs:
        feats += [Feature("src_lang", BYTES, (), "language code of src_raw"),
                  Feature("tgt_lang", BYTES, (), "language code of tgt_raw")]
    return FeatureSpec(name, tuple(feats), {"num_texts": num_texts})


TRANSLATION_PAIRS = text_pair_spec(2, with_langs=True, name="translation_pairs")


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


def read_spec_text(schema_text: str, spec_json: str | None = None) -> FeatureSpec:
    """Rebuilds a spec from the files a pipeline wrote: the schema is authoritative, the JSON
    sidecar (when present) supplies the name and parameters."""
    name, params = "", {}
    if spec_json:
        side = FeatureSpec.from_json(spec_json)
        name, params = side.name, dict(side.params)
    return FeatureSpec.from_schema_text(schema_text, name, params)

