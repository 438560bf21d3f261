"""The fine-tuning job's meta data and the reference's single-file outputs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

import specs
from transforms.core.spec_files import write_spec_files
from transforms.finetune.plan import Plan, reference_outputs
from transforms.finetune.records import SHARD_PREFIX, SHARD_SUFFIX
from transforms.finetune.tasks import TEST, TRAIN

META_DATA_FILE = "meta_data.json"


def meta_data(plan: Plan, o: Any, counts: dict[str, int], label_list: list[str],
              truncated: dict[str, int]) -> dict[str, Any]:
    """The reference's meta data keys (``classifier_data_lib.generate_tf_record_from_data_file``) and
    ours: the label list in id order, truncation counts, vocabulary and casing."""
    meta: dict[str, Any] = {"processor_type": plan.processor_type, "train_data_size": counts.get(TRAIN, 0),
                            "max_seq_length": o.max_seq_length}
    if "dev" in plan.dests:
        meta["eval_data_size"] = counts.get("dev", 0)
    for dest in plan.dests:
        if dest == TEST:
            meta["test_data_size"] = counts.get(dest, 0)
        elif dest.startswith(f"{TEST}/"):
            meta[f"test_{dest.split('/', 1)[1]}_data_size"] = counts.get(dest, 0)
    if plan.labels.regression:
        meta["task_type"], meta["label_type"] = "bert_regression", "float"
    else:
        meta["task_type"], meta["num_labels"] = "bert_classification", len(label_list)
        meta["labels"] = list(label_list)
    meta.update({"task": plan.name, "do_lower_case": o.do_lower_case, "vocab_file": o.vocab_file,
                 "outputs": {d: counts.get(d, 0) for d in plan.dests},
                 "truncated": {d: truncated.get(d, 0) for d in plan.dests}})
    return meta


class WriteMetaData(beam.DoFn):
    """Writes the meta data JSON to each of ``paths`` once the counts and the label list are known."""

    def __init__(self, paths: Sequence[str], plan: Plan, options: Any) -> None:
        self._paths, self._plan, self._o = list(paths), plan, options

    def process(self, _: Any, counts: dict[str, int], label_list: list[str],
                truncated: dict[str, int]) -> Iterator[str]:
        """Yields each path written."""
        meta = meta_data(self._plan, self._o, counts, label_list, truncated)
        text = json.dumps(meta, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
        for path in self._paths:
            with FileSystems.create(path) as f:
                f.write(text.encode("utf-8"))
            yield path


def reference_path(template: str, dest: str) -> str:
    """The reference's single file for ``dest`` (a per-language test fills the template's ``{}``)."""
    return template.format(dest.split("/", 1)[1]) if "/" in dest else template


def place_reference_outputs(o: Any, output_dir: str) -> list[str]:
    """Moves each requested split's shards into the reference's single file (concatenated in shard
    order, streamed) with the spec files beside it; returns the files written. Runs in the launcher
    after the job: a path that is absent means the run did not finish."""
    placed = []
    for split, template in reference_outputs(o).items():
        dests = [split] + [f"{split}/{d}" for d in _subdirs(output_dir, split)]
        for dest in dests:
            shards = sorted(m.path for m in FileSystems.match(
                [FileSystems.join(output_dir, *dest.split("/"), f"{SHARD_PREFIX}-*{SHARD_SUFFIX}")]
            )[0].metadata_list)
            if not shards:
                continue
            target = reference_path(template, dest)
            parent = os.path.dirname(target)
            if parent and not FileSystems.exists(parent):
                FileSystems.mkdirs(parent)
            with FileSystems.create(target, compression_type=CompressionTypes.UNCOMPRESSED) as out:
                for shard in shards:
                    with FileSystems.open(shard, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                        while chunk := f.read(1 << 20):
                            out.write(chunk)
            FileSystems.delete(shards)
            spec_dir = FileSystems.join(output_dir, *dest.split("/"))
            with FileSystems.open(FileSystems.join(spec_dir, specs.SPEC_FILE)) as f:
                spec = specs.FeatureSpec.from_json(f.read().decode("utf-8"))
            write_spec_files(spec, parent or ".")
            placed.append(target)
    return placed


def _subdirs(output_dir: str, split: str) -> list[str]:
    pattern = FileSystems.join(output_dir, split, "*", specs.SPEC_FILE)
    return sorted(m.path.rsplit("/", 2)[-2] for m in FileSystems.match([pattern])[0].metadata_list)


