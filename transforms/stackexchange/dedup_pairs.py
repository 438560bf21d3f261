"""Dropping duplicate and evaluation-overlapping pairs, per pair type, with ``transforms.dedup``."""

from __future__ import annotations

from collections.abc import Sequence

import apache_beam as beam

from transforms.core.accounting import Accounted
from transforms.dedup import Decontaminate, ExactDedup, NearDedup
from transforms.stackexchange.pairs import PostPair


def pair_texts(p: PostPair) -> tuple[str, ...]:
    return p.texts


def pair_scope(p: PostPair) -> str:
    return f"{p.site}/{p.pair_type}"


def pair_rank(p: PostPair) -> int:
    """Among duplicate pairs the best-voted one is kept (then the dedup transforms' own tie rule)."""
    return sum(p.scores)


def pair_type(p: PostPair) -> str:
    """The group duplicates are looked for in: the same body legitimately appears in title_body and
    title_body_answer pairs."""
    return p.pair_type


class DedupAndDecontaminate(beam.PTransform):
    """Optional removal of duplicate and evaluation-overlapping pairs, per pair type.

    ``dedup`` is ``"none"``, ``"exact"`` or ``"near"`` (MinHash LSH); ``dedup_key`` is ``"pair"`` (all
    texts must match) or ``"either"`` (pairs sharing any text are one cluster). Pair types are
    deduplicated separately (``group_fn=pair_type``) by one dedup transform, so its graph is built
    once, not once per pair type; decontamination looks at each pair alone and needs no grouping.
    """

    def __init__(self, dedup: str, dedup_key: str, exclude: Sequence[str], exclude_ngram: int) -> None:
        super().__init__()
        # Built here, so that configuration errors (an --exclude matching nothing) stop the job at
        # start-up.
        self._steps: list[tuple[str, beam.PTransform]] = []
        if exclude:
            self._steps.append(("Decontaminate", Decontaminate(
                pair_texts, exclude, ngram=exclude_ngram, scope_fn=pair_scope, stage="decontaminate")))
        if dedup == "exact":
            self._steps.append(("ExactDedup", ExactDedup(
                pair_texts, mode=dedup_key, rank_fn=pair_rank, scope_fn=pair_scope, group_fn=pair_type,
                stage="dedup_exact")))
        elif dedup == "near":
            self._steps.append(("NearDedup", NearDedup(
                pair_texts, mode=dedup_key, rank_fn=pair_rank, scope_fn=pair_scope, group_fn=pair_type,
                stage="dedup_near")))

    def expand(self, pairs: beam.PCollection) -> Accounted:
        tallies, dead = [], []
        for name, step in self._steps:
            res = pairs | name >> step
            pairs = res.out
            tallies.append(res.tally)
            dead.append(res.dead_letter)
        if not tallies:
            empty = pairs.pipeline | "NoTallies" >> beam.Create([])
            return Accounted(pairs, empty, empty)
        return Accounted(pairs, tuple(tallies) | "Tallies" >> beam.Flatten(),
                         tuple(dead) | "DeadLetters" >> beam.Flatten())
