"""Reading translation pairs on Beam: TSV and JSONL line by line, aligned file pairs joined by line index.

Aligned files are joined by line *index* without ever holding a whole file on one worker. Both files
are read splittably as ``LineBatch``es and numbered by ``core.line_numbers.NumberLineBatches`` (each
batch learns the index of its first line from per-file batch summaries); then its lines are cut into
blocks of ``ALIGN_BLOCK`` consecutive indices, and the two files' blocks meet in a GroupByKey on
``(pair, block)``: bounded groups of at most 2 x ``ALIGN_BLOCK`` lines, in which lines are zipped by
index. Shuffling blocks instead of single lines keeps the shuffle at one element per few thousand
lines. A line whose partner is missing (the files differ in length) is dead-lettered with its line
number; a line that is not UTF-8 is dead-lettered by the read (stage ``read_input``) but keeps its
index, and its partner is filtered (``other_side_dead_lettered``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam

from transforms.core import accounting
from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter
from transforms.core.line_numbers import NumberLineBatches
from transforms.core.lines import LineBatch, ReadLineBatches
from transforms.core.parse_lines import ParseLines
from transforms.translation import records

ALIGN_BLOCK = 4096


def _lines_to_blocks(item: tuple[LineBatch, int], sides: Mapping[str, tuple[str, int]]
                     ) -> Iterator[tuple[tuple[str, int], tuple[int, int, list[bytes]]]]:
    """A batch with its start index -> ((pair name, block), (side, first index, lines)) pieces."""
    batch, start = item
    lines = batch.lines
    name, side = sides[batch.path]
    i = 0
    while i < len(lines):
        index = start + i
        block = index // ALIGN_BLOCK
        n = min(len(lines) - i, (block + 1) * ALIGN_BLOCK - index)
        yield (name, block), (side, index, [raw for _, raw in lines[i:i + n]])
        i += n


_MISSING: Any = object()  # no line with this index in one file of the pair


class _ZipBlock(AccountedDoFn):
    """The two sides' lines of one block -> pairs by line index; unmatched lines are dead-lettered."""

    stage = records.READ_STAGE

    def __init__(self, aligned: Sequence[records.AlignedFiles]) -> None:
        self._by_name = {a.name: a for a in aligned}

    def process(self, item: tuple[tuple[str, int], Iterable[tuple[int, int, list[bytes]]]]) -> Iterator[Any]:
        (name, _), pieces = item
        files_ = self._by_name[name]
        lines: tuple[dict[int, bytes], dict[int, bytes]] = ({}, {})
        for side, first, raws in pieces:
            for j, raw in enumerate(raws):
                lines[side][first + j] = raw
        for index in sorted(lines[0].keys() | lines[1].keys()):
            self.took_in(name)
            src, tgt = lines[0].get(index, _MISSING), lines[1].get(index, _MISSING)
            if src is _MISSING or tgt is _MISSING:
                path = files_.tgt_path if src is _MISSING else files_.src_path
                yield self.dead_letter(name, DeadLetter.make(
                    self.stage, "line_count_mismatch", (tgt if src is _MISSING else src) or b"", source=path,
                    line=index + 1, detail="the other file of the pair has no line with this number"))
                continue
            if src is None or tgt is None:
                # read_input dead-lettered a side's line (invalid UTF-8): there is no pair without it
                self.filtered(name, "other_side_dead_lettered")
                continue
            self.out(name)
            yield records.TranslationPair(src.decode("utf-8"), tgt.decode("utf-8"), files_.src_lang,
                                          files_.tgt_lang, files_.src_path, index + 1, -1)


class ReadAlignedFiles(beam.PTransform):
    """Moses/OPUS aligned file pairs -> TranslationPairs joined by line index (see the module docstring)."""

    def __init__(self, aligned: Sequence[records.AlignedFiles], desired_bundle_size: int = 64 << 20) -> None:
        super().__init__()
        self._aligned = tuple(aligned)
        self._bundle = desired_bundle_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        sides = {}
        for a in self._aligned:
            sides[a.src_path], sides[a.tgt_path] = (a.name, 0), (a.name, 1)
        read = pbegin | "Read" >> ReadLineBatches(sorted(sides), batch_size=ALIGN_BLOCK,
                                                  desired_bundle_size=self._bundle, keep_places=True)
        blocks = (
            (read.out | "Number" >> NumberLineBatches()).batches
            | "CutBlocks" >> beam.FlatMap(_lines_to_blocks, sides)
            | "GroupBlocks" >> beam.GroupByKey()
        )
        zipped = accounting.apply_accounted(blocks, "ZipByLineIndex", _ZipBlock(self._aligned))
        return _after_read(read, zipped, "Aligned")


class ReadTranslationPairs(beam.PTransform):
    """Every input of the plan -> one PCollection of raw TranslationPairs (accounted per input file)."""

    def __init__(self, plan: records.InputPlan, fields: records.JsonFields | None = None,
                 desired_bundle_size: int = 64 << 20) -> None:
        super().__init__()
        self._plan, self._fields, self._bundle = plan, fields or records.JsonFields(), desired_bundle_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        parts = []
        for fmt, langs in ((records.TSV, self._plan.tsv), (records.JSONL, self._plan.jsonl)):
            if langs:
                read = pbegin | f"Read{fmt.upper()}" >> ReadLineBatches(
                    sorted(langs), desired_bundle_size=self._bundle)
                parsed = accounting.apply_accounted(read.out, f"Parse{fmt.upper()}", ParseLines(
                    records.READ_STAGE, records.PairLineParser(fmt, langs, self._fields)))
                parts.append(_after_read(read, parsed, fmt.upper()))
        if self._plan.aligned:
            parts.append(pbegin | "ReadAligned" >> ReadAlignedFiles(self._plan.aligned, self._bundle))
        return _flatten_accounted(pbegin.pipeline, parts, "Inputs")


def _after_read(read: Accounted, parsed: Accounted, label: str) -> Accounted:
    """The parsed records, with the read_input stage's tallies and dead letters joined to the parser's."""
    return Accounted(parsed.out, (read.tally, parsed.tally) | f"{label}ReadTallies" >> beam.Flatten(),
                     (read.dead_letter, parsed.dead_letter) | f"{label}ReadDeadLetters" >> beam.Flatten())


def _flatten_accounted(pipeline: beam.Pipeline, parts: Sequence[Accounted], label: str) -> Accounted:
    return Accounted(*(tuple(getattr(p, f) for p in parts) | f"{label}{f.title()}" >> beam.Flatten(pipeline=pipeline)
                       for f in Accounted._fields))


