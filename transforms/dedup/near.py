"""Near-duplicate deduplication: MinHash LSH candidates, verified, clustered by connected components."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from specs.errors import ConfigError
from transforms.core.accounting import NAMESPACE
from transforms.core.components import ConnectedComponents
from transforms.core.join import StreamingJoin, Tagged
from transforms.dedup import keep
from transforms.dedup.keys import NEAR_DUPLICATE, VERIFY, GroupFn, RankFn, ScopeFn, TextsFn, check_mode
from transforms.dedup.minhash import MinHasher, estimated_jaccard, jaccard, lsh_params


def bucket_edges(item: tuple[bytes, Iterable[bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """The nodes sharing one LSH band key, linked as a star around the smallest: k - 1 candidate
    pairs for a bucket of k, not k(k-1)/2, and connectivity is all the clustering needs."""
    _, nodes = item
    first = min(nodes, default=None)
    for n in nodes:
        if n != first:  # a node repeated (records with equal texts) repeats its edge: made distinct later
            yield first, n


class _Verify(beam.DoFn):
    """Keeps candidate pairs whose similarity is at least ``threshold``: the fraction of agreeing
    permutations (``"signature"``), or the exact Jaccard of the shingle sets (``"shingles"``)."""

    def __init__(self, threshold: float, num_perm: int, on: str, stage: str) -> None:
        self._threshold, self._num_perm, self._on, self._stage = threshold, num_perm, on, stage

    def setup(self) -> None:
        self._verified = Metrics.counter(NAMESPACE, f"{self._stage}/verified_pairs")
        self._rejected = Metrics.counter(NAMESPACE, f"{self._stage}/rejected_pairs")

    def _similarity(self, a: bytes, b: bytes) -> float:
        k = 4 * self._num_perm
        if self._on == "shingles":
            return jaccard(np.frombuffer(a[k:], dtype=np.uint64), np.frombuffer(b[k:], dtype=np.uint64))
        return estimated_jaccard(np.frombuffer(a[:k], dtype=np.uint32), np.frombuffer(b[:k], dtype=np.uint32))

    def process(self, item: tuple[bytes, dict[str, Tagged]]) -> Iterator[tuple[bytes, bytes]]:
        _, joined = item
        payload_v = joined["sig"].first()
        if payload_v is None:
            return
        for u, payload_u in joined["edge"]:
            if self._similarity(payload_u, payload_v) >= self._threshold:
                self._verified.inc()
                yield u, item[0]
            else:
                self._rejected.inc()


def _attach_sig(item: tuple[bytes, dict[str, Tagged]]) -> Iterator[tuple[bytes, tuple[bytes, bytes]]]:
    u, joined = item
    sig = joined["sig"].first()
    if sig is not None:
        for v in joined["edge"]:
            yield v, (u, sig)


def _near_stats(base: dict[str, Any], candidates: int, verified: int, unconverged: int, rounds: int) -> dict[str, Any]:
    return {**base, "candidate_pairs": candidates, "verified_pairs": verified,
            "components_rounds": rounds, "components_unconverged_nodes": unconverged,
            "components_converged": unconverged == 0}


class NearDedup(beam.PTransform):
    """Keeps one record per cluster of near-duplicates (MinHash LSH); see ``transforms.dedup``'s docstring.

    Defaults: 128 permutations, 5-unit shingles, candidates verified at an estimated Jaccard of 0.8,
    8 rounds of connected components. Bands and rows, unless given, come from
    ``minhash.lsh_params(threshold, num_perm)``: 12 bands of 10 rows for 0.8 (pairs at Jaccard 0.78
    share a band with probability 0.5, at 0.9 with 0.994)."""

    def __init__(self, texts_fn: TextsFn, *, mode: str = "pair", rank_fn: RankFn | None = None,
                 scope_fn: ScopeFn | None = None, group_fn: GroupFn | None = None,
                 num_perm: int = 128, ngram: int = 5, bands: int | None = None,
                 rows: int | None = None, threshold: float | None = 0.8, verify: str = "signature", seed: int = 1,
                 cc_rounds: int = 8, with_clusters: bool = False, stage: str = "near_dedup") -> None:
        super().__init__()
        check_mode(mode)
        if verify not in VERIFY:
            raise ConfigError(f"near dedup: verify must be one of {', '.join(VERIFY)}, got {verify!r}")
        self._verify = verify
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ConfigError(f"near dedup: threshold must be in (0, 1], got {threshold}")
        try:
            if bands is None or rows is None:
                bands, rows = lsh_params(min(threshold or 0.8, 0.99), num_perm)
            self._hasher = MinHasher(num_perm=num_perm, ngram=ngram, bands=bands, rows=rows, seed=seed)
        except ValueError as e:
            raise ConfigError(f"near dedup: {e}") from None
        self._texts_fn, self._mode, self._rank_fn, self._scope_fn = texts_fn, mode, rank_fn, scope_fn
        self._group_fn = group_fn
        self._threshold, self._cc_rounds = threshold, cc_rounds
        self._with_clusters, self._stage = with_clusters, stage

    def expand(self, records: beam.PCollection) -> keep.DedupResult:
        keyed = keep.key_records(records, keep.KeyRecords(
            self._stage, self._texts_fn, self._mode, self._rank_fn, self._scope_fn,
            hasher=self._hasher, keep_shingles=self._verify == "shingles", group_fn=self._group_fn))
        signatures = keyed.signatures
        candidates = (
            keyed.bands
            | "GroupBuckets" >> beam.GroupByKey()
            | "BucketEdges" >> beam.FlatMap(bucket_edges)
            | "DistinctCandidates" >> beam.Distinct()
        )
        verified = candidates
        if self._threshold is not None:
            with_u = (
                {"edge": candidates, "sig": signatures}
                | "JoinFirstSig" >> StreamingJoin()
                | "AttachFirstSig" >> beam.FlatMap(_attach_sig)
            )
            verified = (
                {"edge": with_u, "sig": signatures}
                | "JoinSecondSig" >> StreamingJoin()
                | "VerifyPairs" >> beam.ParDo(
                    _Verify(self._threshold, self._hasher.num_perm, self._verify, self._stage))
            )
        edges = verified
        if self._mode == "either":
            linked = keyed.out | "RecordEdges" >> beam.FlatMap(keep.record_edges)
            edges = (edges, linked) | "AllEdges" >> beam.Flatten()
        components = edges | "Components" >> ConnectedComponents(self._cc_rounds, self._stage)
        members = keyed.out | "ByFirstNode" >> beam.Map(keep.first_node)
        kept = {"members": members, "label": components.labels} | "KeepOne" >> keep.KeepOnePerCluster(
            self._stage, NEAR_DUPLICATE, self._with_clusters)
        count = beam.combiners.Count.Globally
        stats = kept.stats | "NearStats" >> beam.Map(
            _near_stats,
            beam.pvalue.AsSingleton(candidates | "CountCandidates" >> count()),
            beam.pvalue.AsSingleton(verified | "CountVerified" >> count()),
            beam.pvalue.AsSingleton(components.unconverged),
            self._cc_rounds)
        tallies, letters = keep.flatten_accounting(keyed, kept)
        return keep.DedupResult(kept.out, tallies, letters, kept.clusters, stats)
