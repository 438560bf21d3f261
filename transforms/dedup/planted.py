"""Planted near-duplicates: the edits with which near-dedup's recall is measured.

The recall test (``tests/test_dedup_near.py``) and the benchmark (``bench/dedup.py``) both copy
real paragraphs with edits at known rates and count how many copies near-dedup finds; one edit
model serves both so their figures describe the same thing. Beam-free and deterministic given the
``random.Random`` passed in.
"""

from __future__ import annotations

import random


def edit_units(units: list[str], rate: float, rng: random.Random, vocab: list[str]) -> list[str]:
    """``units`` (words, or characters for unsegmented scripts) with each one, at ``rate``, replaced
    by a unit of ``vocab``, deleted, or followed by one, in equal shares."""
    out = []
    for u in units:
        r = rng.random()
        if r >= rate:
            out.append(u)
        elif r < rate / 3:
            out.append(rng.choice(vocab))  # substitution
        elif r < 2 * rate / 3:
            continue  # deletion
        else:
            out.extend([u, rng.choice(vocab)])  # insertion
    return out
