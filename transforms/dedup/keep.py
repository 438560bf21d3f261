"""Keying records by their graph nodes and keeping the best record of each cluster (Beam).

The shared machinery of ``ExactDedup`` and ``NearDedup``: ``KeyRecords`` reads each record's texts
once (and signs them for near dedup), ``KeepOnePerCluster`` groups members by cluster and keeps the
``better`` one, counting the others as filtered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from transforms.core.accounting import DEAD_LETTER, TALLY, AccountedDoFn, DeadLetter
from transforms.core.join import StreamingJoin, Tagged
from transforms.dedup import keys
from transforms.dedup.minhash import MinHasher


class KeyRecords(AccountedDoFn):
    """Reads each record's texts once and emits ``(nodes, Member)``; with a MinHasher also each
    node's ``(node, signature)`` on ``"signatures"`` and its ``(band key, node)`` on ``"bands"``
    (records with equal normalised texts repeat these; the consumers do not mind). Records without
    readable texts are dead-lettered here, under the same stage as the keep step, so that the
    stage balances. With ``group_fn`` nodes and band keys are taken within the record's group
    (``keys.in_group``)."""

    def __init__(self, stage: str, texts_fn: keys.TextsFn, mode: str, rank_fn: keys.RankFn | None,
                 scope_fn: keys.ScopeFn | None, case_fold: bool = False, hasher: MinHasher | None = None,
                 keep_shingles: bool = False, group_fn: keys.GroupFn | None = None) -> None:
        self.stage = stage
        self._texts_fn, self._mode, self._rank_fn, self._scope_fn = texts_fn, mode, rank_fn, scope_fn
        self._case_fold, self._hasher, self._keep_shingles = case_fold, hasher, keep_shingles
        self._group_fn = group_fn

    def _signed(self, normalized: list[str]) -> tuple[np.ndarray, bytes]:
        """The signature, and the payload verification needs: the signature's bytes, followed by the
        sorted unique shingle hashes when candidates are verified on the real shingles."""
        assert self._hasher is not None
        shingles = self._hasher.shingle_hashes(normalized)
        sig = self._hasher.signature_of_shingles(shingles)
        return sig, sig.tobytes() + (np.unique(shingles).tobytes() if self._keep_shingles else b"")

    def process(self, record: Any) -> Iterator[Any]:
        scope = "all"
        try:
            if self._scope_fn is not None:
                scope = str(self._scope_fn(record))
            texts = keys.record_texts(self._texts_fn, record, self._mode)
            rank = self._rank_fn(record) if self._rank_fn is not None else sum(len(t) for t in texts)
            group = None if self._group_fn is None else str(self._group_fn(record))
            fp = keys.fingerprint(record)
            if self._hasher is None:
                nodes = tuple(keys.in_group(n, group) for n in keys.exact_nodes(texts, self._mode, self._case_fold))
                signatures = []
            else:
                signed = [(keys.in_group(node, group), normalized)
                          for node, normalized in keys.near_nodes(texts, self._mode)]
                nodes = tuple(node for node, _ in signed)
                signatures = [(node, *self._signed(normalized)) for node, normalized in signed]
        except Exception as e:  # bad data must not crash the job: dead-letter it with the reason
            self.took_in(scope)
            yield self.dead_letter(scope, DeadLetter.make(
                self.stage, keys.BAD_TEXTS, record if isinstance(record, (bytes, str)) else repr(record),
                detail=f"{type(e).__name__}: {e}"))
            return
        for node, sig, payload in signatures:
            yield beam.pvalue.TaggedOutput("signatures", (node, payload))
            for key in self._hasher.band_keys(sig):
                yield beam.pvalue.TaggedOutput("bands", (keys.in_group(key, group), node))
        yield nodes, keys.Member(rank, fp, scope, record)


class _KeepBest(AccountedDoFn):
    """For one cluster (all its members), keeps the best member and filters the others. Emits the
    cluster's size on ``"sizes"`` and, if asked, every member with its cluster on ``"clusters"``."""

    def __init__(self, stage: str, reason: str, with_clusters: bool) -> None:
        self.stage, self._reason, self._with_clusters = stage, reason, with_clusters

    def process(self, item: tuple[bytes, Iterable[keys.Member]]) -> Iterator[Any]:
        yield from self._keep_best(*item)

    def _keep_best(self, label: bytes, members: Iterable[keys.Member]) -> Iterator[Any]:
        best: keys.Member | None = None
        size = 0
        for m in members:
            size += 1
            if best is None or keys.better(m, best):
                best = m
        cluster_id = label.hex()
        kept = False
        for m in members:
            self.took_in(m.scope)
            # Byte-identical records share a fingerprint: the first of them is kept, and which one
            # that is cannot show in the output.
            keep = not kept and m.fp == best.fp
            if keep:
                kept = True
                self.out(m.scope)
                yield m.record
            else:
                self.filtered(m.scope, self._reason)
            if self._with_clusters:
                yield beam.pvalue.TaggedOutput("clusters", keys.ClusterMember(m.record, cluster_id, size, not keep))
        yield beam.pvalue.TaggedOutput("sizes", size)


class _KeepBestOrRelabel(_KeepBest):
    """For one node joined with its component label: a node without a label (in no edge: most
    nodes) is a cluster of its own records, resolved right here; the records of a labelled node go
    to ``"relabeled"`` keyed by the label, to meet the rest of their cluster. This saves most records
    a second shuffle."""

    def process(self, item: tuple[bytes, dict[str, Tagged]]) -> Iterator[Any]:
        node, joined = item
        label = joined["label"].first()
        if label is not None:
            for m in joined["members"]:
                yield beam.pvalue.TaggedOutput("relabeled", (label, m))
        else:
            yield from self._keep_best(node, joined["members"])


class DedupResult(NamedTuple):
    """What ExactDedup and NearDedup return: ``Accounted``'s fields, then the optional outputs."""

    out: beam.PCollection
    tally: beam.PCollection
    dead_letter: beam.PCollection
    clusters: beam.PCollection | None
    stats: beam.PCollection


def _size_histogram(sizes: list[tuple[int, int]]) -> dict[str, Any]:
    hist = dict(sorted(sizes))
    return {
        "clusters": sum(hist.values()),
        "records": sum(s * n for s, n in hist.items()),
        "duplicates": sum((s - 1) * n for s, n in hist.items()),
        "cluster_sizes": {str(s): n for s, n in hist.items()},
    }


class KeepOnePerCluster(beam.PTransform):
    """Members keyed by their first node (a PCollection, or ``{"members": ..., "label": ...}`` with
    ``(node, label)`` component labels) -> members grouped by cluster -> the best kept. Returns a
    DedupResult whose stats are the cluster-size histogram."""

    def __init__(self, stage: str, reason: str, with_clusters: bool) -> None:
        super().__init__()
        self._stage, self._reason, self._with_clusters = stage, reason, with_clusters

    def expand(self, inputs: beam.PCollection | dict[str, beam.PCollection]) -> DedupResult:
        outputs = (TALLY, DEAD_LETTER, "sizes", "clusters")
        parts = []
        members = inputs
        if isinstance(inputs, dict):  # {"members": ..., "label": ...}
            joined = (
                inputs
                | "JoinLabels" >> StreamingJoin()
                | "KeepSingles" >> beam.ParDo(_KeepBestOrRelabel(self._stage, self._reason, self._with_clusters))
                .with_outputs(*outputs, "relabeled", main="out")
            )
            parts.append(joined)
            members = joined.relabeled
        parts.append(
            members
            | "GroupClusters" >> beam.GroupByKey()
            | "KeepBest" >> beam.ParDo(_KeepBest(self._stage, self._reason, self._with_clusters)).with_outputs(
                *outputs, main="out")
        )

        def merged(tag: str) -> beam.PCollection:
            return tuple(part[tag] for part in parts) | f"All{tag.title()}" >> beam.Flatten()

        res = {tag: merged(tag) for tag in ("out", *outputs)}
        stats = (
            res["sizes"]
            | "SizeOnes" >> beam.Map(lambda s: (s, 1))
            | "CountSizes" >> beam.CombinePerKey(sum)
            | "SizeList" >> beam.combiners.ToList()
            | "Histogram" >> beam.Map(_size_histogram)
        )
        return DedupResult(res["out"], res[TALLY], res[DEAD_LETTER],
                           res["clusters"] if self._with_clusters else None, stats)


def record_edges(item: tuple[tuple[bytes, ...], keys.Member]) -> Iterator[tuple[bytes, bytes]]:
    """In "either" mode, a record links all its texts' nodes."""
    nodes = item[0]
    for n in nodes[1:]:
        yield nodes[0], n


def first_node(item: tuple[tuple[bytes, ...], keys.Member]) -> tuple[bytes, keys.Member]:
    return item[0][0], item[1]


def flatten_accounting(*parts: Any) -> tuple[beam.PCollection, beam.PCollection]:
    tallies = tuple(p.tally for p in parts) | "AllTallies" >> beam.Flatten()
    letters = tuple(p.dead_letter for p in parts) | "AllDeadLetters" >> beam.Flatten()
    return tallies, letters


class Keyed(NamedTuple):
    out: beam.PCollection
    tally: beam.PCollection
    dead_letter: beam.PCollection
    signatures: beam.PCollection
    bands: beam.PCollection


def key_records(records: beam.PCollection, dofn: KeyRecords) -> Keyed:
    res = records | "Key" >> beam.ParDo(dofn).with_outputs(TALLY, DEAD_LETTER, "signatures", "bands", main="out")
    return Keyed(res.out, res[TALLY], res[DEAD_LETTER], res.signatures, res.bands)
