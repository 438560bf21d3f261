"""Language-balanced sampling and shuffle buckets (no Beam): how many passes a document gets, and
which bucket (the pool random next segments come from) it joins."""

from __future__ import annotations

from collections.abc import Mapping

from transforms.core.sampling import smoothed_rates, stochastic_round
from transforms.core.seeding import stable_hash64


def language_pass_rates(counts: Mapping[str, int], alpha: float, dupe_factor: int) -> dict[str, float]:
    """Expected passes per document for each language under exponentially smoothed sampling.

    The pretraining policy over ``sampling.smoothed_rates`` (alpha=1 keeps the corpus as it is,
    alpha=0 makes languages equal, XLM-R uses 0.3): the total work stays ``dupe_factor * N`` document
    passes, divided as the smoothed shares, so a document gets ``dupe_factor`` times its language's
    rate on average (``passes_for``) and rare languages are seen more often (with different masks
    and pairs), common ones less.
    """
    return {lang: dupe_factor * rate for lang, rate in smoothed_rates(counts, alpha).items()}


def passes_for(rate: float, seed: int, key: bytes) -> int:
    """A document's passes: its expected count stochastically rounded, seeded by the document."""
    return stochastic_round(rate, seed, key, "passes")


def bucket_count(counts: Mapping[str, int], docs_per_bucket: int) -> int:
    """Shuffle buckets for a corpus of ``sum(counts)`` documents: about ``docs_per_bucket`` each."""
    return max(1, round(sum(counts.values()) / docs_per_bucket))


def bucket_hash(seed: int, key: bytes) -> int:
    """The 64-bit hash that places a document in a bucket (``placement.shard_of`` of it)."""
    return stable_hash64(seed, key, "bucket")
