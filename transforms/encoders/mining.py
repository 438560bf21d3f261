"""``MinePairs``: bitext mined out of two monolingual corpora with a sentence encoder (the LASER/CCMatrix
recipe: exact k nearest neighbours both ways, the ratio margin of Artetxe & Schwenk 2019, a threshold).

The steps, and why:

1. Every line of each side is normalised (``nfc_single_spaced``); an empty one is filtered (``empty``)
   and exact duplicates on a side are mined once (the copy kept is the first by file and byte offset;
   the others are filtered as ``duplicate``), stage ``mine_sentences``, one scope per side.
2. The distinct sentences are embedded as ``ScorePairs`` embeds texts (``EmbedBuckets``: buckets of
   ``EMBED_BUCKET_SIZE`` sentences by a content hash, each bucket's sorted texts in fixed chunks, one model
   call each), so a sentence's embedding is the same bytes on every run and whatever ``block_size`` is.
3. Each side's sentences go to ``ceil(n / block_size)`` blocks by a content hash. Every (source block,
   target block) pair is one unit of work (CoGroupByKey on the block pair): ``block_neighbours`` gives
   each source its k nearest targets in the target block and each target its k nearest sources. A worker
   holds two blocks of embeddings and one block x block float32 cosine matrix, never a whole corpus.
4. ``MergeNeighbours`` (a CombineFn) merges a sentence's per-block lists into its k nearest overall.
   Ties are broken by the other sentence, a total order, so the merge order does not matter.
5. Each sentence's k-NN mean cosine (``margin.neighbour_means``), then each sentence's best candidate by
   ratio margin (``margin.ratio``) among its k neighbours, both ways.
6. Stage ``mine_pairs`` (the accounting unit: the distinct source sentences): a source's best target
   is mined if its margin is at least ``threshold`` (else ``below_threshold``) and, in ``intersect``
   mode, that target's best source is that source (else ``not_mutual``); a source with no target at
   all is ``no_candidates``. Stage ``mine_targets`` accounts for the distinct target sentences: out when
   a mined pair uses it, else ``unmatched``. The lines of both sides are thereby accounted from the
   file (``read_input``) through ``mine_sentences`` to one of these two stages.

Deterministic without any RNG: blocks and buckets come from content hashes. Candidates are picked from the
block's BLAS product, whose last bits depend on the block's shape, then rescored with ``margin.cosine``
row by row (the same float whatever the block); 2k candidates per row leave room for near ties, so the
output does not depend on ``block_size`` unless two cosines differ in the last bits at the k-th place.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from specs.errors import ConfigError
from transforms.core.accounting import Accounted, AccountedDoFn, apply_accounted
from transforms.core.lines import LineBatch
from transforms.core.seeding import stable_hash64
from transforms.encoders.margin import cosine, neighbour_means, ratio, unit_rows
from transforms.encoders.scoring import EMBED_BATCH_SIZE, SOURCE, TARGET, EmbedBuckets
from transforms.translation.cleaning import nfc_single_spaced
from transforms.translation.records import TranslationPair

SENTENCES_STAGE = "mine_sentences"
MINE_STAGE = "mine_pairs"
TARGETS_STAGE = "mine_targets"
EMPTY, DUPLICATE = "empty", "duplicate"
BELOW_THRESHOLD, NOT_MUTUAL, NO_CANDIDATES, UNMATCHED = "below_threshold", "not_mutual", "no_candidates", "unmatched"
INTERSECT, FORWARD = "intersect", "forward"
MINE_MODES = (INTERSECT, FORWARD)
# Sentences per embedding bucket: fixed, so a sentence's embedding (its chunk) does not depend on --block_size.
EMBED_BUCKET_SIZE = 1000

Neighbours = list[tuple[float, str]]  # (cosine, the other side's sentence), best first
Node = tuple[str, str]  # (SOURCE or TARGET, sentence)


class Best(NamedTuple):
    """A sentence's best candidate on the other side by ratio margin."""

    other: str
    score: float  # cosine
    margin: float


# --- the pure steps (numpy and plain Python, tested without Beam) ---------------------------------

def block_count(sentences: int, block_size: int) -> int:
    """Blocks for a side of ``sentences`` distinct sentences: at most about ``block_size`` each; none when empty."""
    return math.ceil(sentences / block_size)


def block_of(side: str, text: str, blocks: int) -> int:
    return stable_hash64(b"mine_block", side, text) % blocks


def top_k(candidates: Iterable[tuple[float, str]], k: int) -> Neighbours:
    """The ``k`` best ``(cosine, sentence)`` candidates, best first, ties by sentence (a total order: any
    merge order of the same candidates gives the same list)."""
    return heapq.nsmallest(k, candidates, key=lambda c: (-c[0], c[1]))


def _nearest(sim: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``sim``, the indices of its ``min(2k, columns)`` largest entries (unordered)."""
    c = min(2 * k, sim.shape[1])
    return np.argpartition(-sim, c - 1, axis=1)[:, :c]


def block_neighbours(src_texts: list[str], x: np.ndarray, tgt_texts: list[str], y: np.ndarray, k: int
                     ) -> tuple[list[Neighbours], list[Neighbours]]:
    """One (source block, target block) unit: each source's k nearest targets and each target's k nearest
    sources in it. Candidates (2k per row) come from a float32 product of the unit rows, their cosines from
    float64 ``cosine`` row by row (bits independent of the block's shape: see the module docstring). float32
    halves the product's time and memory (bench/mine_pairs.py: 3.7 s against 7.6 s for 12,144 x 12,144, the
    same neighbours); its error (~1e-7) matters only where the k-th and the 2k-th candidate are that close."""
    sim = unit_rows(x).astype(np.float32) @ unit_rows(y).astype(np.float32).T
    rows = _nearest(sim, k)  # [n, c] target indices
    cols = _nearest(sim.T, k)  # [m, c] source indices
    del sim
    fwd = cosine(np.repeat(x, rows.shape[1], axis=0), y[rows.ravel()]).reshape(rows.shape)
    bwd = cosine(x[cols.ravel()], np.repeat(y, cols.shape[1], axis=0)).reshape(cols.shape)
    sources = [top_k(((float(s), tgt_texts[j]) for s, j in zip(fwd[i], rows[i], strict=True)), k)
               for i in range(len(src_texts))]
    targets = [top_k(((float(s), src_texts[i]) for s, i in zip(bwd[j], cols[j], strict=True)), k)
               for j in range(len(tgt_texts))]
    return sources, targets


def knn_mean(neighbours: Neighbours, k: int) -> float:
    """The mean cosine of a sentence's k nearest neighbours (fewer if the other side has fewer), as
    ``neighbour_means`` takes it (sorted before the mean)."""
    return float(neighbour_means(np.array([[s for s, _ in neighbours]], dtype=np.float64), k)[0][0])


def best_by_margin(side: str, own_mean: float, candidates: Iterable[tuple[str, float, float]]) -> Best | None:
    """The best of a sentence's candidates ``(other sentence, cosine, other's k-NN mean)`` by ratio margin,
    ties by the other sentence; ``side`` orders the means as the margin's formula has them."""
    best = None
    for other, score, other_mean in candidates:
        means = (own_mean, other_mean) if side == SOURCE else (other_mean, own_mean)
        margin = float(ratio(score, *means))
        if best is None or (-margin, other) < (-best.margin, best.other):
            best = Best(other, score, margin)
    return best


def decide(best: Best | None, chosen_by_target: bool, threshold: float, mode: str) -> str | None:
    """Why a source's best target is not mined, or None when it is."""
    if best is None:
        return NO_CANDIDATES
    if best.margin < threshold:
        return BELOW_THRESHOLD
    if mode == INTERSECT and not chosen_by_target:
        return NOT_MUTUAL
    return None


# --- Beam ----------------------------------------------------------------------------------------

class _Lines(AccountedDoFn):
    """Stage ``mine_sentences``, first half: an empty line is filtered here; the others pass on uncounted,
    to be counted by ``_Distinct`` (same stage and scope), so the stage's ``in`` is every line read."""

    stage = SENTENCES_STAGE

    def __init__(self, scope: str) -> None:
        self._scope = scope

    def process(self, batch: LineBatch) -> Iterator[tuple[str, tuple[str, int]]]:
        for offset, line in batch.lines:
            text = nfc_single_spaced(line.decode("utf-8"))
            if not text:
                self.took_in(self._scope)
                self.filtered(self._scope, EMPTY)
                continue
            yield text, (batch.path, offset)


class _Distinct(AccountedDoFn):
    """Stage ``mine_sentences``, second half: one sentence out per distinct text, its other copies filtered."""

    stage = SENTENCES_STAGE

    def __init__(self, scope: str, side: str, src_lang: str, tgt_lang: str) -> None:
        self._scope, self._side, self._langs = scope, side, (src_lang, tgt_lang)

    def process(self, item: tuple[str, Iterable[tuple[str, int]]]) -> Iterator[TranslationPair]:
        text, places = item
        places = sorted(places)
        self.took_in(self._scope, len(places))
        self.filtered(self._scope, DUPLICATE, len(places) - 1)
        self.out(self._scope)
        src, tgt = (text, "") if self._side == SOURCE else ("", text)
        yield TranslationPair(src, tgt, *self._langs, places[0][0], -1, places[0][1])


def sentence_side(sentence: TranslationPair) -> tuple[tuple[str, str], ...]:
    """What ``EmbedBuckets`` embeds of a distinct sentence (a pair with one side empty: see ``_Distinct``)."""
    return ((SOURCE, sentence.src),) if sentence.src else ((TARGET, sentence.tgt),)


def _embedded(joined: tuple[Any, Mapping[str, Any]]) -> Iterator[tuple[Node, np.ndarray]]:
    _, groups = joined
    for side, texts, vectors in groups["vectors"]:
        for text, vector in zip(texts, vectors, strict=True):
            yield (side, text), vector


def _to_blocks(node: tuple[Node, np.ndarray], counts: Mapping[str, int], block_size: int
               ) -> Iterator[tuple[tuple[int, int], tuple[str, str, np.ndarray]]]:
    """A sentence to every block pair its block is part of: ``(source block, target block)``."""
    (side, text), vector = node
    own = block_of(side, text, block_count(counts[side], block_size))
    for j in range(block_count(counts.get(_other(side), 0), block_size)):
        yield ((own, j) if side == SOURCE else (j, own)), (side, text, vector)


def _block_pair(item: tuple[tuple[int, int], Iterable[tuple[str, str, np.ndarray]]], k: int
                ) -> Iterator[tuple[Node, Neighbours]]:
    _, members = item
    by_side: dict[str, list[tuple[str, np.ndarray]]] = {SOURCE: [], TARGET: []}
    for side, text, vector in members:
        by_side[side].append((text, vector))
    src, tgt = sorted(by_side[SOURCE], key=lambda t: t[0]), sorted(by_side[TARGET], key=lambda t: t[0])
    if not src or not tgt:
        return
    src_texts, tgt_texts = [t for t, _ in src], [t for t, _ in tgt]
    sources, targets = block_neighbours(src_texts, np.stack([v for _, v in src]), tgt_texts,
                                        np.stack([v for _, v in tgt]), k)
    yield from (((SOURCE, t), n) for t, n in zip(src_texts, sources, strict=True))
    yield from (((TARGET, t), n) for t, n in zip(tgt_texts, targets, strict=True))


class MergeNeighbours(beam.CombineFn):
    """A sentence's per-block neighbour lists -> its k nearest overall (``top_k``)."""

    def __init__(self, k: int) -> None:
        self._k = k

    def create_accumulator(self) -> Neighbours:
        return []

    def add_input(self, acc: Neighbours, neighbours: Neighbours) -> Neighbours:
        return top_k(itertools.chain(acc, neighbours), self._k)

    def merge_accumulators(self, accs: Iterable[Neighbours]) -> Neighbours:
        return top_k(itertools.chain.from_iterable(accs), self._k)

    def extract_output(self, acc: Neighbours) -> Neighbours:
        return acc


def _other(side: str) -> str:
    return TARGET if side == SOURCE else SOURCE


def _edges(node: Node, neighbours: Neighbours) -> Iterator[tuple[Node, tuple[Node, float]]]:
    """Each neighbour of ``node``, keyed by that neighbour (to meet its k-NN mean)."""
    side, _ = node
    for score, other in neighbours:
        yield (_other(side), other), (node, score)


def _with_other_mean(item: tuple[Node, Mapping[str, Any]]) -> Iterator[tuple[Node, tuple[str, float, float]]]:
    (_, text), joined = item
    for mean in joined["mean"]:
        for node, score in joined["edges"]:
            yield node, (text, score, mean)


def _best(item: tuple[Node, Mapping[str, Any]]) -> Iterator[tuple[Node, Best]]:
    node, joined = item
    for mean in joined["mean"]:
        best = best_by_margin(node[0], mean, joined["candidates"])
        if best is not None:
            yield node, best


class _Mine(AccountedDoFn):
    stage = MINE_STAGE

    def __init__(self, threshold: float, mode: str) -> None:
        self._threshold, self._mode = threshold, mode

    def process(self, item: tuple[str, Mapping[str, Any]]) -> Iterator[TranslationPair]:
        _, joined = item
        best = next(iter(joined["best"]), None)
        reason = decide(best, best is not None and best.other in set(joined["chosen_by"]), self._threshold,
                        self._mode)
        for sentence in joined["sentence"]:
            scope = sentence.lang_pair
            self.took_in(scope)
            if reason is not None:
                self.filtered(scope, reason)
                continue
            self.out(scope)
            yield sentence._replace(tgt=best.other, score=best.score, margin=best.margin)


class _Targets(AccountedDoFn):
    stage = TARGETS_STAGE

    def process(self, item: tuple[str, Mapping[str, Any]]) -> Iterator[Any]:
        """Counts only: the pairs were written by ``_Mine``."""
        _, joined = item
        used = any(True for _ in joined["mined"])
        for sentence in joined["sentence"]:
            self.took_in(sentence.lang_pair)
            if used:
                self.out(sentence.lang_pair)
            else:
                self.filtered(sentence.lang_pair, UNMATCHED)
        yield from ()


class MinePairs(beam.PTransform):
    """``{"source": LineBatches, "target": LineBatches}`` (``ReadLineBatches``' output per side) -> the
    mined pairs as scored ``TranslationPair``s (see the module docstring). Returns ``Accounted``: the
    tallies of ``mine_sentences``, ``mine_pairs`` and ``mine_targets``."""

    def __init__(self, export_path: str, src_lang: str, tgt_lang: str, k: int = 4, threshold: float = 1.06,
                 block_size: int = 4000, mode: str = INTERSECT, batch_size: int = EMBED_BATCH_SIZE) -> None:
        super().__init__()
        if k < 1:
            raise ConfigError(f"--margin_k: {k} must be >= 1")
        if block_size <= k:
            raise ConfigError(f"--block_size: {block_size} must be larger than --margin_k ({k})")
        if not math.isfinite(threshold):
            raise ConfigError(f"--threshold: {threshold} is not a number")
        if mode not in MINE_MODES:
            raise ConfigError(f"--mode: {mode!r} is not one of {', '.join(MINE_MODES)}")
        self._path, self._langs, self._k, self._threshold = export_path, (src_lang, tgt_lang), k, threshold
        self._block, self._mode, self._batch = block_size, mode, batch_size

    def expand(self, lines: Mapping[str, beam.PCollection]) -> Accounted:
        src_lang, tgt_lang = self._langs
        k, block = self._k, self._block
        tallies, letters, distinct = [], [], {}
        for side, name, lang in ((SOURCE, "Source", src_lang), (TARGET, "Target", tgt_lang)):
            scope = f"{'source' if side == SOURCE else 'target'} {lang}"
            texts = apply_accounted(lines[name.lower()], f"{name}Lines", _Lines(scope))
            grouped = texts.out | f"{name}Group" >> beam.GroupByKey()
            kept = apply_accounted(grouped, f"{name}Distinct", _Distinct(scope, side, src_lang, tgt_lang))
            tallies += [texts.tally, kept.tally]
            letters += [texts.dead_letter, kept.dead_letter]
            distinct[side] = kept.out
        sentences = (distinct[SOURCE], distinct[TARGET]) | "Sentences" >> beam.Flatten()
        counts = beam.pvalue.AsDict(sentences | "Side" >> beam.Map(lambda s: (sentence_side(s)[0][0], 1))
                                    | "CountPerSide" >> beam.CombinePerKey(sum))
        knn = (
            sentences
            | "EmbedBuckets" >> EmbedBuckets(self._path, EMBED_BUCKET_SIZE, self._batch, sentence_side)
            | "Embedded" >> beam.FlatMap(_embedded)
            | "ToBlockPairs" >> beam.FlatMap(_to_blocks, counts, block)
            | "GroupBlockPairs" >> beam.GroupByKey()
            | "BlockNeighbours" >> beam.FlatMap(_block_pair, k)
            | "MergeNeighbours" >> beam.CombinePerKey(MergeNeighbours(k))
        )
        means = knn | "KnnMean" >> beam.MapTuple(lambda node, n: (node, knn_mean(n, k)))
        edges = knn | "Edges" >> beam.FlatMapTuple(_edges)
        candidates = ({"mean": means, "edges": edges} | "JoinOtherMean" >> beam.CoGroupByKey()
                      | "WithOtherMean" >> beam.FlatMap(_with_other_mean))
        best = ({"mean": means, "candidates": candidates} | "JoinCandidates" >> beam.CoGroupByKey()
                | "BestByMargin" >> beam.FlatMap(_best))
        src_best = best | "SourceBest" >> beam.Filter(lambda nb: nb[0][0] == SOURCE) | "BySource" >> beam.MapTuple(
            lambda node, b: (node[1], b))
        chosen_by = best | "TargetBest" >> beam.Filter(lambda nb: nb[0][0] == TARGET) | "ChosenBy" >> beam.MapTuple(
            lambda node, b: (b.other, node[1]))
        src_sentences = distinct[SOURCE] | "KeySources" >> beam.Map(lambda s: (s.src, s))
        mined = apply_accounted({"sentence": src_sentences, "best": src_best, "chosen_by": chosen_by}
                                | "JoinSources" >> beam.CoGroupByKey(), "Mine", _Mine(self._threshold, self._mode))
        tgt_sentences = distinct[TARGET] | "KeyTargets" >> beam.Map(lambda s: (s.tgt, s))
        used = mined.out | "ByTarget" >> beam.Map(lambda p: (p.tgt, 1))
        targets = apply_accounted({"sentence": tgt_sentences, "mined": used} | "JoinTargets" >> beam.CoGroupByKey(),
                                  "Targets", _Targets())
        tallies += [mined.tally, targets.tally]
        letters += [mined.dead_letter, targets.dead_letter]
        return Accounted(mined.out, tuple(tallies) | "MineTallies" >> beam.Flatten(),
                         tuple(letters) | "MineDeadLetters" >> beam.Flatten())
