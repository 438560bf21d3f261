"""The Beam steps of the translation job after reading: cleaning, splitting, balancing, writing."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from specs import SCORED_TRANSLATION_PAIRS, TEACHER_EMBEDDING, TRANSLATION_PAIRS, FeatureSpec, distillation_pairs_spec
from specs.errors import ConfigError
from transforms.core import accounting
from transforms.core.accounting import Accounted, AccountedDoFn
from transforms.core.sampling import stochastic_round
from transforms.core.shards import WriteShards, sort_key
from transforms.core.spec_files import WriteSpec
from transforms.text import writing_systems as scripts
from transforms.translation.cleaning import CleanConfig, filter_reason, nfc_single_spaced
from transforms.translation.records import BALANCE_STAGE, CLEAN_STAGE, SPLITS, TranslationPair
from transforms.translation.sampling import pair_key, sampling_rates, split_of, unordered_lang_pair

# --- Beam: cleaning ----------------------------------------------------------------------------

class _Clean(AccountedDoFn):
    stage = CLEAN_STAGE

    def __init__(self, config: CleanConfig, table: scripts.LanguageScripts) -> None:
        self._config, self._table = config, table

    def process(self, pair: TranslationPair) -> Iterator[TranslationPair]:
        scope = pair.lang_pair
        self.took_in(scope)
        src, tgt = nfc_single_spaced(pair.src), nfc_single_spaced(pair.tgt)
        reason = filter_reason(src, tgt, pair.src_lang, pair.tgt_lang, self._config, self._table)
        if reason:
            self.filtered(scope, reason)
            return
        self.out(scope)
        yield pair._replace(src=src, tgt=tgt)


class CleanTranslationPairs(beam.PTransform):
    """Normalises both sides (NFC, no controls, single spaces) and applies the cleaning rules, with
    one counter per rule and language pair."""

    def __init__(self, config: CleanConfig, table: scripts.LanguageScripts) -> None:
        super().__init__()
        config.validate()
        self._config, self._table = config, table

    def expand(self, pairs: beam.PCollection) -> Accounted:
        return accounting.apply_accounted(pairs, "Clean", _Clean(self._config, self._table))


# --- Beam: splitting and balancing ------------------------------------------------------------

class SplitPairs(beam.PTransform):
    """Partitions pairs into the splits by a hash of the normalised pair; returns ``{split: pcoll}``."""

    def __init__(self, fractions: Mapping[str, float], split_seed: int) -> None:
        super().__init__()
        self._fractions, self._seed = dict(fractions), split_seed

    def expand(self, pairs: beam.PCollection) -> dict[str, beam.PCollection]:
        names = [s for s in SPLITS if s in self._fractions]
        fractions, seed = self._fractions, self._seed
        parts = pairs | "BySplit" >> beam.Partition(
            lambda p, _: names.index(split_of(pair_key(p), fractions, seed)), len(names))
        return dict(zip(names, parts, strict=True))


class _Balance(AccountedDoFn):
    """Keeps each pair ``stochastic_round(rate)`` times (seeded by the pair); a pair kept 0 times is
    filtered as ``downsampled``. Extra copies are counted on the ``upsampled_copies`` counter (they
    are outputs without input)."""

    stage = BALANCE_STAGE

    def __init__(self, seed: int) -> None:
        self._seed = seed

    def process(self, pair: TranslationPair, rates: Mapping[str, tuple[int, float]]
                ) -> Iterator[tuple[int, TranslationPair]]:
        scope = pair.lang_pair
        self.took_in(scope)
        rate = rates[unordered_lang_pair(pair.src_lang, pair.tgt_lang)][1]
        n = stochastic_round(rate, self._seed, b"balance", pair_key(pair))
        if n == 0:
            self.filtered(scope, "downsampled")
            return
        self.out(scope)
        if n > 1:
            beam.metrics.Metrics.counter(accounting.NAMESPACE, f"{self.stage}/upsampled_copies").inc(n - 1)
        for i in range(n):
            yield i, pair


class BalanceLanguagePairs(beam.PTransform):
    """Exponentially smoothed sampling per (unordered) language pair; see ``sampling_rates``.

    Returns ``(Accounted(out=(copy_index, pair)), targets)`` where ``targets`` is a singleton with
    ``{lang_pair: {"available", "target", "rate"}}`` for the statistics. Without ``alpha`` every
    pair is passed through once (copy index 0), unaccounted.
    """

    def __init__(self, alpha: float | None, cap: int, max_upsample: float, seed: int) -> None:
        super().__init__()
        if alpha is not None and not 0 <= alpha <= 1:
            raise ConfigError(f"--sampling_alpha: {alpha} is not in [0, 1]")
        if cap < 0 or max_upsample < 1:
            raise ConfigError("--sampling_cap must be >= 0 and --max_upsample >= 1")
        self._alpha, self._cap, self._max_up, self._seed = alpha, cap, max_upsample, seed

    def expand(self, pairs: beam.PCollection) -> tuple[Accounted, beam.PCollection]:
        alpha, cap, max_up = self._alpha, self._cap, self._max_up
        counts = (
            pairs
            | "LangPair" >> beam.Map(lambda p: (unordered_lang_pair(p.src_lang, p.tgt_lang), 1))
            | "CountPerLangPair" >> beam.CombinePerKey(sum)
            | "AllCounts" >> beam.combiners.ToDict()
        )
        rates = counts | "Rates" >> beam.Map(
            lambda c: sampling_rates(c, 1.0 if alpha is None else alpha, cap, max_up))
        targets = counts | "Targets" >> beam.Map(_targets_table, beam.pvalue.AsSingleton(rates))
        if alpha is None and not cap:
            empty = pairs.pipeline | "NoTallies" >> beam.Create([])
            return Accounted(pairs | "Once" >> beam.Map(lambda p: (0, p)), empty, empty), targets
        return accounting.apply_accounted(pairs, "Sample", _Balance(self._seed),
                                          beam.pvalue.AsSingleton(rates)), targets


def _targets_table(counts: Mapping[str, int], rates: Mapping[str, tuple[int, float]]) -> dict[str, Any]:
    return {lp: {"available": n, "target": rates[lp][0], "rate": rates[lp][1]} for lp, n in sorted(counts.items())}


# --- Beam: writing -----------------------------------------------------------------------------

def pairs_spec(scored: bool = False, teacher_dim: int = 0, teacher: str = "", teacher_language: str = "eng"
               ) -> FeatureSpec:
    """The spec a run writes: ``TRANSLATION_PAIRS``, ``SCORED_TRANSLATION_PAIRS`` with ``--score_with``, and
    ``distillation_pairs_spec`` with a teacher (``teacher_dim`` > 0)."""
    if teacher_dim:
        return distillation_pairs_spec(teacher_dim, teacher, teacher_language, scored=scored)
    return SCORED_TRANSLATION_PAIRS if scored else TRANSLATION_PAIRS


def _scores(pair: TranslationPair) -> dict[str, Any]:
    """The pair's ``score`` and ``margin`` where it was scored and its ``teacher_embedding`` where it has one."""
    out: dict[str, Any] = {} if pair.score is None else {"score": pair.score, "margin": pair.margin}
    if pair.teacher_embedding is not None:
        out[TEACHER_EMBEDDING] = list(pair.teacher_embedding)
    return out


def encode_pair(pair: TranslationPair, spec: FeatureSpec = TRANSLATION_PAIRS) -> bytes:
    """One record of ``spec`` (``pairs_spec``'s for the run)."""
    return spec.encode({"src_raw": pair.src, "tgt_raw": pair.tgt, "src_lang": pair.src_lang,
                        "tgt_lang": pair.tgt_lang, **_scores(pair)})


def pair_json(pair: TranslationPair) -> bytes:
    return json.dumps({"src_raw": pair.src, "tgt_raw": pair.tgt, "src_lang": pair.src_lang,
                       "tgt_lang": pair.tgt_lang, "source": pair.source, "line": pair.line,
                       "offset": pair.offset, **_scores(pair)}, ensure_ascii=False, sort_keys=True).encode("utf-8")


# --compression: the shard suffix and WriteShards' compression.
TFRECORD_COMPRESSIONS = {"gzip": (".tfrecord.gz", "gzip"), "none": (".tfrecord", "uncompressed")}


class WriteTranslationPairs(beam.PTransform):
    """``(copy_index, TranslationPair)`` -> globally shuffled GZIP TFRecord shards of ``spec`` examples
    (``pairs_spec``'s: scored, with teacher embeddings, or plain) in ``directory`` (plus the spec), and
    optionally a JSONL.gz copy in the same order.

    The sort key is a seeded hash of the normalised pair and its copy index, so the order is a
    deterministic global shuffle and upsampled copies of one pair land in different places.
    """

    def __init__(self, directory: str, seed: int, num_shards: int = 0, records_per_shard: int = 200_000,
                 jsonl: bool = False, basename: str = "pairs", compression: str = "gzip",
                 spec: FeatureSpec = TRANSLATION_PAIRS) -> None:
        """``compression``: ``gzip`` (``.tfrecord.gz``; Model Garden reads it with ``file_type:
        tfrecord_compressed``) or ``none`` (``.tfrecord``; ``file_type: tfrecord``)."""
        super().__init__()
        if compression not in TFRECORD_COMPRESSIONS:
            raise ValueError(f"compression {compression!r} is not one of {', '.join(TFRECORD_COMPRESSIONS)}")
        self._dir, self._seed, self._num_shards, self._per_shard = directory, seed, num_shards, records_per_shard
        self._jsonl, self._base, self._compression = jsonl, basename, compression
        self._spec = spec

    def expand(self, pairs: beam.PCollection) -> beam.PCollection:
        _ = pairs.pipeline | "Spec" >> WriteSpec(self._spec, self._dir)
        seed, spec = self._seed, self._spec
        keyed = pairs | "SortKey" >> beam.Map(lambda ip: (sort_key(seed, pair_key(ip[1]), ip[0]), ip[1]))
        count = (
            keyed
            | "Encode" >> beam.MapTuple(lambda k, p: (k, encode_pair(p, spec)))
            | "WriteTFRecord" >> WriteShards(FileSystems.join(self._dir, self._base),
                                             TFRECORD_COMPRESSIONS[self._compression][0], "tfrecord",
                                             TFRECORD_COMPRESSIONS[self._compression][1], self._num_shards,
                                             self._per_shard)
        )
        if self._jsonl:
            _ = (
                keyed
                | "Json" >> beam.MapTuple(lambda k, p: (k, pair_json(p)))
                | "WriteJsonl" >> WriteShards(FileSystems.join(self._dir, "jsonl", self._base), ".jsonl.gz",
                                              "lines", "gzip", self._num_shards, self._per_shard)
            )
        return count


