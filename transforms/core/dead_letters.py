"""Writing a run's dead letters, each with the line number of its place where it has one."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.core.line_numbers import offset_line_numbers
from transforms.core.shards import WriteShards


class WriteDeadLetters(beam.PTransform):
    """Resolves line numbers for dead letters that carry a byte offset, then writes them as
    ``OUTPUT/dead_letter/dead_letter-SSSSS-of-NNNNN.jsonl.gz`` (one JSON object per line)."""

    def __init__(self, output_dir: str) -> None:
        super().__init__()
        self._prefix = FileSystems.join(output_dir, "dead_letter", "dead_letter")

    def expand(self, letters: beam.PCollection) -> beam.PCollection:
        with_offset = letters | "HasOffset" >> beam.Partition(
            lambda d, _: 0 if d.offset >= 0 and d.source and d.line < 0 else 1, 2)
        lines = (
            with_offset[0]
            | "OffsetBySource" >> beam.Map(lambda d: (d.source, d.offset))
            | "GroupBySource" >> beam.GroupByKey()
            | "CountNewlines" >> beam.FlatMap(offset_line_numbers)
        )
        keyed = with_offset[0] | "KeyByPlace" >> beam.Map(lambda d: ((d.source, d.offset), d))
        resolved = (
            {"letters": keyed, "line": lines}
            | "JoinLines" >> beam.CoGroupByKey()
            | "SetLine" >> beam.FlatMap(
                lambda kv: [dataclasses.replace(d, line=kv[1]["line"][0]) for d in kv[1]["letters"]])
        )
        return (
            (resolved, with_offset[1])
            | "AllLetters" >> beam.Flatten()
            | "ToJson" >> beam.Map(lambda d: (d.to_json().encode("utf-8"),) * 2)
            | "Write" >> WriteShards(self._prefix, ".jsonl.gz", "lines", "gzip", records_per_shard=100_000)
        )
