"""Examples encoded by hand, deterministically: ``encode_example`` for one record, ``encode_columns``
for a batch of fixed-length numeric records with numpy (no TensorFlow, no protobuf classes).

Rather than the ``tf.train.Example`` protobuf class: it avoids importing TensorFlow into every Beam
worker just to build messages, it is several times faster than filling a message per record, and it is
deterministic by construction (features in name order, the same bytes as protobuf's
``SerializeToString(deterministic=True)``). ``specs.feature_spec.FeatureSpec.encode`` and
``encode_batch`` check a record against its spec and encode it here.
"""

from __future__ import annotations

import functools
import itertools
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from specs.errors import SpecError

BYTES = "bytes"
INT64 = "int64"
FLOAT32 = "float32"
DTYPES = (BYTES, INT64, FLOAT32)


def encode_columns(spec_name: str, features: Sequence[Any], columns: Mapping[str, Any]) -> list[bytes]:
    """A batch of records given as one array per feature (a row per record) encoded, each record
    equal to ``encode_example`` of its row, with numpy over the whole batch instead of Python per
    value. ``features`` are the spec's (``name``, ``dtype``, ``length``), all fixed-length int64 or
    float32; ``spec_name`` names the spec in errors. Values are cast to the feature's dtype."""
    missing = [f.name for f in features if f.name not in columns]
    if missing or len(columns) != len(features):
        raise SpecError(f"batch of spec {spec_name!r}: missing {missing}, "
                        f"not in spec {sorted(set(columns) - {f.name for f in features})}")
    features = sorted(features, key=lambda f: f.name)
    rows = len(columns[features[0].name])
    if rows == 0:
        return []
    # The records' pieces in order, each a uint8 matrix (a row per record), the mask of its bytes
    # to keep (None: all) and its bytes per row.
    pieces: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]] = []
    for f in features:
        n = f.length
        if f.dtype == BYTES or n is None:
            raise SpecError(f"encode_batch: feature {f.name!r} of spec {spec_name!r} is not fixed-length numeric")
        values = np.asarray(columns[f.name])
        if values.size != rows * n:
            raise SpecError(f"feature {f.name!r} of spec {spec_name!r}: shape {values.shape}, expected "
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

