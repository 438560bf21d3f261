"""Exact deduplication: one record per group of equal normalised texts."""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from transforms.core.components import ConnectedComponents
from transforms.dedup import keep
from transforms.dedup.keys import EXACT_DUPLICATE, GroupFn, RankFn, ScopeFn, TextsFn, check_mode


class ExactDedup(beam.PTransform):
    """Keeps one record per group of records with equal normalised texts; see the module docstring."""

    def __init__(self, texts_fn: TextsFn, *, mode: str = "pair", rank_fn: RankFn | None = None,
                 scope_fn: ScopeFn | None = None, group_fn: GroupFn | None = None,
                 case_fold: bool = False, with_clusters: bool = False,
                 cc_rounds: int = 8, stage: str = "exact_dedup") -> None:
        super().__init__()
        check_mode(mode)
        self._texts_fn, self._mode, self._rank_fn, self._scope_fn = texts_fn, mode, rank_fn, scope_fn
        self._case_fold, self._with_clusters, self._cc_rounds, self._stage = case_fold, with_clusters, cc_rounds, stage
        self._group_fn = group_fn

    def expand(self, records: beam.PCollection) -> keep.DedupResult:
        keyed = keep.key_records(records, keep.KeyRecords(
            self._stage, self._texts_fn, self._mode, self._rank_fn, self._scope_fn, case_fold=self._case_fold,
            group_fn=self._group_fn))
        members: Any = keyed.out | "ByFirstNode" >> beam.Map(keep.first_node)
        if self._mode == "either":
            edges = keyed.out | "RecordEdges" >> beam.FlatMap(keep.record_edges)
            labels = (edges | "Components" >> ConnectedComponents(self._cc_rounds, self._stage)).labels
            members = {"members": members, "label": labels}
        kept = members | "KeepOne" >> keep.KeepOnePerCluster(self._stage, EXACT_DUPLICATE, self._with_clusters)
        tallies, letters = keep.flatten_accounting(keyed, kept)
        return keep.DedupResult(kept.out, tallies, letters, kept.clusters, kept.stats)
