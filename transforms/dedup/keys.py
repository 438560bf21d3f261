"""What decides duplicates, per record: texts, graph nodes, ranks and fingerprints (plain Python, no Beam).

A record's texts (``texts_fn``) become graph nodes: one per record for modes ``"pair"`` and ``"one"``,
one per distinct text for ``"either"``; records sharing a node are one group. With a ``group_fn``
the nodes (and near dedup's LSH band keys) are taken within the record's group (``in_group``), so
records of two groups never meet: one transform dedups every group at once. Of a group the record
``better`` than all others is kept: greatest rank, then smallest fingerprint of its content.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Mapping, Sequence, Set
from typing import Any, NamedTuple

import numpy as np

from specs.errors import ConfigError
from transforms.core.seeding import stable_hash128
from transforms.text import textnorm

MODES = ("pair", "one", "either")
VERIFY = ("signature", "shingles")
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
EVAL_OVERLAP = "eval_overlap"
BAD_TEXTS = "bad_texts"

TextsFn = Callable[[Any], Any]
RankFn = Callable[[Any], Any]
ScopeFn = Callable[[Any], str]
GroupFn = Callable[[Any], str]


def record_texts(texts_fn: TextsFn, record: Any, mode: str) -> list[str]:
    """The record's texts as ``str``; raises (``TypeError``/``ValueError``) on data that has none."""
    value = texts_fn(record)
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        value = [value]
    texts = [textnorm.as_text(t) for t in value]
    if not texts:
        raise ValueError("texts_fn gave no text")
    if mode == "one" and len(texts) != 1:
        raise ValueError(f"mode 'one' needs exactly one text per record, texts_fn gave {len(texts)}")
    return texts


def content(value: Any) -> bytes:
    """A record's content as bytes: its values, each typed and length-prefixed, in field order
    (sequences, named tuples, dataclasses), key order (mappings) or sorted (sets). Never its class,
    the module that defines it, or how pickle lays it out, so where a record type lives or how
    Python pickles it cannot change which duplicate is kept; equal values give equal bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        tag, body = b"b", bytes(value)
    elif isinstance(value, str):
        tag, body = b"s", value.encode("utf-8")
    elif value is None or isinstance(value, bool):
        tag, body = b"n" if value is None else b"t", str(value).encode("ascii")
    elif isinstance(value, (int, np.integer)):
        tag, body = b"i", str(int(value)).encode("ascii")
    elif isinstance(value, (float, np.floating)):
        tag, body = b"f", float(value).hex().encode("ascii")
    elif isinstance(value, np.ndarray):
        tag, body = b"a", f"{value.dtype.str}{value.shape}".encode("ascii") + b"\0" + value.tobytes()
    elif isinstance(value, Mapping):
        tag, body = b"m", b"".join(sorted(content(k) + content(v) for k, v in value.items()))
    elif isinstance(value, Set):
        tag, body = b"u", b"".join(sorted(content(v) for v in value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        tag, body = b"l", b"".join(content(getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, (tuple, list)):
        tag, body = b"l", b"".join(content(v) for v in value)
    else:
        raise TypeError(f"no content encoding for {type(value).__name__}; give dedup records of bytes, str, "
                        "numbers, None, sequences, mappings, sets or dataclasses")
    return tag + struct.pack("<Q", len(body)) + body


def fingerprint(record: Any) -> bytes:
    """128-bit fingerprint of a record's content: the final tie-break between records (``bytes`` and
    ``str`` records as they are, anything else by ``content``)."""
    if isinstance(record, (bytes, bytearray)):
        data = bytes(record)
    elif isinstance(record, str):
        data = record.encode("utf-8")
    else:
        data = content(record)
    return stable_hash128(data)


def exact_nodes(texts: Sequence[str], mode: str, case_fold: bool = False) -> tuple[bytes, ...]:
    """The graph nodes of a record for exact dedup: one key for "pair"/"one"; for "either" one key
    per distinct non-empty normalised text (a record with only empty texts gets the empty key)."""
    keys = [textnorm.exact_key_text(t, case_fold) for t in texts]
    if mode != "either":
        return (stable_hash128("exact", *keys),)
    nodes = tuple(dict.fromkeys(stable_hash128("exact-text", k) for k in keys if k))
    return nodes or (stable_hash128("exact-text", ""),)


def near_nodes(texts: Sequence[str], mode: str) -> list[tuple[bytes, list[str]]]:
    """``(node, normalised texts to sign)`` per graph node of a record for near dedup: one node over
    all texts for "pair"/"one", one per distinct non-empty text for "either"."""
    normalized = [textnorm.near_key_text(t) for t in texts]
    if mode != "either":
        return [(stable_hash128("near", *normalized), normalized)]
    distinct = list(dict.fromkeys(n for n in normalized if n)) or [""]
    return [(stable_hash128("near-text", n), [n]) for n in distinct]


def in_group(key: bytes, group: str | None) -> bytes:
    """A graph node (16 bytes) or LSH band key taken within ``group``: the same bytes without one."""
    return key if group is None else stable_hash128("group", group, key)


class Member(NamedTuple):
    """A record travelling through grouping, with what decides whether it is kept."""

    rank: Any
    fp: bytes
    scope: str
    record: Any


class ClusterMember(NamedTuple):
    """A record with its cluster: the optional "every record" output of the dedup transforms.

    ``cluster_id`` (32 hex digits) is the same for all members of a cluster and does not depend on
    which member is kept; ``is_duplicate`` is False for exactly one member, the kept one."""

    record: Any
    cluster_id: str
    cluster_size: int
    is_duplicate: bool


def better(a: Member, b: Member) -> bool:
    """True if ``a`` should be kept rather than ``b``: greater rank, then smaller fingerprint.

    Ranks that cannot be compared (a ``rank_fn`` that returns None for some records, say) must not
    crash the job: they are ordered by type name and ``repr`` instead, still deterministically."""
    try:
        if a.rank != b.rank:
            return bool(a.rank > b.rank)
    except TypeError:
        ka, kb = (type(a.rank).__name__, repr(a.rank)), (type(b.rank).__name__, repr(b.rank))
        if ka != kb:
            return ka > kb
    return a.fp < b.fp


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"dedup mode must be one of {', '.join(MODES)}, got {mode!r}")
