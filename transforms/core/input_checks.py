"""Checks every input reader makes, defined once: whole compressed streams, text that is text.

Three ways an input can be wrong without any single record looking wrong, each with one dead-letter
reason that every pipeline uses (stage ``read_input``, the file as ``source``, the byte offset in
the decompressed stream as ``offset``):

- ``truncated_input``: a compressed stream (every compression Beam detects: gzip, bzip2, xz/lzma,
  deflate, zstd) that ends before its end marker or fails its checksum. Beam's ``CompressedFile``
  reads such a stream to wherever it stops and reports a clean end of file, so a file cut in half
  reads as a shorter whole one whose last line is half a record. ``open_checked`` decompresses with
  Python's own gzip/bz2/lzma readers instead (and a small checked stream for deflate and zstd),
  which raise at the broken end; the reader turns that into one dead letter holding the partial
  last line (never a record).
- ``not_text``: a file whose first block holds a NUL byte or is mostly not UTF-8 (an image, a
  UTF-16 file, an archive named ``.txt``). One dead letter for the whole file; nothing is read from
  it, because decoding it line by line would make thousands of junk records or dead letters.
- ``invalid_utf8``: one line of a text file that is not valid UTF-8. The line is dead-lettered;
  the rest of the file is read. A text feature of a TFRecord input that is not UTF-8 gets the same
  reason (and ``utf8_error``'s detail) from the stage that parses the record.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import zstandard  # Beam's own dependency for .zst
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.core.accounting import DeadLetter

READ_STAGE = "read_input"
TRUNCATED_INPUT = "truncated_input"
NOT_TEXT = "not_text"
INVALID_UTF8 = "invalid_utf8"

# The block of a file looked at to decide whether it is text, and the share of its bytes that may
# be outside UTF-8 before it is not: Latin-1 prose has a few percent, random bytes about half.
SNIFF_BYTES = 1 << 16
MAX_UNDECODABLE_FRACTION = 0.1

# How much a reader reads at a time: lines, TFRecord frames, line ends counted for line numbers.
CHUNK_BYTES = 1 << 20

# What Python's decompressors raise at a truncated or corrupt stream (bz2 raises a plain OSError,
# told apart from an I/O error by its message).
_STREAM_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, zstandard.ZstdError)
_BZ2_CORRUPT = "Invalid data stream"
_UNDECODABLE = re.compile("[\udc80-\udcff]")


class InputProblem(NamedTuple):
    """A problem found while reading a file, travelling as an element until it is dead-lettered."""

    path: str
    offset: int
    reason: str
    detail: str
    record: bytes = b""

    def letter(self) -> DeadLetter:
        """The one dead letter every pipeline writes for it."""
        return DeadLetter.make(READ_STAGE, self.reason, self.record, source=self.path, offset=self.offset,
                               detail=self.detail)


class TruncatedInputError(Exception):
    """A compressed stream broke off; ``offset`` is where the unread (partial) line starts."""

    def __init__(self, offset: int, record: bytes, detail: str) -> None:
        super().__init__(detail)
        self.offset, self.record, self.detail = offset, record, detail

    def problem(self, path: str) -> InputProblem:
        return InputProblem(path, self.offset, TRUNCATED_INPUT, self.detail, self.record)


class _CheckedStream(io.RawIOBase):
    """Decompressed reading for the formats Python has no file reader for (zlib-wrapped deflate,
    as Beam writes ``.deflate``, and zstd), which raises EOFError where the stream breaks off.
    Concatenated streams (frames) are read one after the other."""

    _IN = 1 << 16  # compressed bytes per step, which bounds the output of one step

    def __init__(self, raw: Any, new_decompressor: Callable[[], Any]) -> None:
        super().__init__()
        self._raw, self._new = raw, new_decompressor
        self._d = new_decompressor()
        self._pending = b""
        self._started = False

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        while not self._pending:
            if self._d.eof:
                data = self._d.unused_data or self._raw.read(self._IN)
                if not data:
                    return b""
                self._d = self._new()
            else:
                data = self._raw.read(self._IN)
                if not data:
                    if not self._started:
                        return b""  # an empty file, as gzip reads it
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            self._started = True
            self._pending = self._d.decompress(data)
        size = len(self._pending) if size is None or size < 0 else size
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    read = read1

    def close(self) -> None:
        self._raw.close()
        super().close()


def _zstd() -> Any:
    return zstandard.ZstdDecompressor(max_window_size=1 << 31).decompressobj()


_OPENERS: dict[str, Callable[[Any], Any]] = {
    CompressionTypes.GZIP: lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    CompressionTypes.BZIP2: bz2.BZ2File,
    CompressionTypes.LZMA: lzma.LZMAFile,
    CompressionTypes.DEFLATE: lambda f: _CheckedStream(f, zlib.decompressobj),
    CompressionTypes.ZSTD: lambda f: _CheckedStream(f, _zstd),
}


def open_checked(path: str) -> Any:
    """Opens a file decompressed (by extension, as Beam detects it) with readers that raise at a
    truncated or corrupt stream, where Beam's ``CompressedFile`` would report a clean end of file."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    kind = CompressionTypes.detect_compression_type(path)
    return raw if kind == CompressionTypes.UNCOMPRESSED else _OPENERS[kind](raw)


def stream_error(e: BaseException) -> str | None:
    """What a decompressor's exception says about the stream, or None if it is not about the
    stream (a real I/O error, which must fail the bundle so that the runner retries it)."""
    if isinstance(e, EOFError):
        return "the compressed stream ends before its end marker (the file is truncated)"
    if isinstance(e, _STREAM_ERRORS) or (type(e) is OSError and str(e) == _BZ2_CORRUPT):
        return f"the compressed stream is corrupt here ({type(e).__name__}: {e})"
    return None


def read_chunk(f: Any, size: int) -> bytes:
    """Up to ``size`` decompressed bytes, returned as soon as some are ready (``read1``), so the
    lines before a broken end are all read before the error is raised."""
    read1 = getattr(f, "read1", None)
    return read1(size) if read1 is not None else f.read(size)


def text_problem(block: bytes, complete: bool) -> str | None:
    """Why the first block of a file says it is not text, or None. ``complete`` tells whether the
    block is the whole file (else a UTF-8 sequence may be cut at its end)."""
    nul = block.find(b"\x00")
    if nul >= 0:
        hint = " (UTF-16 text? convert it to UTF-8)" if block[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        return f"NUL byte at offset {nul}{hint}: not a text file"
    body = block if complete else block[:-3]
    if not body:
        return None
    bad = len(_UNDECODABLE.findall(body.decode("utf-8", "surrogateescape")))
    if bad > MAX_UNDECODABLE_FRACTION * len(body):
        return (f"{bad} of the first {len(body)} bytes are not UTF-8 "
                f"(more than {MAX_UNDECODABLE_FRACTION:.0%}): not a UTF-8 text file")
    return None


def cr_only(block: bytes) -> bool:
    """Whether a file whose first block this is ends its lines with CR alone (classic Mac OS): it
    has CRs and no LF. Only such a file reads a lone CR as a line end."""
    return b"\n" not in block and b"\r" in block


def sniff(path: str) -> tuple[InputProblem | None, bool]:
    """What every reader of a file learns from its first block, the same for every byte range: a
    ``not_text`` problem (or None), and whether its lines end with CR alone. A stream that breaks
    inside the first block is left to the line reader, which reports it as truncated."""
    with open_checked(path) as f:
        parts, size = [], 0
        try:
            while size < SNIFF_BYTES:
                chunk = read_chunk(f, SNIFF_BYTES - size)
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
        except Exception as e:
            if stream_error(e) is None:
                raise
        block = b"".join(parts)
    detail = text_problem(block, complete=size < SNIFF_BYTES)
    return (InputProblem(path, 0, NOT_TEXT, detail, block[:200]) if detail else None), cr_only(block)


def utf8_error(data: bytes, what: str = "the line") -> str | None:
    """None if ``data`` is valid UTF-8, else the ``detail`` of its ``invalid_utf8`` dead letter."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid UTF-8 at byte {e.start} of {what}: {e.reason}"
    return None


def utf8_problem(path: str, offset: int, line: bytes) -> InputProblem | None:
    """None if the line is valid UTF-8, else its ``invalid_utf8`` problem."""
    detail = utf8_error(line)
    return None if detail is None else InputProblem(path, offset, INVALID_UTF8, detail, line)
