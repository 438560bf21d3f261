"""Line numbers for splittably read files, without holding a file on one worker: for batches of lines
(``NumberLineBatches``), and for the byte offsets that dead letters name (``offset_line_numbers``).

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
from apache_beam.io.filesystems import FileSystems

from transforms.core import input_checks as checks
from transforms.core.lines import LineBatch

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


def _line_ends(data: bytes, end: int, cr_only: bool) -> int:
    """Line ends in ``data[:end]`` as ``lines_from`` reads them: LF (CRLF counts once), and in a file
    without LF (``cr_only``) every CR too."""
    lf = data.count(b"\n", 0, end)
    return lf + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end) if cr_only else lf


def offset_line_numbers(item: tuple[str, Iterable[int]]) -> Iterator[tuple[tuple[str, int], int]]:
    """For one source, maps each dead letter's byte offset to its 1-based line number by streaming
    the file once and counting line ends; only offsets (not records) are held in memory."""
    path, offsets = item
    wanted = sorted(set(offsets))
    ends, pos, i = 0, 0, 0
    cr_only: bool | None = None  # told by the first block, as the readers tell it
    split_crlf = False  # the last chunk ended in CR and this one starts with LF: one line end, not two
    with FileSystems.open(path) as f:
        while i < len(wanted):
            chunk = f.read(checks.CHUNK_BYTES)
            if cr_only is None:
                cr_only = checks.cr_only(chunk[:checks.SNIFF_BYTES])
            split_crlf = cr_only and split_crlf and chunk[:1] == b"\n"
            while i < len(wanted) and (not chunk or wanted[i] < pos + len(chunk)):
                k = max(0, wanted[i] - pos)
                yield (path, wanted[i]), ends + _line_ends(chunk, k, cr_only) - (split_crlf and k > 0) + 1
                i += 1
            if not chunk:
                break
            ends += _line_ends(chunk, len(chunk), cr_only) - split_crlf
            split_crlf = chunk[-1:] == b"\r"
            pos += len(chunk)
