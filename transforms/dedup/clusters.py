"""One cluster per record across two dedup stages run one after the other."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from transforms.core.join import StreamingJoin, Tagged
from transforms.dedup.keys import ClusterMember, fingerprint


def _chain_members(item: tuple[str, dict[str, Tagged]]) -> Iterator[tuple[str, tuple[Any, bool]]]:
    """One first-stage cluster joined with its representative's second-stage cluster."""
    cid1, joined = item
    cid2, dup2 = joined["second"].first() or (cid1, False)
    for m in joined["first"]:
        yield cid2, (m.record, m.is_duplicate or dup2)


def _final_members(item: tuple[str, Iterable[tuple[Any, bool]]]) -> Iterator[ClusterMember]:
    cid, members = item
    size = sum(1 for _ in members)
    for record, is_dup in members:
        yield ClusterMember(record, cid, size, is_dup)


class ChainClusters(beam.PTransform):
    """Combines the clusters of two dedup stages run one after the other (say exact, then near on
    what exact kept) into one cluster per record: a record's final cluster is the second-stage
    cluster of its first-stage representative; it is a duplicate if either stage dropped it or its
    representative. Input: ``{"first": ClusterMembers, "second": ClusterMembers}``."""

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        kept_first = (
            inputs["first"]
            | "KeptFirst" >> beam.Filter(lambda m: not m.is_duplicate)
            | "KeptByPrint" >> beam.Map(lambda m: (fingerprint(m.record), m.cluster_id))
        )
        second_by_print = inputs["second"] | "SecondByPrint" >> beam.Map(
            lambda m: (fingerprint(m.record), (m.cluster_id, m.is_duplicate)))
        second_of_first = (
            {"cid1": kept_first, "second": second_by_print}
            | "JoinRepresentatives" >> beam.CoGroupByKey()
            | "ByFirstCluster" >> beam.FlatMap(
                lambda kv: [(cid1, s) for cid1 in kv[1]["cid1"] for s in kv[1]["second"]])
        )
        first_by_cluster = inputs["first"] | "FirstByCluster" >> beam.Map(lambda m: (m.cluster_id, m))
        return (
            {"first": first_by_cluster, "second": second_of_first}
            | "JoinClusters" >> StreamingJoin()
            | "ToSecondCluster" >> beam.FlatMap(_chain_members)
            | "GroupFinal" >> beam.GroupByKey()
            | "Members" >> beam.FlatMap(_final_members)
        )
