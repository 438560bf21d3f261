"""What ``pipelines.dedup`` does besides composing: its settings checked at start-up, the spec of its
inputs, and its writers (kept records, records with clusters, cluster statistics)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

import specs
from specs import dedup as dedup_specs
from specs.errors import ConfigError
from transforms.core.shards import WriteShards
from transforms.core.spec_files import WriteSpec
from transforms.dedup.keys import MODES
from transforms.dedup.records import (
    TFRECORD,
    JobRecord,
    clustered_example,
    clustered_json,
    input_format,
    record_sort_key,
)

STATS_FILE = "dedup_stats.json"


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """The dedup job's inputs and keys, checked: what ``build`` composes from."""

    paths: list[str]
    fmt: str  # JSONL or TFRECORD
    text_fields: list[str]
    mode: str
    rank_field: str | None
    exclude: list[str]
    spec: specs.FeatureSpec | None  # the inputs' spec (TFRecords only)


def job_settings(paths: Sequence[str], fmt: str, text_fields: Sequence[str], key: str, rank_field: str,
                 exclude: Sequence[str], no_exact: bool, no_near: bool, num_shards: int,
                 records_per_shard: int) -> JobSettings:
    """The flags of ``pipelines.dedup`` checked against each other and the input files; a
    ``ConfigError`` naming the flag otherwise."""
    fmt = input_format(paths, fmt)
    if not text_fields:
        raise ConfigError("--text_fields is required (comma-separated field names)")
    mode = key or ("one" if len(text_fields) == 1 else "pair")
    if mode not in MODES:
        raise ConfigError(f"--key must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "one" and len(text_fields) != 1:
        raise ConfigError(f"--key=one needs exactly one --text_fields, got {len(text_fields)}")
    if no_exact and no_near and not exclude:
        raise ConfigError("nothing to do: --no_exact and --no_near without --exclude")
    if num_shards < 0 or records_per_shard < 1:
        raise ConfigError("--num_shards must be >= 0 and --records_per_shard >= 1")
    spec = input_spec(paths, text_fields) if fmt == TFRECORD else None
    return JobSettings(list(paths), fmt, list(text_fields), mode, rank_field or None, list(exclude), spec)


def input_spec(paths: Sequence[str], text_fields: Sequence[str]) -> specs.FeatureSpec:
    """The spec found next to the TFRecord inputs (all alike), or one naming only the text fields."""
    found: dict[str, specs.FeatureSpec] = {}
    for directory in sorted({p.rsplit("/", 1)[0] for p in paths}):
        schema = FileSystems.join(directory, specs.SCHEMA_FILE)
        if FileSystems.exists(schema):
            side = FileSystems.join(directory, specs.SPEC_FILE)
            with FileSystems.open(schema) as f:
                text = f.read().decode("utf-8")
            spec_json = None
            if FileSystems.exists(side):
                with FileSystems.open(side) as f:
                    spec_json = f.read().decode("utf-8")
            found[directory] = specs.read_spec_text(text, spec_json)
    if not found:
        return dedup_specs.text_fields_spec(text_fields)
    (first_dir, spec), *others = sorted(found.items())
    for directory, other in others:
        if other.features != spec.features:
            raise ConfigError(f"--input: the spec in {directory} differs from the one in {first_dir}")
    spec.require(dedup_specs.text_fields_spec(text_fields), where=first_dir)
    return spec


def job_texts(record: JobRecord) -> tuple[str, ...]:
    """``texts_fn`` of the dedup transforms for the job's records."""
    return record.texts


def job_rank(record: JobRecord) -> float:
    """``rank_fn``: the ``--rank_field`` value."""
    return record.rank


def job_source(record: JobRecord) -> str:
    """``scope_fn``: the input file."""
    return record.source


class WriteJobRecords(beam.PTransform):
    """Writes JobRecords byte for byte (or, with ``clustered``, ClusterMembers with their cluster
    added) in the input's format, ``folder/part-*`` in input order per shard, with the spec beside
    TFRecords when the input had one (plus the cluster features when ``clustered``)."""

    def __init__(self, folder: str, job: JobSettings, num_shards: int, records_per_shard: int,
                 clustered: bool = False) -> None:
        super().__init__()
        self._folder, self._job, self._clustered = folder, job, clustered
        self._shards, self._per_shard = num_shards, records_per_shard

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        is_tfrecord = self._job.fmt == TFRECORD
        suffix, frame = (".tfrecord.gz", "tfrecord") if is_tfrecord else (".jsonl.gz", "lines")
        if self._clustered:
            encode = clustered_example if is_tfrecord else clustered_json
            payload = beam.Map(lambda m: (record_sort_key(m.record), encode(m)))
        else:
            payload = beam.Map(lambda r: (record_sort_key(r), r.raw))
        spec = self._job.spec
        if spec is not None:
            spec = dedup_specs.with_cluster_features(spec) if self._clustered else spec
            _ = records.pipeline | "Spec" >> WriteSpec(spec, self._folder)
        return (records
                | "Payload" >> payload
                | "Write" >> WriteShards(FileSystems.join(self._folder, "part"), suffix, frame, "gzip",
                                         self._shards, self._per_shard))


class _WriteStatsFile(beam.DoFn):
    def __init__(self, path: str) -> None:
        self._path = path

    def process(self, stats: list[tuple[str, dict[str, Any]]]) -> Iterator[str]:
        """Yields the path written."""
        with FileSystems.create(self._path) as f:
            f.write((json.dumps(dict(sorted(stats)), indent=2, sort_keys=True) + "\n").encode("utf-8"))
        yield self._path


class WriteStats(beam.PTransform):
    """``{stage name: one-element stats PCollection}`` -> one JSON object by stage name in ``path``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def expand(self, stats: Mapping[str, beam.PCollection]) -> beam.PCollection:
        return (tuple(pcoll | f"Name{name}" >> beam.Map(lambda s, n=name: (n, s)) for name, pcoll in stats.items())
                | "AllStats" >> beam.Flatten()
                | "StatsList" >> beam.combiners.ToList()
                | "Write" >> beam.ParDo(_WriteStatsFile(self._path)))
