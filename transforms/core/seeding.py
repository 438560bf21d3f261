"""Per-element randomness and stable hashing.

Randomness in polyembed is never drawn from a global RNG: each element gets its own generator,
seeded from the job seed and a stable hash of what identifies the element (its content or key and,
where relevant, a pass number). Retries, re-sharding, other runners and other worker counts therefore
produce byte-identical output. Python's built-in ``hash`` is salted per process and must not be used
for anything that reaches the output; use ``stable_hash64`` instead.
"""

from __future__ import annotations

import hashlib
import random
import struct

import numpy as np

Part = bytes | str | int


def _digest(parts: tuple[Part, ...], size: int) -> bytes:
    h = hashlib.blake2b(digest_size=size)
    for p in parts:
        if isinstance(p, bytes):
            b = p
            tag = b"b"
        elif isinstance(p, str):
            b = p.encode("utf-8")
            tag = b"s"
        elif isinstance(p, int):
            b = str(p).encode("ascii")
            tag = b"i"
        else:
            raise TypeError(f"cannot hash {type(p).__name__} stably; pass bytes, str or int")
        # Length-prefixed and typed, so ("ab", "c") and ("a", "bc") and (1,) and ("1",) differ.
        h.update(tag + struct.pack("<Q", len(b)) + b)
    return h.digest()


def stable_hash64(*parts: Part) -> int:
    """A 64-bit unsigned hash of the parts, the same in every process, on every machine."""
    return int.from_bytes(_digest(parts, 8), "little")


def stable_hash128(*parts: Part) -> bytes:
    """A 128-bit hash (16 bytes) of the parts, for keys where collisions must be negligible."""
    return _digest(parts, 16)


def element_rng(seed: int, *parts: Part) -> random.Random:
    """A ``random.Random`` seeded from the job seed and the element's identity."""
    return random.Random(stable_hash64(seed, *parts))


def element_np_rng(seed: int, *parts: Part) -> np.random.Generator:
    """A numpy ``Generator`` (PCG64) seeded from the job seed and the element's identity."""
    return np.random.Generator(np.random.PCG64(stable_hash64(seed, *parts)))


def unit_interval(seed: int, *parts: Part) -> float:
    """A deterministic float in [0, 1) for the element: for sampling and splitting decisions."""
    return (stable_hash64(seed, *parts) >> 11) / float(1 << 53)
