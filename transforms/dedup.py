"""Deduplication on Beam: exact, near-duplicate (MinHash LSH) and evaluation-set decontamination.

Three composite transforms, each taking a ``PCollection`` of records of any picklable type ``T``
(dicts, tuples, dataclasses, raw bytes) and returning what an accounted stage returns (``out``,
``tally``, ``dead_letter``); the records themselves are never looked into except through the
functions given:

``ExactDedup(texts_fn, *, mode="pair", rank_fn=None, scope_fn=None, case_fold=False, with_clusters=False,
cc_rounds=8, stage="exact_dedup") -> DedupResult``
    Records whose normalised texts (``textnorm.exact_key_text``: NFC, optional case fold,
    punctuation and whitespace folded) are equal form a group; one record per group is kept.

``NearDedup(texts_fn, *, mode="pair", rank_fn=None, scope_fn=None, num_perm=128, ngram=5, bands=None,
rows=None, threshold=0.8, verify="signature", seed=1, cc_rounds=8, with_clusters=False,
stage="near_dedup") -> DedupResult``
    MinHash signatures over unit n-grams of ``textnorm.near_key_text``, candidate pairs from LSH
    bands, candidates verified at ``threshold`` by the signatures' Jaccard estimate, or with
    ``verify="shingles"`` by the exact Jaccard of the shingle sets (``threshold=None`` keeps every
    candidate), clusters as connected components of the verified pairs; one record per cluster is
    kept.

``Decontaminate(texts_fn, exclude_patterns, *, ngram=13, min_sentence_chars=20, scope_fn=None,
stage="decontaminate") -> Accounted``
    Drops records that share a normalised sentence, or a normalised text, or a unit ``ngram``-gram
    with any text of the evaluation files (plain text: one text per line; ``.jsonl``: every string
    value of each object).

Arguments shared by all three:

- ``texts_fn(record)`` returns the record's texts: one ``str`` (or UTF-8 ``bytes``), or a sequence.
- ``mode`` says what makes two records duplicates. ``"pair"``: all texts together (a translation pair
  is a duplicate only if both sides are). ``"one"``: ``texts_fn`` gives exactly one text. ``"either"``:
  records sharing ANY text (exact) or any near-duplicate text (near) are one group, transitively:
  groups are connected components, so (a, b), (b, c), (c, d) form one group.
- ``rank_fn(record)`` decides which record of a group is kept: the greatest rank wins (a score field,
  say); ties, and the default, go to the longest record (total characters of its texts), then to the
  smallest 128-bit fingerprint of the record's bytes (``bytes``/``str`` as they are, anything else
  pickled). The choice never depends on arrival order, bundling or runner. Records must therefore
  pickle deterministically (no ``set`` fields); byte-identical records are interchangeable.
- ``scope_fn(record)`` names the scope (usually the input file) the record is counted under in the
  run summary; default ``"all"``. Grouping is global across scopes.
- ``stage``: the accounting stage name. Dropped records are counted as filtered with reason
  ``"exact_duplicate"``, ``"near_duplicate"`` or ``"eval_overlap"``; a record whose texts cannot be
  read (``texts_fn`` or ``rank_fn`` raises, a text is neither str nor bytes) is dead-lettered with
  reason ``"bad_texts"``, so ``in == out + filtered + dead_lettered`` holds per scope.

``DedupResult`` has ``out``, ``tally`` and ``dead_letter`` like ``Accounted`` and adds ``clusters``
(with ``with_clusters=True``: every record that was not dead-lettered as a ``ClusterMember`` with its
``cluster_id``, ``cluster_size`` and ``is_duplicate``; else ``None``) and ``stats``, a one-element
PCollection holding a dict: the histogram of cluster sizes, and for near-dedup the candidate and
verified pair counts and the connected-components convergence check.

Scale: no step copies a group into memory. GroupByKey values are iterated (twice where the best
member must be found first; Dataflow pages them in), and joins go through ``StreamingJoin`` rather
than CoGroupByKey, which builds lists. The exceptions are small-star's set of one node's distinct
smaller neighbours, and decontamination's evaluation fingerprints (8 bytes per eval n-gram and
sentence), a side input on every worker.

Also here: ``ChainClusters`` (one cluster per record across two stages run one after the other),
and the record readers and writers of ``pipelines.dedup`` (JSONL lines, tf.Examples parsed without
TensorFlow).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from transforms import input_checks, textnorm
from transforms.accounting import (
    DEAD_LETTER,
    NAMESPACE,
    TALLY,
    Accounted,
    AccountedDoFn,
    DeadLetter,
    apply_accounted,
)
from transforms.errors import ConfigError
from transforms.files import ReadLineBatches, ReadTFRecords, match_files
from transforms.minhash import MinHasher, estimated_jaccard, jaccard, lsh_params, ngram_hashes, unit_hashes
from transforms.seeding import stable_hash64, stable_hash128

MODES = ("pair", "one", "either")
VERIFY = ("signature", "shingles")
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
EVAL_OVERLAP = "eval_overlap"
BAD_TEXTS = "bad_texts"

TextsFn = Callable[[Any], Any]
RankFn = Callable[[Any], Any]
ScopeFn = Callable[[Any], str]


# --- per-record functions (plain Python, tested without Beam) ----------------------------------

def record_texts(texts_fn: TextsFn, record: Any, mode: str) -> list[str]:
    """The record's texts as ``str``; raises (``TypeError``/``ValueError``) on data that has none."""
    value = texts_fn(record)
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        value = [value]
    texts = [textnorm.as_text(t) for t in value]
    if not texts:
        raise ValueError("texts_fn gave no text")
    if mode == "one" and len(texts) != 1:
        raise ValueError(f"mode 'one' needs exactly one text per record, texts_fn gave {len(texts)}")
    return texts


def fingerprint(record: Any) -> bytes:
    """128-bit fingerprint of a record's bytes: the final, content-only tie-break between records."""
    if isinstance(record, (bytes, bytearray)):
        data = bytes(record)
    elif isinstance(record, str):
        data = record.encode("utf-8")
    else:
        data = pickle.dumps(record, protocol=4)
    return stable_hash128(data)


def exact_nodes(texts: Sequence[str], mode: str, case_fold: bool = False) -> tuple[bytes, ...]:
    """The graph nodes of a record for exact dedup: one key for "pair"/"one"; for "either" one key
    per distinct non-empty normalised text (a record with only empty texts gets the empty key)."""
    keys = [textnorm.exact_key_text(t, case_fold) for t in texts]
    if mode != "either":
        return (stable_hash128("exact", *keys),)
    nodes = tuple(dict.fromkeys(stable_hash128("exact-text", k) for k in keys if k))
    return nodes or (stable_hash128("exact-text", ""),)


def near_nodes(texts: Sequence[str], mode: str) -> list[tuple[bytes, list[str]]]:
    """``(node, normalised texts to sign)`` per graph node of a record for near dedup: one node over
    all texts for "pair"/"one", one per distinct non-empty text for "either"."""
    normalized = [textnorm.near_key_text(t) for t in texts]
    if mode != "either":
        return [(stable_hash128("near", *normalized), normalized)]
    distinct = list(dict.fromkeys(n for n in normalized if n)) or [""]
    return [(stable_hash128("near-text", n), [n]) for n in distinct]


class Member(NamedTuple):
    """A record travelling through grouping, with what decides whether it is kept."""

    rank: Any
    fp: bytes
    scope: str
    record: Any


class ClusterMember(NamedTuple):
    """A record with its cluster: the optional "every record" output of the dedup transforms.

    ``cluster_id`` (32 hex digits) is the same for all members of a cluster and does not depend on
    which member is kept; ``is_duplicate`` is False for exactly one member, the kept one."""

    record: Any
    cluster_id: str
    cluster_size: int
    is_duplicate: bool


def better(a: Member, b: Member) -> bool:
    """True if ``a`` should be kept rather than ``b``: greater rank, then smaller fingerprint.

    Ranks that cannot be compared (a ``rank_fn`` that returns None for some records, say) must not
    crash the job: they are ordered by type name and ``repr`` instead, still deterministically."""
    try:
        if a.rank != b.rank:
            return bool(a.rank > b.rank)
    except TypeError:
        ka, kb = (type(a.rank).__name__, repr(a.rank)), (type(b.rank).__name__, repr(b.rank))
        if ka != kb:
            return ka > kb
    return a.fp < b.fp


# --- connected components ------------------------------------------------------------------------

def _canonical(edge: tuple[bytes, bytes]) -> Iterator[tuple[bytes, bytes]]:
    u, v = edge
    if u != v:
        yield (u, v) if u < v else (v, u)


def _both_ways(edge: tuple[bytes, bytes]) -> Iterator[tuple[bytes, bytes]]:
    yield edge
    yield edge[1], edge[0]


def large_star(item: tuple[bytes, Iterable[bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """Kiveris et al. (2014) large-star: link every larger neighbour of ``u`` to the smallest node of
    ``u``'s closed neighbourhood. Two passes over the neighbours, nothing stored."""
    u, neighbours = item
    m = min(neighbours, default=u)
    m = min(m, u)
    for v in neighbours:
        if v > u:
            yield (m, v)


def small_star(item: tuple[bytes, Iterable[bytes]]) -> Iterator[tuple[bytes, bytes]]:
    """Small-star, for node ``u`` and its smaller neighbours: link them and ``u`` to the smallest.

    The neighbours arrive with repeats (large-star emits one edge per occurrence); they are made
    distinct here, in memory proportional to ``u``'s degree, instead of by a shuffle per step."""
    u, smaller = item
    distinct = set(smaller)
    m = min(distinct)
    for v in sorted(distinct):
        if v != m:
            yield (m, v)
    yield (m, u)


def star_labels(item: tuple[bytes, Iterable[tuple[bool, bytes]]]) -> Iterator[tuple[bytes, bytes] | Any]:
    """For one node of the final edge set ``(center, leaf)``: its label, and whether the star-forest
    property that marks convergence fails at it (a leaf with two centres, or a leaf that is itself a
    centre). Emits ``(node, label)`` and, if unconverged, a tagged 1."""
    node, roles = item
    centres: set[bytes] = set()
    is_centre = False
    for as_leaf, other in roles:
        if as_leaf:
            centres.add(other)
        else:
            is_centre = True
    yield (node, min(centres) if centres else node)
    if centres and (is_centre or len(centres) > 1):
        yield beam.pvalue.TaggedOutput("unconverged", 1)


class ComponentLabels(NamedTuple):
    labels: beam.PCollection  # (node, label) for every node that has an edge
    unconverged: beam.PCollection  # one int: nodes where the star-forest check failed (0 = converged)


class ConnectedComponents(beam.PTransform):
    """Connected components of an undirected graph given as ``(u, v)`` edges of bytes node ids.

    ``rounds`` unrolled rounds of large-star then small-star (Kiveris et al., "Connected Components
    in MapReduce and Beyond", 2014): two GroupByKeys per round, edges made distinct in the
    small-star step (a repeated edge only costs its copies, never changes the result). Every component
    then is a star around its smallest node, which becomes its label. The rounds are fixed (a Beam
    graph has no loops); the result is checked: the number of nodes where the star-forest property
    fails is output (0 when converged), logged as a warning and counted as
    ``polyembed/<stage>/components_not_converged``. An unconverged result can split a component,
    never merge two, so duplicates can only be kept too often, never removed wrongly.
    """

    def __init__(self, rounds: int = 8, stage: str = "components") -> None:
        super().__init__()
        if rounds < 1:
            raise ConfigError(f"connected components need at least 1 round, got {rounds}")
        self._rounds = rounds
        self._stage = stage

    def expand(self, edges: beam.PCollection) -> ComponentLabels:
        edges = edges | "Canonical" >> beam.FlatMap(_canonical) | "Distinct" >> beam.Distinct()
        for r in range(self._rounds):
            edges = (
                edges
                | f"LargeStarEmit{r}" >> beam.FlatMap(_both_ways)
                | f"LargeStarGroup{r}" >> beam.GroupByKey()
                | f"LargeStar{r}" >> beam.FlatMap(large_star)
                | f"SmallStarEmit{r}" >> beam.Map(lambda e: (e[1], e[0]))
                | f"SmallStarGroup{r}" >> beam.GroupByKey()
                | f"SmallStar{r}" >> beam.FlatMap(small_star)
            )
        checked = (
            edges
            | "Roles" >> beam.FlatMap(lambda e: [(e[1], (True, e[0])), (e[0], (False, b""))])
            | "GroupRoles" >> beam.GroupByKey()
            | "Labels" >> beam.FlatMap(star_labels).with_outputs("unconverged", main="labels")
        )
        unconverged = (
            checked.unconverged
            | "CountUnconverged" >> beam.CombineGlobally(sum)
            | "Report" >> beam.Map(_report_convergence, self._stage, self._rounds)
        )
        return ComponentLabels(checked.labels, unconverged)


def _report_convergence(n: int, stage: str, rounds: int) -> int:
    if n:
        Metrics.counter(NAMESPACE, f"{stage}/components_not_converged").inc(n)
        logging.warning("%s: connected components did not converge in %d rounds at %d nodes; some "
                        "clusters may be split (raise the number of rounds)", stage, rounds, n)
    return n


# --- keying and keeping one per cluster -----------------------------------------------------------

class _KeyRecords(AccountedDoFn):
    """Reads each record's texts once and emits ``(nodes, Member)``; with a MinHasher also each
    node's ``(node, signature)`` on ``"signatures"`` and its ``(band key, node)`` on ``"bands"``
    (records with equal normalised texts repeat these; the consumers do not mind). Records without
    readable texts are dead-lettered here, under the same stage as the keep step, so that the
    stage balances."""

    def __init__(self, stage: str, texts_fn: TextsFn, mode: str, rank_fn: RankFn | None,
                 scope_fn: ScopeFn | None, case_fold: bool = False, hasher: MinHasher | None = None,
                 keep_shingles: bool = False) -> None:
        self.stage = stage
        self._texts_fn, self._mode, self._rank_fn, self._scope_fn = texts_fn, mode, rank_fn, scope_fn
        self._case_fold, self._hasher, self._keep_shingles = case_fold, hasher, keep_shingles

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
            texts = record_texts(self._texts_fn, record, self._mode)
            rank = self._rank_fn(record) if self._rank_fn is not None else sum(len(t) for t in texts)
            if self._hasher is None:
                nodes = exact_nodes(texts, self._mode, self._case_fold)
                signatures = []
            else:
                signed = near_nodes(texts, self._mode)
                nodes = tuple(node for node, _ in signed)
                signatures = [(node, *self._signed(normalized)) for node, normalized in signed]
        except Exception as e:  # bad data must not crash the job: dead-letter it with the reason
            self.took_in(scope)
            yield self.dead_letter(scope, DeadLetter.make(
                self.stage, BAD_TEXTS, record if isinstance(record, (bytes, str)) else repr(record),
                detail=f"{type(e).__name__}: {e}"))
            return
        for node, sig, payload in signatures:
            yield beam.pvalue.TaggedOutput("signatures", (node, payload))
            for key in self._hasher.band_keys(sig):
                yield beam.pvalue.TaggedOutput("bands", (key, node))
        yield nodes, Member(rank, fingerprint(record), scope, record)


class _KeepBest(AccountedDoFn):
    """For one cluster (all its members), keeps the best member and filters the others. Emits the
    cluster's size on ``"sizes"`` and, if asked, every member with its cluster on ``"clusters"``."""

    def __init__(self, stage: str, reason: str, with_clusters: bool) -> None:
        self.stage, self._reason, self._with_clusters = stage, reason, with_clusters

    def process(self, item: tuple[bytes, Iterable[Member]]) -> Iterator[Any]:
        yield from self._keep_best(*item)

    def _keep_best(self, label: bytes, members: Iterable[Member]) -> Iterator[Any]:
        best: Member | None = None
        size = 0
        for m in members:
            size += 1
            if best is None or better(m, best):
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
                yield beam.pvalue.TaggedOutput("clusters", ClusterMember(m.record, cluster_id, size, not keep))
        yield beam.pvalue.TaggedOutput("sizes", size)


class _Tagged:
    """The values of one tag in a grouped tagged union, re-iterable without being copied (on
    Dataflow a GroupByKey's values are paged in, so a group never has to fit in memory)."""

    def __init__(self, values: Iterable[tuple[str, Any]], tag: str) -> None:
        self._values, self._tag = values, tag

    def __iter__(self) -> Iterator[Any]:
        return (v for t, v in self._values if t == self._tag)

    def first(self) -> Any:
        return next(iter(self), None)


class StreamingJoin(beam.PTransform):
    """``{tag: PCollection[(key, value)]}`` -> ``(key, {tag: _Tagged})`` by one GroupByKey.

    Like CoGroupByKey, except that nothing is copied into per-tag lists (Beam Python's CoGroupByKey
    builds them): a key with a million values (a boilerplate text's records, a hub node's edges)
    costs no memory. Consumers iterate a tag's values as often as they need."""

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        tags = sorted(inputs)
        tagged = tuple(inputs[t] | f"Tag{t.title()}" >> beam.Map(lambda kv, t=t: (kv[0], (t, kv[1]))) for t in tags)
        return (
            tagged
            | "Union" >> beam.Flatten()
            | "Group" >> beam.GroupByKey()
            | "Split" >> beam.Map(lambda kv: (kv[0], {t: _Tagged(kv[1], t) for t in tags}))
        )


class _KeepBestOrRelabel(_KeepBest):
    """For one node joined with its component label: a node without a label (in no edge: most
    nodes) is a cluster of its own records, resolved right here; the records of a labelled node go
    to ``"relabeled"`` keyed by the label, to meet the rest of their cluster. This saves most records
    a second shuffle."""

    def process(self, item: tuple[bytes, dict[str, _Tagged]]) -> Iterator[Any]:
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


class _KeepOnePerCluster(beam.PTransform):
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


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"dedup mode must be one of {', '.join(MODES)}, got {mode!r}")


def _record_edges(item: tuple[tuple[bytes, ...], Member]) -> Iterator[tuple[bytes, bytes]]:
    """In "either" mode, a record links all its texts' nodes."""
    nodes = item[0]
    for n in nodes[1:]:
        yield nodes[0], n


def _first_node(item: tuple[tuple[bytes, ...], Member]) -> tuple[bytes, Member]:
    return item[0][0], item[1]


def _flatten_accounting(*parts: Any) -> tuple[beam.PCollection, beam.PCollection]:
    tallies = tuple(p.tally for p in parts) | "AllTallies" >> beam.Flatten()
    letters = tuple(p.dead_letter for p in parts) | "AllDeadLetters" >> beam.Flatten()
    return tallies, letters


class _Keyed(NamedTuple):
    out: beam.PCollection
    tally: beam.PCollection
    dead_letter: beam.PCollection
    signatures: beam.PCollection
    bands: beam.PCollection


def _key(records: beam.PCollection, dofn: _KeyRecords) -> _Keyed:
    res = records | "Key" >> beam.ParDo(dofn).with_outputs(TALLY, DEAD_LETTER, "signatures", "bands", main="out")
    return _Keyed(res.out, res[TALLY], res[DEAD_LETTER], res.signatures, res.bands)


class ExactDedup(beam.PTransform):
    """Keeps one record per group of records with equal normalised texts; see the module docstring."""

    def __init__(self, texts_fn: TextsFn, *, mode: str = "pair", rank_fn: RankFn | None = None,
                 scope_fn: ScopeFn | None = None, case_fold: bool = False, with_clusters: bool = False,
                 cc_rounds: int = 8, stage: str = "exact_dedup") -> None:
        super().__init__()
        _check_mode(mode)
        self._texts_fn, self._mode, self._rank_fn, self._scope_fn = texts_fn, mode, rank_fn, scope_fn
        self._case_fold, self._with_clusters, self._cc_rounds, self._stage = case_fold, with_clusters, cc_rounds, stage

    def expand(self, records: beam.PCollection) -> DedupResult:
        keyed = _key(records, _KeyRecords(self._stage, self._texts_fn, self._mode, self._rank_fn, self._scope_fn,
                                          case_fold=self._case_fold))
        members: Any = keyed.out | "ByFirstNode" >> beam.Map(_first_node)
        if self._mode == "either":
            edges = keyed.out | "RecordEdges" >> beam.FlatMap(_record_edges)
            labels = (edges | "Components" >> ConnectedComponents(self._cc_rounds, self._stage)).labels
            members = {"members": members, "label": labels}
        kept = members | "KeepOne" >> _KeepOnePerCluster(self._stage, EXACT_DUPLICATE, self._with_clusters)
        tallies, letters = _flatten_accounting(keyed, kept)
        return DedupResult(kept.out, tallies, letters, kept.clusters, kept.stats)


# --- near duplicates -------------------------------------------------------------------------------

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

    def process(self, item: tuple[bytes, dict[str, _Tagged]]) -> Iterator[tuple[bytes, bytes]]:
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


def _attach_sig(item: tuple[bytes, dict[str, _Tagged]]) -> Iterator[tuple[bytes, tuple[bytes, bytes]]]:
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
    """Keeps one record per cluster of near-duplicates (MinHash LSH); see the module docstring.

    Defaults: 128 permutations, 5-unit shingles, candidates verified at an estimated Jaccard of 0.8,
    8 rounds of connected components. Bands and rows, unless given, come from
    ``minhash.lsh_params(threshold, num_perm)``: 12 bands of 10 rows for 0.8 (pairs at Jaccard 0.78
    share a band with probability 0.5, at 0.9 with 0.994)."""

    def __init__(self, texts_fn: TextsFn, *, mode: str = "pair", rank_fn: RankFn | None = None,
                 scope_fn: ScopeFn | None = None, num_perm: int = 128, ngram: int = 5, bands: int | None = None,
                 rows: int | None = None, threshold: float | None = 0.8, verify: str = "signature", seed: int = 1,
                 cc_rounds: int = 8, with_clusters: bool = False, stage: str = "near_dedup") -> None:
        super().__init__()
        _check_mode(mode)
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
        self._threshold, self._cc_rounds = threshold, cc_rounds
        self._with_clusters, self._stage = with_clusters, stage

    def expand(self, records: beam.PCollection) -> DedupResult:
        keyed = _key(records, _KeyRecords(self._stage, self._texts_fn, self._mode, self._rank_fn, self._scope_fn,
                                          hasher=self._hasher, keep_shingles=self._verify == "shingles"))
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
            record_edges = keyed.out | "RecordEdges" >> beam.FlatMap(_record_edges)
            edges = (edges, record_edges) | "AllEdges" >> beam.Flatten()
        components = edges | "Components" >> ConnectedComponents(self._cc_rounds, self._stage)
        members = keyed.out | "ByFirstNode" >> beam.Map(_first_node)
        kept = {"members": members, "label": components.labels} | "KeepOne" >> _KeepOnePerCluster(
            self._stage, NEAR_DUPLICATE, self._with_clusters)
        count = beam.combiners.Count.Globally
        stats = kept.stats | "NearStats" >> beam.Map(
            _near_stats,
            beam.pvalue.AsSingleton(candidates | "CountCandidates" >> count()),
            beam.pvalue.AsSingleton(verified | "CountVerified" >> count()),
            beam.pvalue.AsSingleton(components.unconverged),
            self._cc_rounds)
        tallies, letters = _flatten_accounting(keyed, kept)
        return DedupResult(kept.out, tallies, letters, kept.clusters, stats)


# --- decontamination --------------------------------------------------------------------------------

_SENTENCE_TAG = "eval-sentence"
_NGRAM_SALT = 0x5EED_DEC0


def overlap_fingerprints(text: str, ngram: int, min_sentence_chars: int) -> np.ndarray:
    """The 64-bit fingerprints two texts are compared by: the normalised whole text (on the eval side
    always; on the training side too, so a short training text equal to an eval text matches),
    normalised sentences of at least ``min_sentence_chars`` characters, and unit ``ngram``-grams."""
    whole = textnorm.near_key_text(text)
    sentences = {whole} if whole else set()
    for s in textnorm.split_sentences(text):
        n = textnorm.near_key_text(s)
        if len(n) >= min_sentence_chars:
            sentences.add(n)
    fixed = np.array(sorted(stable_hash64(_SENTENCE_TAG, s) for s in sentences), dtype=np.uint64)
    grams = ngram_hashes(unit_hashes(whole), ngram, salt=_NGRAM_SALT, whole_if_short=False)
    return np.concatenate([fixed, grams])


def eval_texts(path: str, line: bytes) -> list[str]:
    """Texts of one line of an evaluation file: the line itself, or for ``.jsonl`` files every string
    value in the JSON object (a line that is not JSON counts as text)."""
    text = line.decode("utf-8", errors="replace").strip()
    if path.endswith((".jsonl", ".jsonl.gz", ".jsonl.bz2")) and text:
        import json

        try:
            value = json.loads(text)
        except ValueError:
            return [text]
        out: list[str] = []
        stack = [value]
        while stack:
            v = stack.pop()
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, dict):
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
        return out
    return [text] if text else []


class _UnionFingerprints(beam.CombineFn):
    """Union of uint64 arrays as one sorted unique array, compacted as it grows."""

    def create_accumulator(self) -> list[np.ndarray]:
        return []

    def add_input(self, acc: list[np.ndarray], arr: np.ndarray) -> list[np.ndarray]:
        acc.append(arr)
        if sum(len(a) for a in acc) > 1 << 20:
            acc[:] = [np.unique(np.concatenate(acc))]
        return acc

    def merge_accumulators(self, accs: Iterable[list[np.ndarray]]) -> list[np.ndarray]:
        merged = [a for acc in accs for a in acc]
        return [np.unique(np.concatenate(merged))] if merged else []

    def extract_output(self, acc: list[np.ndarray]) -> np.ndarray:
        return np.unique(np.concatenate(acc)) if acc else np.empty(0, dtype=np.uint64)


class _DropOverlap(AccountedDoFn):
    def __init__(self, stage: str, texts_fn: TextsFn, scope_fn: ScopeFn | None, ngram: int,
                 min_sentence_chars: int) -> None:
        self.stage = stage
        self._texts_fn, self._scope_fn, self._ngram, self._min = texts_fn, scope_fn, ngram, min_sentence_chars

    def process(self, record: Any, index: np.ndarray) -> Iterator[Any]:
        scope = "all"
        try:
            if self._scope_fn is not None:
                scope = str(self._scope_fn(record))
            texts = record_texts(self._texts_fn, record, "pair")
            prints = np.concatenate([overlap_fingerprints(t, self._ngram, self._min) for t in texts])
        except Exception as e:  # bad data must not crash the job
            self.took_in(scope)
            yield self.dead_letter(scope, DeadLetter.make(
                self.stage, BAD_TEXTS, record if isinstance(record, (bytes, str)) else repr(record),
                detail=f"{type(e).__name__}: {e}"))
            return
        self.took_in(scope)
        if len(index) and len(prints):
            pos = np.searchsorted(index, prints)
            if np.any(index[np.minimum(pos, len(index) - 1)] == prints):
                self.filtered(scope, EVAL_OVERLAP)
                return
        self.out(scope)
        yield record


class Decontaminate(beam.PTransform):
    """Drops records overlapping the evaluation files; see the module docstring. The files are
    matched at construction (a pattern matching nothing is a ``ConfigError`` naming ``flag``)."""

    def __init__(self, texts_fn: TextsFn, exclude_patterns: Sequence[str], *, ngram: int = 13,
                 min_sentence_chars: int = 20, scope_fn: ScopeFn | None = None, stage: str = "decontaminate",
                 flag: str = "--exclude") -> None:
        super().__init__()
        if ngram < 1 or ngram > 64:
            raise ConfigError(f"{flag}: the n-gram size must be in 1..64, got {ngram}")
        self._paths = match_files(exclude_patterns, flag)
        self._texts_fn, self._scope_fn, self._ngram, self._min, self._stage = (
            texts_fn, scope_fn, ngram, min_sentence_chars, stage)

    def expand(self, records: beam.PCollection) -> Accounted:
        ngram, min_chars = self._ngram, self._min
        eval_lines = records.pipeline | "EvalFiles" >> ReadLineBatches(self._paths)
        index = (
            eval_lines.out
            | "EvalFingerprints" >> beam.Map(lambda b: np.concatenate(
                [np.empty(0, dtype=np.uint64)]
                + [overlap_fingerprints(t, ngram, min_chars) for _, line in b.lines
                   for t in eval_texts(b.path, line)]))
            | "EvalIndex" >> beam.CombineGlobally(_UnionFingerprints())
        )
        kept = apply_accounted(records, "DropEvalOverlap",
                               _DropOverlap(self._stage, self._texts_fn, self._scope_fn, ngram, min_chars),
                               beam.pvalue.AsSingleton(index))
        # The evaluation files are inputs too: their read_input stage is accounted in the summary.
        return Accounted(kept.out, (eval_lines.tally, kept.tally) | "Tallies" >> beam.Flatten(),
                         (eval_lines.dead_letter, kept.dead_letter) | "DeadLetters" >> beam.Flatten())


# --- clusters across two dedup stages -------------------------------------------------------------------

def _chain_members(item: tuple[str, dict[str, _Tagged]]) -> Iterator[tuple[str, tuple[Any, bool]]]:
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


# --- the records of the dedup job: JSONL lines and tf.Examples, kept byte for byte ---------------------

JSONL, TFRECORD = "jsonl", "tfrecord"
READ_STAGE = "read"


class JobRecord(NamedTuple):
    """One input record of ``pipelines.dedup``: its bytes exactly as read, and what dedup needs."""

    source: str  # the input file (the accounting scope)
    offset: int  # byte offset of a JSONL line; -1 for TFRecords (Beam's reader gives no position)
    raw: bytes  # the JSON line, or the serialised tf.Example
    texts: tuple[str, ...]
    rank: float | None  # the --rank_field value, None without one


class BadRecordError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


def input_format(paths: Sequence[str], requested: str = "auto") -> str:
    """The format of the input files: ``requested`` if given, else from the names (all alike)."""
    if requested in (JSONL, TFRECORD):
        return requested
    if requested != "auto":
        raise ConfigError(f"--format must be auto, {JSONL} or {TFRECORD}, not {requested!r}")
    found = set()
    for p in paths:
        name = p.rsplit("/", 1)[-1]
        if ".tfrecord" in name or ".tfrec" in name:
            found.add(TFRECORD)
        elif ".jsonl" in name or ".json" in name:
            found.add(JSONL)
        else:
            raise ConfigError(f"--input: cannot tell the format of {p!r} from its name; pass --format")
    if len(found) > 1:
        raise ConfigError("--input: mixes JSONL and TFRecord files; run them separately")
    return found.pop()


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise BadRecordError("missing_field", f"no field {dotted!r}")
        obj = obj[part]
    return obj


def _rank_value(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRecordError("bad_rank_field", f"{field!r} is {type(value).__name__}, not a number")
    return float(value)


def record_from_json(source: str, offset: int, line: bytes, text_fields: Sequence[str],
                     rank_field: str | None) -> JobRecord:
    """A JSONL line as a JobRecord; raises BadRecordError (reason ``bad_json``, ``missing_field``,
    ``bad_text_field``, ``bad_rank_field``)."""
    import json

    try:
        obj = json.loads(line)
    except ValueError as e:
        raise BadRecordError("bad_json", str(e)) from None
    texts = []
    for f in text_fields:
        value = _lookup(obj, f)
        if not isinstance(value, str):
            raise BadRecordError("bad_text_field", f"{f!r} is {type(value).__name__}, not a string")
        texts.append(value)
    rank = _rank_value(_lookup(obj, rank_field), rank_field) if rank_field else None
    return JobRecord(source, offset, line, tuple(texts), rank)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise BadRecordError("bad_example", "truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BadRecordError("bad_example", "varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """Protobuf wire fields of a message: ``(number, wire_type, value)``; LEN values as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(data, pos)
            if pos + n > len(data):
                raise BadRecordError("bad_example", "truncated field")
            value, pos = data[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise BadRecordError("bad_example", f"unsupported wire type {wire}")
        yield number, wire, value


def parse_example(raw: bytes) -> dict[str, list[Any]]:
    """A serialised ``tf.train.Example`` as ``{name: values}`` without TensorFlow: bytes features as
    bytes, int64 as int, float as float. Repeated ``features`` messages merge, as in protobuf."""
    import struct

    out: dict[str, list[Any]] = {}
    for number, wire, features in _fields(raw):
        if number != 1 or wire != 2:
            continue
        for fnum, fwire, entry in _fields(features):
            if fnum != 1 or fwire != 2:
                continue
            name, feature = "", b""
            for enum, _, v in _fields(entry):
                if enum == 1:
                    name = v.decode("utf-8", errors="replace")
                elif enum == 2:
                    feature = v
            values: list[Any] = []
            for kind, _, lst in _fields(feature):
                for _, vwire, v in _fields(lst):
                    if kind == 1:
                        values.append(bytes(v))
                    elif kind == 2:
                        values.extend(struct.unpack(f"<{len(v) // 4}f", v) if vwire == 2 else struct.unpack("<f", v))
                    elif kind == 3:
                        if vwire == 2:
                            pos = 0
                            while pos < len(v):
                                n, pos = _varint(v, pos)
                                values.append(n - (1 << 64) if n >= 1 << 63 else n)
                        else:
                            values.append(v - (1 << 64) if v >= 1 << 63 else v)
            out[name] = values
    return out


def record_from_example(source: str, raw: bytes, text_fields: Sequence[str], rank_field: str | None) -> JobRecord:
    """A serialised tf.Example as a JobRecord: each text field a bytes feature with one value."""
    features = parse_example(raw)
    texts = []
    for f in text_fields:
        values = features.get(f)
        if values is None:
            raise BadRecordError("missing_field", f"no feature {f!r}")
        if len(values) != 1 or not isinstance(values[0], bytes):
            raise BadRecordError("bad_text_field", f"feature {f!r} is not one bytes value")
        error = input_checks.utf8_error(values[0], f"feature {f!r}")
        if error:
            raise BadRecordError(input_checks.INVALID_UTF8, error)
        texts.append(values[0].decode("utf-8"))
    rank = None
    if rank_field:
        values = features.get(rank_field)
        if not values or len(values) != 1:
            raise BadRecordError("missing_field" if not values else "bad_rank_field", f"feature {rank_field!r}")
        rank = _rank_value(values[0], rank_field)
    return JobRecord(source, -1, raw, tuple(texts), rank)


class _ParseJsonl(AccountedDoFn):
    stage = READ_STAGE

    def __init__(self, text_fields: Sequence[str], rank_field: str | None) -> None:
        self._fields, self._rank = tuple(text_fields), rank_field

    def process(self, batch: Any) -> Iterator[Any]:
        for offset, line in batch.lines:
            self.took_in(batch.path)
            if not line.strip():
                self.filtered(batch.path, "blank_line")
                continue
            try:
                record = record_from_json(batch.path, offset, line, self._fields, self._rank)
            except BadRecordError as e:
                yield self.dead_letter(batch.path, DeadLetter.make(
                    self.stage, e.reason, line, source=batch.path, offset=offset, detail=str(e)))
                continue
            self.out(batch.path)
            yield record


class _ParseExamples(AccountedDoFn):
    stage = READ_STAGE

    def __init__(self, text_fields: Sequence[str], rank_field: str | None) -> None:
        self._fields, self._rank = tuple(text_fields), rank_field

    def process(self, item: tuple[str, bytes]) -> Iterator[Any]:
        path, raw = item
        self.took_in(path)
        try:
            record = record_from_example(path, raw, self._fields, self._rank)
        except BadRecordError as e:
            yield self.dead_letter(path, DeadLetter.make(self.stage, e.reason, repr(raw), source=path,
                                                         detail=str(e)))
            return
        self.out(path)
        yield record


class ReadDedupInput(beam.PTransform):
    """Reads JSONL (splittably, with byte offsets) or TFRecord files of tf.Examples as JobRecords;
    blank JSONL lines are filtered, unreadable records dead-lettered (stage ``read``)."""

    def __init__(self, paths: Sequence[str], fmt: str, text_fields: Sequence[str], rank_field: str | None) -> None:
        super().__init__()
        self._paths, self._fmt, self._fields, self._rank = list(paths), fmt, list(text_fields), rank_field

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        if self._fmt == JSONL:
            read = pbegin | "ReadLines" >> ReadLineBatches(self._paths)
            parsed = apply_accounted(read.out, "ParseJsonl", _ParseJsonl(self._fields, self._rank))
        else:
            read = pbegin | "ReadTFRecords" >> ReadTFRecords(self._paths)
            parsed = apply_accounted(read.out, "ParseExamples", _ParseExamples(self._fields, self._rank))
        return Accounted(parsed.out, (read.tally, parsed.tally) | "Tallies" >> beam.Flatten(),
                         (read.dead_letter, parsed.dead_letter) | "DeadLetters" >> beam.Flatten())


def record_sort_key(record: JobRecord) -> bytes:
    """Output order within a shard: input order for JSONL, a content hash for TFRecords."""
    if record.offset >= 0:
        return record.source.encode("utf-8") + b"\0" + record.offset.to_bytes(8, "big")
    return record.source.encode("utf-8") + b"\1" + fingerprint(record.raw)


def clustered_json(member: ClusterMember) -> bytes:
    """A JSONL record with ``cluster_id``, ``cluster_size`` and ``is_duplicate`` added to its object."""
    import json

    obj = json.loads(member.record.raw)
    obj.update(cluster_id=member.cluster_id, cluster_size=member.cluster_size, is_duplicate=member.is_duplicate)
    return json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8")


def clustered_example(member: ClusterMember) -> bytes:
    """A tf.Example with ``cluster_id``, ``cluster_size`` and ``is_duplicate`` features added: the
    record's bytes followed by a second ``features`` field, which protobuf parsers merge."""
    from specs import encode_example

    return member.record.raw + encode_example({
        "cluster_id": ("bytes", member.cluster_id), "cluster_size": ("int64", member.cluster_size),
        "is_duplicate": ("int64", int(member.is_duplicate))})
