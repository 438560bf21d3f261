"""Language-balanced sampling and shuffle buckets (no Beam): how many passes a document gets, and
which bucket (the pool random next segments come from) it joins."""

from __future__ import annotations

import math
from collections.abc import Mapping

from transforms.core.seeding import stable_hash64, unit_interval


def language_pass_rates(counts: Mapping[str, int], alpha: float, dupe_factor: int) -> dict[str, float]:
    """Expected passes per document for each language under exponentially smoothed sampling.

    With document shares ``p_l = n_l / N``, the smoothed shares are ``q_l = p_l**alpha / sum_k
    p_k**alpha`` (alpha=1 keeps the corpus as it is, alpha=0 makes languages equal, XLM-R uses
    0.3). The total work stays ``dupe_factor * N`` document passes, divided as ``q``: a document of
    language ``l`` gets ``dupe_factor * N * q_l / n_l`` passes on average, so rare languages are
    seen more often (with different masks and pairs) and common ones less.
    """
    total = sum(counts.values())
    if total == 0:
        return {}
    weights = {lang: (n / total) ** alpha for lang, n in counts.items() if n > 0}
    norm = sum(weights.values())
    return {lang: dupe_factor * total * (w / norm) / counts[lang] for lang, w in weights.items()}


def passes_for(rate: float, seed: int, key: bytes) -> int:
    """Stochastic rounding of an expected pass count, seeded by the document."""
    whole = math.floor(rate)
    return whole + (1 if unit_interval(seed, key, "passes") < rate - whole else 0)


def bucket_count(counts: Mapping[str, int], docs_per_bucket: int) -> int:
    """Shuffle buckets for a corpus of ``sum(counts)`` documents: about ``docs_per_bucket`` each."""
    return max(1, round(sum(counts.values()) / docs_per_bucket))


def bucket_hash(seed: int, key: bytes) -> int:
    """The 64-bit hash that places a document in a bucket (``placement.shard_of`` of it)."""
    return stable_hash64(seed, key, "bucket")
