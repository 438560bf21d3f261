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


class DedupAndDecontaminate(beam.PTransform):
    """Optional removal of duplicate and evaluation-overlapping pairs, per pair type.

    ``dedup`` is ``"none"``, ``"exact"`` or ``"near"`` (MinHash LSH); ``dedup_key`` is ``"pair"`` (all
    texts must match) or ``"either"`` (pairs sharing any text are one cluster). Pair types are
    deduplicated separately: the same body legitimately appears in title_body and title_body_answer.
    """

    def __init__(self, pair_types: Sequence[str], dedup: str, dedup_key: str, exclude: Sequence[str],
                 exclude_ngram: int) -> None:
        super().__init__()
        self._types = list(pair_types)
        # Built here, so that configuration errors (an --exclude matching nothing) stop the job at
        # start-up; each is applied once per pair type under its own label.
        self._steps: list[tuple[str, beam.PTransform]] = []
        if exclude:
            self._steps.append(("Decontaminate", Decontaminate(
                pair_texts, exclude, ngram=exclude_ngram, scope_fn=pair_scope, stage="decontaminate")))
        if dedup == "exact":
            self._steps.append(("ExactDedup", ExactDedup(
                pair_texts, mode=dedup_key, rank_fn=pair_rank, scope_fn=pair_scope, stage="dedup_exact")))
        elif dedup == "near":
            self._steps.append(("NearDedup", NearDedup(
                pair_texts, mode=dedup_key, rank_fn=pair_rank, scope_fn=pair_scope, stage="dedup_near")))

    def expand(self, pairs: beam.PCollection) -> Accounted:
        if not self._steps:
            empty = pairs.pipeline | "NoTallies" >> beam.Create([])
            return Accounted(pairs, empty, empty)
        types = self._types
        parts = pairs | "ByType" >> beam.Partition(lambda p, _: types.index(p.pair_type), len(types))
        outs, tallies, dead = [], [], []
        for t, part in zip(types, parts, strict=True):
            for name, step in self._steps:
                res = part | f"{name}[{t}]" >> step
                part = res.out
                tallies.append(res.tally)
                dead.append(res.dead_letter)
            outs.append(part)
        return Accounted(tuple(outs) | "Kept" >> beam.Flatten(), tuple(tallies) | "Tallies" >> beam.Flatten(),
                         tuple(dead) | "DeadLetters" >> beam.Flatten())
