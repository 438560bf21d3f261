"""Reading text files splittably as batches of lines with their byte offsets.

``ReadLineBatches`` is Beam's splittable file reading (``ReadAllFiles``: files are cut into byte ranges
that workers read in parallel; compressed files are read whole) with two differences from
``ReadFromText``: every line keeps the byte offset where it starts (so a dead letter can name its exact
place, and a line number can be resolved for it later: ``transforms.core.line_numbers``), and lines
travel in batches, because on the DirectRunner a Python element costs about 12 us and a dump has
millions of short lines. A line ends at LF or CRLF (or at a lone CR in a file that has no LF). Lines
stay bytes (XML parsers want bytes), but every one has been checked to be UTF-8, and compressed
streams are checked to their end: ``transforms.core.input_checks`` says how, and ``ReadLineBatches``
returns the dead letters of a ``read_input`` stage. Another range reader of text subclasses
``CheckedTextSource`` and reads with ``lines_from``, so it makes the same checks and cuts the same
lines.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io import filebasedsource
from apache_beam.io.filesystem import CompressionTypes

from transforms.core import input_checks as checks
from transforms.core.accounting import Accounted, AccountedDoFn, apply_accounted


class LineBatch(NamedTuple):
    """Consecutive lines of one file: ``(byte_offset, line_without_line_end)`` pairs. A line is
    None only where ``ReadLineBatches(keep_places=True)`` dead-lettered it (invalid UTF-8)."""

    path: str
    lines: list[tuple[int, bytes]]


class CheckedTextSource(filebasedsource.FileBasedSource):
    """A splittable text source whose every range reader starts the same way: the file's first block,
    looked at alike by every range, says whether the file is text and how its lines end. A file that
    is not text gives one ``not_text`` problem, yielded by the range holding offset 0, and no records.
    Otherwise ``read_text`` reads the range (with ``lines_from(f, start, cr_only)``)."""

    def read_records(self, file_name: str, range_tracker: Any) -> Iterator[Any]:
        problem, cr_only = checks.sniff(file_name)
        start = range_tracker.start_position()
        if problem is None:
            yield from self.read_text(file_name, range_tracker, start, cr_only)
        elif start == 0 and range_tracker.try_claim(0):
            yield problem

    def read_text(self, file_name: str, range_tracker: Any, start: int, cr_only: bool) -> Iterator[Any]:
        """The records (and ``InputProblem`` s) of the range from ``start`` of a text file."""
        raise NotImplementedError


class _LineBatchSource(CheckedTextSource):
    """A FileBasedSource yielding ``LineBatch`` es and ``InputProblem`` s; a line belongs to the
    range holding its first byte. Every range reader looks at the file's first block, and a file
    that is not text gives one ``not_text`` problem (from the range holding offset 0) and no lines;
    a broken compressed stream gives a ``truncated_input`` problem instead of its partial last line."""

    def __init__(self, file_pattern: str, batch_size: int, **kwargs: Any) -> None:
        super().__init__(file_pattern, **kwargs)
        self._batch_size = batch_size

    def read_text(self, file_name: str, range_tracker: Any, start: int,
                  cr_only: bool) -> Iterator[LineBatch | checks.InputProblem]:
        batch: list[tuple[int, bytes]] = []
        with checks.open_checked(file_name) as f:
            try:
                for offset, line in lines_from(f, start, cr_only):
                    if not range_tracker.try_claim(offset):
                        break
                    batch.append((offset, line))
                    if len(batch) >= self._batch_size:
                        yield LineBatch(file_name, batch)
                        batch = []
            except checks.TruncatedInputError as e:
                if batch:
                    yield LineBatch(file_name, batch)
                    batch = []
                yield e.problem(file_name)
        if batch:
            yield LineBatch(file_name, batch)


def lines_from(f: Any, start: int = 0, cr_only: bool = False) -> Iterator[tuple[int, bytes]]:
    """``(byte_offset, line_without_line_end)`` for every line that starts at or after ``start`` in
    an open (decompressed) file, to its end (the caller claims offsets and stops).

    Lines end at LF, and a CR before the LF is dropped (CRLF). A file whose first block has CRs and
    no LF (``input_checks.cr_only``, told by every range reader alike) is read with CR, CRLF and LF
    all as line ends; in any other file a lone CR is a character of its line, so one stray CR in a
    Moses file cannot shift every later line of it against its partner. A line starts after a line
    end; with ``start > 0`` the file is entered one byte early and the text up to the first line end
    is skipped (it belongs to the range before), so a CRLF cut between its two bytes still ends one
    line, never makes an empty one.

    A UTF-8 byte-order mark at the start of the file is not text: it is dropped from the first line
    (whose offset stays 0) here, for every reader, so a header is still told from a row and column
    names do not begin with ``\ufeff``.

    Raises ``TruncatedInputError`` (holding the unfinished last line) when the stream breaks off.
    """
    lines = (_cr_lines if cr_only else _lf_lines)(f, start)
    return lines if start else _without_bom(lines)


UTF8_BOM = b"\xef\xbb\xbf"


def _without_bom(lines: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """``lines`` of a file read from its start, with a byte-order mark dropped from the first."""
    first = next(lines, None)
    if first is None:
        return
    yield first[0], first[1].removeprefix(UTF8_BOM)
    yield from lines


def _next_chunk(f: Any, offset: int, partial: bytes) -> bytes:
    """The next decompressed chunk; a stream that breaks off raises ``TruncatedInputError`` holding
    ``partial``, the unfinished line that starts at ``offset``."""
    try:
        return checks.read_chunk(f, checks.CHUNK_BYTES)
    except Exception as e:
        detail = checks.stream_error(e)
        if detail is None:
            raise
        raise checks.TruncatedInputError(offset, partial, detail) from None


def _lf_lines(f: Any, start: int) -> Iterator[tuple[int, bytes]]:
    pos = 0  # file offset of buf[0]
    buf = b""
    cursor = 0  # index in buf of the next line's first byte
    skipping = start > 0
    if skipping:
        f.seek(start - 1)
        pos = start - 1
    while True:
        lf = buf.find(b"\n", cursor)
        if lf < 0:
            chunk = _next_chunk(f, pos + cursor, b"" if skipping else buf[cursor:])
            if not chunk:
                if cursor < len(buf) and not skipping:
                    yield pos + cursor, buf[cursor:-1] if buf.endswith(b"\r") else buf[cursor:]
                return
            pos += cursor
            buf = buf[cursor:] + chunk
            cursor = 0
            continue
        if skipping:
            skipping = False
        else:
            yield pos + cursor, buf[cursor:lf - 1] if lf > cursor and buf[lf - 1] == 13 else buf[cursor:lf]
        cursor = lf + 1


def _cr_lines(f: Any, start: int) -> Iterator[tuple[int, bytes]]:
    pos = 0  # file offset of buf[0]
    buf = b""
    cursor = 0  # index in buf of the next line's first byte
    # The next LF and CR at or after cursor (len(buf): none in buf), each searched again only once
    # passed, so the buffer is never rescanned for a kind of line end it does not hold.
    lf = cr = -1
    skipping = start > 0
    eof = False
    if skipping:
        f.seek(start - 1)
        pos = start - 1
    while True:
        if lf < cursor:
            lf = buf.find(b"\n", cursor)
            lf = len(buf) if lf < 0 else lf
        if cr < cursor:
            cr = buf.find(b"\r", cursor)
            cr = len(buf) if cr < 0 else cr
        end = min(lf, cr)
        if end < len(buf) and (end == lf or end + 1 < len(buf) or eof):  # a CR needs the next byte
            after = end + 2 if end == cr and end + 1 == lf else end + 1
            if skipping:
                skipping = False
            else:
                yield pos + cursor, buf[cursor:end]
            cursor = after
            continue
        if eof:
            if cursor < len(buf) and not skipping:
                yield pos + cursor, buf[cursor:]
            return
        chunk = _next_chunk(f, pos + cursor, b"" if skipping else buf[cursor:])
        if chunk:
            pos += cursor
            buf = buf[cursor:] + chunk
            cursor = 0
        else:
            eof = True
        lf = cr = -1


class _CheckLines(AccountedDoFn):
    """Stage ``read_input`` (scope: the file): every line read is a record; a line that is not
    UTF-8 and every ``InputProblem`` of the reader become dead letters, the rest passes on."""

    stage = checks.READ_STAGE

    def __init__(self, keep_places: bool) -> None:
        self._keep_places = keep_places

    def process(self, item: LineBatch | checks.InputProblem) -> Iterator[Any]:
        if isinstance(item, checks.InputProblem):
            self.took_in(item.path)
            yield self.dead_letter(item.path, item.letter())
            return
        path, lines = item
        self.took_in(path, len(lines))
        try:  # one decode for the batch; a line end is never part of a UTF-8 sequence
            b"\n".join(line for _, line in lines).decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            self.out(path, len(lines))
            yield item
            return
        kept: list[tuple[int, Any]] = []
        for offset, line in lines:
            problem = checks.utf8_problem(path, offset, line)
            if problem is None:
                self.out(path)
                kept.append((offset, line))
                continue
            yield self.dead_letter(path, problem.letter())
            if self._keep_places:
                kept.append((offset, None))
        if kept:
            yield LineBatch(path, kept)


class ReadLineBatches(beam.PTransform):
    """Reads text files (a PCollection of paths, or a list given at construction) as checked
    ``LineBatch`` es; returns ``Accounted`` with stage ``read_input`` per file.

    Plain files are split into byte ranges of about ``desired_bundle_size`` bytes; compressed files
    are read whole (their formats cannot be split) and checked to the end of their stream. The
    checks of ``transforms.core.input_checks`` apply: a file that is not text and a truncated stream are
    dead letters (``not_text``, ``truncated_input``), and so is each line that is not UTF-8
    (``invalid_utf8``); with ``keep_places`` such a line stays in its batch as None, for readers
    that pair lines by their index.
    """

    def __init__(self, paths: Sequence[str] | None = None, batch_size: int = 256,
                 desired_bundle_size: int = 64 << 20, keep_places: bool = False) -> None:
        super().__init__()
        self._paths = list(paths) if paths is not None else None
        self._batch_size = batch_size
        self._bundle = desired_bundle_size
        self._keep_places = keep_places

    def expand(self, pcoll: Any) -> Accounted:
        batch_size = self._batch_size

        def source_from_file(path: str) -> _LineBatchSource:
            return _LineBatchSource(path, batch_size, compression_type=CompressionTypes.AUTO,
                                    validate=False)

        if self._paths is not None:
            pcoll = pcoll | "Paths" >> beam.Create(self._paths)
        read = pcoll | "ReadRanges" >> filebasedsource.ReadAllFiles(
            True, CompressionTypes.AUTO, self._bundle, 1 << 20, source_from_file, False)
        return apply_accounted(read, "CheckLines", _CheckLines(self._keep_places))

