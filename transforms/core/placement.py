"""Where a record goes: a 64-bit hash of its sort key, and shards (or groups, buckets) as equal ranges
of that hash, so a file of records sorted by hash holds each shard's records in one stretch. Used by
``transforms.core.shards.WriteShards``, by the spilled runs of ``transforms.core.spill`` and by jobs
that bucket records the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def key_hash(key: bytes) -> int:
    """The 64-bit hash that places a record by its sort key: an 8-byte key (what ``sort_key`` and the
    pretraining examples use) through SplitMix64's bijective mixer, so ``key_hashes`` can do a batch
    with numpy; any other key through BLAKE2b."""
    if len(key) == 8:
        return int(key_hashes([key])[0])
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def key_hashes(keys: Sequence[bytes]) -> np.ndarray:
    """``key_hash`` of each key, as uint64."""
    if all(len(k) == 8 for k in keys):
        x = np.frombuffer(b"".join(keys), dtype=">u8").astype(np.uint64)
        x ^= x >> np.uint64(30)
        x *= _MIX[0]
        x ^= x >> np.uint64(27)
        x *= _MIX[1]
        x ^= x >> np.uint64(31)
        return x
    return np.fromiter((key_hash(k) for k in keys), dtype=np.uint64, count=len(keys))


def shard_of(key_hash: int, num_shards: int) -> int:
    """The shard of a record whose sort key hashes to ``key_hash`` (64 bits): shards are equal ranges
    of the hash, so a file of records sorted by hash holds each shard's records in one stretch."""
    return (key_hash * num_shards) >> 64


def shard_bounds(index: int, num_shards: int) -> tuple[int, int]:
    """The hashes ``[lo, hi)`` of shard ``index``: ``shard_of(h) == index`` exactly for those."""
    return -((-index << 64) // num_shards), -((-(index + 1) << 64) // num_shards)

