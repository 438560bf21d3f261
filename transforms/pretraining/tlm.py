"""Translation-LM examples on Beam: translation pairs (a finished ``translation_pairs`` run) become
``[CLS] src [SEP] tgt [SEP]`` instances, truncated like sentence pairs and masked on both sides."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np

import specs
from transforms.core import accounting
from transforms.core import input_checks as checks
from transforms.core.accounting import Accounted, DeadLetter
from transforms.core.seeding import element_rng, stable_hash128
from transforms.core.tfrecords import ReadTFRecords
from transforms.pretraining.encoding import InstanceBatch
from transforms.pretraining.examples import INSTANCE_COUNTS
from transforms.pretraining.pairs import Pair, Pool, truncate_pair
from transforms.pretraining.params import InstanceParams, VocabInfo
from transforms.pretraining.reading import ExampleRecordDoFn
from transforms.pretraining.records import UNDETERMINED
from transforms.pretraining.tokenizing import BatchingDoFn
from transforms.text.bert_tokenization import BertTokenizer


class _ParsePairs(ExampleRecordDoFn):
    """Translation-pair records (``specs.TRANSLATION_PAIRS``) to ``(path, key, src, tgt, src_lang,
    tgt_lang)``; a record lacking a side is dead-lettered, an empty side filtered."""

    stage = "read_pairs"

    def from_features(self, path: str, raw: bytes, feats: Any) -> Iterator[Any]:
        values = {}
        for name in ("src_raw", "tgt_raw", "src_lang", "tgt_lang"):
            v = feats[name].bytes_list.value if name in feats else []
            error = checks.utf8_error(v[0], f"feature {name!r}") if v else None
            if error:
                yield self.dead_letter(path, DeadLetter.make(self.stage, checks.INVALID_UTF8, raw[:200], source=path,
                                                             detail=error))
                return
            values[name] = v[0].decode("utf-8") if v else None
        if values["src_raw"] is None or values["tgt_raw"] is None:
            yield self.dead_letter(path, DeadLetter.make(self.stage, "missing_text_feature", raw[:200], source=path,
                                                         detail="needs bytes features src_raw and tgt_raw"))
            return
        src, tgt = values["src_raw"].strip(), values["tgt_raw"].strip()
        if not src or not tgt:
            self.filtered(path, "empty_side")
            return
        self.out(path)
        yield (path, stable_hash128(src, tgt), src, tgt, values["src_lang"] or UNDETERMINED,
               values["tgt_lang"] or UNDETERMINED)


class _TlmInstances(BatchingDoFn):
    """Pairs to lists of encoded TLM examples, tokenised in batches; ``dupe_factor`` passes, each
    with its own masks."""

    stage = "tlm_tokenize"

    def __init__(self, tokenizer: BertTokenizer, seed: int, params: InstanceParams, vocab: VocabInfo,
                 spec: specs.FeatureSpec) -> None:
        self._tokenizer, self._seed, self._params, self._vocab, self._spec = tokenizer, seed, params, vocab, spec

    def _size(self, pair: tuple[Any, ...]) -> int:
        return 2

    def _flush(self) -> list[Any]:
        pairs, self._buffer, self._buffered = self._buffer, [], 0
        if not pairs:
            return []
        ids = self._tokenizer.tokenize_batch([t for p in pairs for t in (p[2], p[3])])
        kept = []
        for k, (path, key, _, _, src_lang, tgt_lang) in enumerate(pairs):
            self.took_in(path)
            if not len(ids[2 * k]) or not len(ids[2 * k + 1]):
                self.filtered(path, "no_tokens")
                continue
            self.out(path)
            kept.append((key, f"tlm:{src_lang}-{tgt_lang}", ids[2 * k], ids[2 * k + 1]))
        pool = Pool.from_arrays([(np.concatenate((src, tgt)), np.array([0, len(src), len(src) + len(tgt)]))
                                 for _, _, src, tgt in kept])
        batch = InstanceBatch(self._params, self._vocab, self._spec)
        counts: dict[str, int] = {}
        for (key, pair_langs, _, _), (src, tgt, end) in zip(kept, pool.bounds, strict=True):
            for p in range(self._params.dupe_factor):
                rng = element_rng(self._seed, key, "tlm", p)
                batch.add(pool, [truncate_pair(Pair(src, tgt - src, tgt, end - tgt, False), self._params.max_num_tokens,
                                               rng)], rng)
            counts[pair_langs] = counts.get(pair_langs, 0) + self._params.dupe_factor
        out: list[Any] = [batch.encode(pool)] if kept else []
        out.extend(beam.pvalue.TaggedOutput(INSTANCE_COUNTS, item) for item in sorted(counts.items()))
        return out


class CreateTlmExamples(beam.PTransform):
    """Translation-pair TFRecords to TLM examples: ``[CLS] src [SEP] tgt [SEP]`` masked on both
    sides. Returns the examples, the per-pair instance counts and the accounting of both stages."""

    def __init__(self, paths: Sequence[str], tokenizer: BertTokenizer, seed: int, params: InstanceParams,
                 vocab: VocabInfo, spec: specs.FeatureSpec) -> None:
        super().__init__()
        self._paths, self._tokenizer, self._seed = list(paths), tokenizer, seed
        self._params, self._vocab, self._spec = params, vocab, spec

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection, list[Accounted]]:
        frames = pbegin | "ReadRecords" >> ReadTFRecords(self._paths)
        parsed = accounting.apply_accounted(frames.out, "ParsePairs", _ParsePairs())
        res = parsed.out | "Instances" >> beam.ParDo(
            _TlmInstances(self._tokenizer, self._seed, self._params, self._vocab, self._spec)).with_outputs(
                accounting.TALLY, accounting.DEAD_LETTER, INSTANCE_COUNTS, main="examples")
        made = Accounted(res.examples, res[accounting.TALLY], res[accounting.DEAD_LETTER])
        return res.examples, res[INSTANCE_COUNTS], [frames, parsed, made]
