"""Line numbers for splittably read files, without holding a file on one worker.

``ReadLineBatches(keep_places=True)`` yields batches of consecutive lines with their byte offsets, in
no particular order. A first, tiny pass turns each batch into ``(first_offset, line_count)``; per
file these summaries are sorted and prefix-summed into the index of each batch's first line (a file
of 10^9 lines has 2.5x10^5 summaries at 4096 lines per batch: small enough for one worker), and each
batch learns its start index by a join on ``(path, first_offset)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from transforms.core.files import LineBatch

STARTS = "starts"


def batch_summary(batch: LineBatch) -> tuple[str, tuple[int, int]]:
    """``(path, (first byte offset, number of lines))`` of a batch."""
    return batch.path, (batch.lines[0][0], len(batch.lines))


def batch_starts(item: tuple[str, Iterable[tuple[int, int]]]) -> Iterator[Any]:
    """Per file: the 0-based line index of each batch's first line (tagged ``starts``, keyed by
    ``(path, first offset)``), then the file's line count ``(path, lines)``."""
    path, summaries = item
    index = 0
    for offset, n in sorted(summaries):
        yield beam.pvalue.TaggedOutput(STARTS, ((path, offset), index))
        index += n
    yield path, index


class Numbered(NamedTuple):
    """``batches``: ``(LineBatch, index of its first line)``; ``line_counts``: ``(path, lines)``."""

    batches: beam.PCollection
    line_counts: beam.PCollection


class NumberLineBatches(beam.PTransform):
    """``LineBatch``es (read with ``keep_places=True``, so every line keeps its place) -> each batch
    with the 0-based index of its first line in its file, and each file's line count."""

    def expand(self, batches: beam.PCollection) -> Numbered:
        numbered = (
            batches
            | "Summaries" >> beam.Map(batch_summary)
            | "SummariesPerFile" >> beam.GroupByKey()
            | "StartIndices" >> beam.FlatMap(batch_starts).with_outputs(STARTS, main="line_counts")
        )
        keyed = batches | "KeyByPlace" >> beam.Map(lambda b: ((b.path, b.lines[0][0]), b))
        joined = (
            {"batch": keyed, "start": numbered[STARTS]}
            | "JoinStarts" >> beam.CoGroupByKey()
            | "BatchWithStart" >> beam.MapTuple(lambda _, j: (j["batch"][0], j["start"][0]))
        )
        return Numbered(joined, numbered.line_counts)
