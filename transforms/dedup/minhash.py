"""MinHash signatures and LSH band keys, vectorised with numpy: pure functions, no Beam.

The cost of MinHash in Python is usually the per-shingle work (encode, hash, loop), not the
permutations. Here a text is handled as one byte array: ``textnorm.near_key_text`` leaves units
(words, or single characters of spaceless scripts) separated by single spaces, so unit boundaries are
found with one vectorised comparison, every unit gets a 64-bit polynomial hash from one prefix sum, and
an n-gram's hash is a mixed, position-weighted sum of its units' hashes. No Python code runs per unit
or per shingle.

Permutations are affine maps ``x -> a*x + b (mod 2**64)`` with odd ``a``: bijections of the 64-bit
shingle space applied to already well-mixed shingle hashes, so the minimum's position is as good as a
random permutation's for our purposes (the tests measure the estimator against exact Jaccard). The
signature keeps the high 32 bits of each minimum, which are the bits the minimum is decided by.
Parameters ``a, b`` come from a seeded generator, so every worker of a job, and every job with the
same ``seed`` and ``num_perm``, computes the same signatures.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np

from transforms.core.seeding import element_np_rng

U64 = np.uint64
_P = 0x100000001B3  # the FNV-64 prime: odd, so invertible modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)
_MAX32 = np.uint32(0xFFFFFFFF)
# Shingles are multiplied with the permutations in chunks of this many rows, bounding the temporary
# matrix at CHUNK x num_perm x 8 bytes (2 MiB at 128 permutations) whatever the document's length.
_CHUNK = 2048


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on a uint64 array (wrapping arithmetic): a bijection that spreads
    every input bit over every output bit."""
    x = (x ^ (x >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> U64(27))) * U64(0x94D049BB133111EB)
    return x ^ (x >> U64(31))


@functools.lru_cache(maxsize=8)
def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``P**k`` and ``P**-k`` modulo 2**64 for k < size (size a power of two, so few are cached)."""
    p = np.full(size, _P, dtype=U64)
    p[0] = 1
    q = np.full(size, _P_INV, dtype=U64)
    q[0] = 1
    return np.cumprod(p), np.cumprod(q)


# Position weights of an n-gram's units: fixed odd constants drawn once from a fixed seed.
_WEIGHTS = element_np_rng(0, "minhash-ngram-weights").integers(1, 1 << 63, size=64, dtype=U64) * U64(2) + U64(1)


def unit_hashes(normalized: str) -> np.ndarray:
    """64-bit hashes of the space-separated units of a ``near_key_text`` string."""
    if not normalized:
        return np.empty(0, dtype=U64)
    data = np.frombuffer(normalized.encode("utf-8"), dtype=np.uint8)
    n = len(data)
    pw, inv = _powers(1 << n.bit_length())
    prefix = np.zeros(n + 1, dtype=U64)
    np.cumsum((data.astype(U64) + U64(1)) * pw[:n], out=prefix[1:])
    spaces = np.flatnonzero(data == 32)
    starts = np.concatenate(([0], spaces + 1))
    ends = np.concatenate((spaces, [n]))
    return _mix((prefix[ends] - prefix[starts]) * inv[starts])


def ngram_hashes(units: np.ndarray, n: int, salt: int = 0, whole_if_short: bool = True) -> np.ndarray:
    """Hashes of the unit n-grams (order matters), unsorted and possibly repeated.

    A text shorter than ``n`` units has no n-gram; with ``whole_if_short`` it gets one shingle made
    of all its units (so that short texts can still match each other), else none. ``salt`` keeps the
    shingles of different texts of one record apart (pair mode)."""
    if n > len(_WEIGHTS):
        raise ValueError(f"n-gram size {n} is over {len(_WEIGHTS)}")
    k = len(units)
    if k < n:
        if k == 0 or not whole_if_short:
            return np.empty(0, dtype=U64)
        g = np.array([np.sum(units * _WEIGHTS[:k]) + U64(k)], dtype=U64)
    else:
        g = np.zeros(k - n + 1, dtype=U64)
        for i in range(n):
            g += units[i:k - n + 1 + i] * _WEIGHTS[i]
    return _mix(g ^ U64(salt & 0xFFFFFFFFFFFFFFFF))


@dataclasses.dataclass(frozen=True)
class MinHasher:
    """MinHash signatures with ``num_perm`` permutations over unit ``ngram``-grams, and LSH band keys
    (``bands`` x ``rows`` <= ``num_perm``). ``threshold()`` is the Jaccard similarity at which a pair
    has about even odds to share a band: ``(1/bands) ** (1/rows)``."""

    num_perm: int = 128
    ngram: int = 5
    bands: int = 12
    rows: int = 10
    seed: int = 1

    def __post_init__(self) -> None:
        for name in ("num_perm", "ngram", "bands", "rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} is more than num_perm = {self.num_perm}")
        if self.ngram > len(_WEIGHTS):
            raise ValueError(f"ngram must be at most {len(_WEIGHTS)}, got {self.ngram}")

    @functools.cached_property
    def _perm(self) -> tuple[np.ndarray, np.ndarray]:
        rng = element_np_rng(self.seed, "minhash-permutations", self.num_perm)
        a = rng.integers(0, 1 << 63, size=self.num_perm, dtype=U64) * U64(2) + U64(1)
        b = rng.integers(0, 1 << 63, size=self.num_perm, dtype=U64) * U64(2)
        return a, b

    def threshold(self) -> float:
        return (1.0 / self.bands) ** (1.0 / self.rows)

    def shingle_hashes(self, normalized_texts: list[str]) -> np.ndarray:
        """Shingle hashes of one or more ``near_key_text`` strings, with repeats (the minimum does
        not care); with several texts (a pair), each text's shingles are salted by its position."""
        parts = [ngram_hashes(unit_hashes(t), self.ngram, salt=i if len(normalized_texts) > 1 else 0)
                 for i, t in enumerate(normalized_texts)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=U64)

    def shingles(self, normalized_texts: list[str]) -> np.ndarray:
        """The shingle set: sorted unique shingle hashes, for exact Jaccard."""
        return np.unique(self.shingle_hashes(normalized_texts))

    def signature_of_shingles(self, shingles: np.ndarray) -> np.ndarray:
        """``num_perm`` uint32 minima. No shingles (an empty text) gives all 0xFFFFFFFF, so empty
        texts are near-duplicates of each other and of nothing else."""
        if len(shingles) == 0:
            return np.full(self.num_perm, _MAX32, dtype=np.uint32)
        a, b = self._perm
        best = None
        for start in range(0, len(shingles), _CHUNK):
            m = np.multiply(shingles[start:start + _CHUNK, None], a)
            m += b
            m = m.min(axis=0)
            best = m if best is None else np.minimum(best, m)
        return (best >> U64(32)).astype(np.uint32)

    def signature(self, normalized_texts: list[str]) -> np.ndarray:
        return self.signature_of_shingles(self.shingle_hashes(normalized_texts))

    def band_keys(self, signature: np.ndarray) -> list[bytes]:
        """One key per band: the band number and a 64-bit digest of its rows. Two signatures share
        a key exactly when they agree on every row of that band (up to 2**-64 collisions)."""
        r = self.rows
        return [i.to_bytes(2, "big") + hashlib.blake2b(signature[i * r:(i + 1) * r].tobytes(), digest_size=8).digest()
                for i in range(self.bands)]


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, false_negative_weight: float = 0.8) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` minimising the weighted areas of false
    positives (pairs below ``threshold`` that share a band) and false negatives (pairs above it
    that share none), as datasketch's MinHashLSH does. False negatives weigh 0.8 by default rather
    than 0.5 because candidates are verified afterwards: a false positive costs a comparison, a
    false negative a duplicate left in. For 0.8 and 128 permutations: 12 bands of 10 rows."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    below, above = np.linspace(0.0, threshold, 201), np.linspace(threshold, 1.0, 201)
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(1.0 - (1.0 - below ** rows) ** bands, below)
            fn = np.trapezoid((1.0 - above ** rows) ** bands, above)
            err = (1.0 - false_negative_weight) * fp + false_negative_weight * fn
            if best is None or err < best[0]:
                best = (err, bands, rows)
    assert best is not None
    return best[1], best[2]


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The fraction of permutations on which two signatures agree: an unbiased Jaccard estimate."""
    return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique shingle arrays (1.0 for two empty sets)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
