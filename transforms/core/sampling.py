"""Sampling rules several jobs share (no Beam): exponentially smoothed language shares, and seeded
stochastic rounding of an expected count. Each job keeps its own policy on top (vocab weights word
counts, translation caps and clips rates, pretraining multiplies its dupe factor)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from transforms.core.seeding import Part, unit_interval


def smoothed_rates(counts: Mapping[str, int], alpha: float) -> dict[str, float]:
    """Per key, how many times its natural share exponential smoothing gives it.

    With ``n_k`` items of key ``k`` and ``N`` in all, the smoothed share is ``q_k = n_k^alpha / sum_j
    n_j^alpha`` (alpha=1 keeps the mix, alpha=0 makes keys equal; mBERT, XLM-R, mT5 and LaBSE sample
    languages so), and the rate is ``q_k / (n_k / N) = N n_k^(alpha-1) / sum_j n_j^alpha``: an item
    of key ``k`` is taken that many times on average, and the total stays ``N``. Keys with no items
    are left out. Sums are ``math.fsum`` (exactly rounded), so rates are bit-identical whatever order
    the counts arrived in, and every rate is exactly 1.0 at alpha=1.
    """
    live = {k: n for k, n in sorted(counts.items()) if n > 0}
    total = math.fsum(live.values())
    norm = math.fsum(n ** alpha for n in live.values())
    return {k: total * n ** (alpha - 1.0) / norm for k, n in live.items()}


def stochastic_round(value: float, seed: int, *identity: Part) -> int:
    """``floor(value)``, plus one with probability ``frac(value)`` decided by a seeded hash of the
    element's ``identity``: unbiased, and the same on every run, worker and retry."""
    whole = math.floor(value)
    return whole + (1 if unit_interval(seed, *identity) < value - whole else 0)
