"""The records of ``pipelines.dedup``: JSONL lines and tf.Examples, parsed without TensorFlow and
kept byte for byte, and the bytes written for them (plain Python, no Beam)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from specs import encode_example
from specs.errors import ConfigError
from transforms.core import input_checks
from transforms.core.formats import JSONL, TFRECORD, format_of
from transforms.core.records import BadRecordError
from transforms.dedup.keys import ClusterMember, fingerprint

READ_STAGE = "read"


class JobRecord(NamedTuple):
    """One input record of ``pipelines.dedup``: its bytes exactly as read, and what dedup needs."""

    source: str  # the input file (the accounting scope)
    offset: int  # byte offset of a JSONL line; -1 for TFRecords (Beam's reader gives no position)
    raw: bytes  # the JSON line, or the serialised tf.Example
    texts: tuple[str, ...]
    rank: float | None  # the --rank_field value, None without one


def input_format(paths: Sequence[str], requested: str = "auto") -> str:
    """The format of the input files: ``requested`` if given, else from the names (``formats.format_of``;
    all alike)."""
    if requested in (JSONL, TFRECORD):
        return requested
    if requested != "auto":
        raise ConfigError(f"--format must be auto, {JSONL} or {TFRECORD}, not {requested!r}")
    found = set()
    for p in paths:
        fmt = format_of(p, (JSONL, TFRECORD))
        if fmt is None:
            raise ConfigError(f"--input: cannot tell the format of {p!r} from its name; pass --format")
        found.add(fmt)
    if len(found) > 1:
        raise ConfigError("--input: mixes JSONL and TFRecord files; run them separately")
    return found.pop()


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise BadRecordError("missing_field", f"no field {dotted!r}")
        obj = obj[part]
    return obj


def _rank_value(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRecordError("bad_rank_field", f"{field!r} is {type(value).__name__}, not a number")
    return float(value)


def record_from_json(source: str, offset: int, line: bytes, text_fields: Sequence[str],
                     rank_field: str | None) -> JobRecord:
    """A JSONL line as a JobRecord; raises BadRecordError (reason ``bad_json``, ``missing_field``,
    ``bad_text_field``, ``bad_rank_field``)."""

    try:
        obj = json.loads(line)
    except ValueError as e:
        raise BadRecordError("bad_json", str(e)) from None
    texts = []
    for f in text_fields:
        value = _lookup(obj, f)
        if not isinstance(value, str):
            raise BadRecordError("bad_text_field", f"{f!r} is {type(value).__name__}, not a string")
        texts.append(value)
    rank = _rank_value(_lookup(obj, rank_field), rank_field) if rank_field else None
    return JobRecord(source, offset, line, tuple(texts), rank)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise BadRecordError("bad_example", "truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BadRecordError("bad_example", "varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """Protobuf wire fields of a message: ``(number, wire_type, value)``; LEN values as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(data, pos)
            if pos + n > len(data):
                raise BadRecordError("bad_example", "truncated field")
            value, pos = data[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise BadRecordError("bad_example", f"unsupported wire type {wire}")
        yield number, wire, value


def parse_example(raw: bytes) -> dict[str, list[Any]]:
    """A serialised ``tf.train.Example`` as ``{name: values}`` without TensorFlow: bytes features as
    bytes, int64 as int, float as float. Repeated ``features`` messages merge, as in protobuf."""

    out: dict[str, list[Any]] = {}
    for number, wire, features in _fields(raw):
        if number != 1 or wire != 2:
            continue
        for fnum, fwire, entry in _fields(features):
            if fnum != 1 or fwire != 2:
                continue
            name, feature = "", b""
            for enum, _, v in _fields(entry):
                if enum == 1:
                    name = v.decode("utf-8", errors="replace")
                elif enum == 2:
                    feature = v
            values: list[Any] = []
            for kind, _, lst in _fields(feature):
                for _, vwire, v in _fields(lst):
                    if kind == 1:
                        values.append(bytes(v))
                    elif kind == 2:
                        values.extend(struct.unpack(f"<{len(v) // 4}f", v) if vwire == 2 else struct.unpack("<f", v))
                    elif kind == 3:
                        if vwire == 2:
                            pos = 0
                            while pos < len(v):
                                n, pos = _varint(v, pos)
                                values.append(n - (1 << 64) if n >= 1 << 63 else n)
                        else:
                            values.append(v - (1 << 64) if v >= 1 << 63 else v)
            out[name] = values
    return out


def record_from_example(source: str, raw: bytes, text_fields: Sequence[str], rank_field: str | None) -> JobRecord:
    """A serialised tf.Example as a JobRecord: each text field a bytes feature with one value."""
    features = parse_example(raw)
    texts = []
    for f in text_fields:
        values = features.get(f)
        if values is None:
            raise BadRecordError("missing_field", f"no feature {f!r}")
        if len(values) != 1 or not isinstance(values[0], bytes):
            raise BadRecordError("bad_text_field", f"feature {f!r} is not one bytes value")
        error = input_checks.utf8_error(values[0], f"feature {f!r}")
        if error:
            raise BadRecordError(input_checks.INVALID_UTF8, error)
        texts.append(values[0].decode("utf-8"))
    rank = None
    if rank_field:
        values = features.get(rank_field)
        if not values or len(values) != 1:
            raise BadRecordError("missing_field" if not values else "bad_rank_field", f"feature {rank_field!r}")
        rank = _rank_value(values[0], rank_field)
    return JobRecord(source, -1, raw, tuple(texts), rank)


def record_sort_key(record: JobRecord) -> bytes:
    """Output order within a shard: input order for JSONL, a content hash for TFRecords."""
    if record.offset >= 0:
        return record.source.encode("utf-8") + b"\0" + record.offset.to_bytes(8, "big")
    return record.source.encode("utf-8") + b"\1" + fingerprint(record.raw)


def clustered_json(member: ClusterMember) -> bytes:
    """A JSONL record with ``cluster_id``, ``cluster_size`` and ``is_duplicate`` added to its object."""

    obj = json.loads(member.record.raw)
    obj.update(cluster_id=member.cluster_id, cluster_size=member.cluster_size, is_duplicate=member.is_duplicate)
    return json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")


def clustered_example(member: ClusterMember) -> bytes:
    """A tf.Example with ``cluster_id``, ``cluster_size`` and ``is_duplicate`` features added: the
    record's bytes followed by a second ``features`` field, which protobuf parsers merge."""

    return member.record.raw + encode_example({
        "cluster_id": ("bytes", member.cluster_id), "cluster_size": ("int64", member.cluster_size),
        "is_duplicate": ("int64", int(member.is_duplicate))})
