"""Featurising and writing task rows on Beam: ``(dest, [Row])`` -> sentence-prediction records per output."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from specs import FeatureSpec
from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter
from transforms.core.shards import WriteShards
from transforms.finetune.packing import pack
from transforms.finetune.records import FEATURIZE_STAGE, SHARD_PREFIX, SHARD_SUFFIX, TRUNCATED, Labels, Row
from transforms.text.bert_tokenization import BertTokenizer


class _Featurize(AccountedDoFn):
    """``(dest, [Row])`` -> ``(dest, [(sort_key, tf.Example bytes)])``; a text with no WordPiece
    tokens (only control or format characters) or a label beyond ``max_labels`` is dead-lettered.
    The number of truncated records per output goes to the ``truncated`` side output."""

    stage = FEATURIZE_STAGE

    def __init__(self, tokenizer: BertTokenizer, spec: FeatureSpec, labels: Labels, max_seq_length: int) -> None:
        self._tokenizer, self._spec, self._labels, self._L = tokenizer, spec, labels, max_seq_length
        self._cls, self._sep = tokenizer.vocabulary.cls_id, tokenizer.vocabulary.sep_id

    def process(self, item: tuple[str, list[Row]], discovered: Sequence[str]) -> Iterator[Any]:
        dest, rows = item
        label_list = list(self._labels.fixed if self._labels.fixed is not None else discovered)
        label_ids = {label: i for i, label in enumerate(label_list)}
        texts = [r.text_a for r in rows] + [r.text_b for r in rows if r.text_b is not None]
        tokens = self._tokenizer.tokenize_batch(texts)
        b_tokens = iter(tokens[len(rows):])
        columns: dict[str, list[Any]] = {name: [] for name in self._spec.names}
        keys, truncated = [], 0
        for row, ids_a in zip(rows, tokens, strict=False):
            self.took_in(dest)
            ids_b = next(b_tokens) if row.text_b is not None else None
            reason, detail = "", ""
            if len(ids_a) == 0 or (ids_b is not None and len(ids_b) == 0):
                reason, detail = "no_tokens", f"text {'A' if len(ids_a) == 0 else 'B'} has no WordPiece tokens"
            elif self._labels.regression:
                label: int | float = 0.0 if row.label is None else float(row.label)
            elif row.label is None:
                label = 0  # unlabelled rows get the first label, as the reference's test examples do
            elif row.label in label_ids:
                label = label_ids[row.label]
            else:
                reason, detail = "label_beyond_max_labels", f"{row.label!r} is not among the first " \
                                                            f"{self._labels.max_labels} labels"
            if reason:
                yield self.dead_letter(dest, DeadLetter.make(
                    self.stage, reason, "\t".join(t for t in (row.text_a, row.text_b or "") if t),
                    source=row.source, offset=row.offset, detail=detail))
                continue
            input_ids, mask, segments, cut = pack(ids_a, ids_b, self._L, self._cls, self._sep)
            truncated += cut
            for name, value in (("input_ids", input_ids), ("input_mask", mask), ("segment_ids", segments),
                                ("label_ids", label), ("is_real_example", 1), ("example_id", row.example_id)):
                columns[name].append(value)
            keys.append(row.example_id.to_bytes(8, "big"))
            self.out(dest)
        if keys:
            payloads = self._spec.encode_batch({k: np.asarray(v) for k, v in columns.items()})
            yield dest, list(zip(keys, payloads, strict=True))
        if truncated:
            yield beam.pvalue.TaggedOutput(TRUNCATED, (dest, truncated))


def _labels_of(item: tuple[str, list[Row]]) -> Iterator[str]:
    for row in item[1]:
        if isinstance(row.label, str):
            yield row.label


class FeaturizeRows(beam.PTransform):
    """``(dest, [Row])`` -> accounted ``(dest, [(key, record)])``, plus the label list (a singleton:
    the fixed list, or the data's labels sorted and capped) and truncation counts per output."""

    def __init__(self, tokenizer: BertTokenizer, spec: FeatureSpec, labels: Labels, max_seq_length: int) -> None:
        super().__init__()
        self._args = (tokenizer, spec, labels, max_seq_length)

    def expand(self, rows: beam.PCollection) -> tuple[Accounted, beam.PCollection, beam.PCollection]:
        labels: Labels = self._args[2]
        if labels.discovered:
            cap = labels.max_labels
            # Top.Smallest keeps at most ``cap`` labels in memory, however many distinct values a
            # mistaken --label_field has.
            label_list = (rows | "Labels" >> beam.FlatMap(_labels_of) | "Distinct" >> beam.Distinct()
                          | "FirstLabels" >> beam.combiners.Top.Smallest(cap))
        else:
            fixed = list(labels.fixed or [])
            label_list = rows.pipeline | "LabelList" >> beam.Create([fixed])
        res = rows | "Featurize" >> beam.ParDo(_Featurize(*self._args), beam.pvalue.AsSingleton(label_list)
                                               ).with_outputs("tally", "dead_letter", TRUNCATED, main="out")
        truncated = res[TRUNCATED] | "SumTruncated" >> beam.CombinePerKey(sum)
        return Accounted(res.out, res.tally, res.dead_letter), label_list, truncated


class WriteOutputs(beam.PTransform):
    """``(dest, [(key, record)])`` -> ``OUT/<dest>/finetune-SSSSS-of-NNNNN.tfrecord`` per output (records
    ordered by ``example_id`` within a shard); returns ``(dest, records written)``."""

    def __init__(self, output_dir: str, dests: Sequence[str], num_shards: int, records_per_shard: int) -> None:
        super().__init__()
        self._dir, self._dests = output_dir, list(dests)
        self._num_shards, self._per_shard = num_shards, records_per_shard

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        index = {d: i for i, d in enumerate(self._dests)}
        parts = records | "ByOutput" >> beam.Partition(lambda kv, n: index[kv[0]], len(self._dests))
        counts = []
        for dest, part in zip(self._dests, parts, strict=True):
            name = dest.replace("/", "_").title().replace("_", "")
            prefix = FileSystems.join(self._dir, *dest.split("/"), SHARD_PREFIX)
            count = (part | f"Records{name}" >> beam.Map(lambda kv: kv[1])
                     | f"Write{name}" >> WriteShards(prefix, SHARD_SUFFIX, "tfrecord", "uncompressed",
                                                     self._num_shards, self._per_shard, batched=True))
            counts.append(count | f"Name{name}" >> beam.Map(lambda n, d=dest: (d, n)))
        return tuple(counts) | "AllCounts" >> beam.Flatten()
