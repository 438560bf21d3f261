"""Transcoding ``.7z`` dump archives into line-aligned plain shards that Beam can read splittably.

Beam cannot read 7z (an LZMA2 container with its index at the end), and a 7z stream cannot be split.
``TranscodeArchives`` is a step of the same pipeline: one worker per archive streams the members that
matter (``Posts.xml``, ``PostLinks.xml``) through py7zr and writes them as plain shards of about
``shard_bytes``, always cut after a newline, so each shard holds whole rows. The shards are named
``TRANSCODE_DIR/<site>/<Kind>-NNNNN.xml`` (which ``site_and_kind`` understands) and their paths flow
into the splittable reader; nothing is ever held in memory beyond one write buffer.

A 7z archive keeps its index at its end, so a cut archive cannot even be opened; it is told apart
from other broken archives by its start header (which says how long the archive is) and becomes a
``truncated_input`` dead letter of stage ``read_input``, like a cut gzip or bzip2 stream (see
``transforms.core.input_checks``); so does a member whose LZMA stream or CRC is corrupt. The shards go
through the same checks as every text input when they are read.
"""

from __future__ import annotations

import lzma
import struct
from collections.abc import Iterator
from typing import Any

import py7zr
from apache_beam.io.filesystems import FileSystems
from py7zr.io import Py7zIO, WriterFactory

from transforms.core import input_checks as checks
from transforms.core.accounting import AccountedDoFn, DeadLetter
from transforms.stackexchange.dumps import POSTLINKS, POSTS

MEMBERS = {"Posts.xml": POSTS, "PostLinks.xml": POSTLINKS}


class _ShardWriter(Py7zIO):
    """A py7zr output that writes one member as newline-aligned shards."""

    def __init__(self, prefix: str, shard_bytes: int) -> None:
        self._prefix = prefix
        self._shard_bytes = shard_bytes
        self._index = -1
        self._file: Any = None
        self._written = 0
        self._total = 0
        self.paths: list[str] = []

    def _next_shard(self) -> None:
        self._index += 1
        path = f"{self._prefix}-{self._index:05d}.xml"
        self._file = FileSystems.create(path)
        self._written = 0
        self.paths.append(path)

    def write(self, s: bytes | bytearray) -> int:
        data = bytes(s)
        self._total += len(data)
        while data:
            if self._file is None:
                self._next_shard()
            if self._written < self._shard_bytes:
                self._file.write(data)
                self._written += len(data)
                return len(s)
            # The shard is full: finish its last line, then start the next shard lazily.
            nl = data.find(b"\n")
            head = data if nl < 0 else data[: nl + 1]
            self._file.write(head)
            self._written += len(head)
            data = data[len(head):]
            if nl >= 0:
                self._file.close()
                self._file = None
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        raise OSError("shard writer is write-only")

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._total

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self._total

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Factory(WriterFactory):
    def __init__(self, out_dir: str, site: str, shard_bytes: int) -> None:
        self._out_dir, self._site, self._shard_bytes = out_dir, site, shard_bytes
        self.writers: list[_ShardWriter] = []

    def create(self, filename: str) -> Py7zIO:
        kind = MEMBERS[filename.replace("\\", "/").rsplit("/", 1)[-1]]
        w = _ShardWriter(FileSystems.join(self._out_dir, self._site, kind), self._shard_bytes)
        self.writers.append(w)
        return w


def transcode_archive(path: str, site: str, kind: str | None, out_dir: str, shard_bytes: int) -> list[str]:
    """Streams the Posts/PostLinks members of one archive into shards; returns the shard paths."""
    with FileSystems.open(path, compression_type="uncompressed") as f, py7zr.SevenZipFile(f) as archive:
        names = archive.getnames()
        targets = [n for n in names if n.replace("\\", "/").rsplit("/", 1)[-1] in MEMBERS
                   and (kind is None or MEMBERS[n.replace("\\", "/").rsplit("/", 1)[-1]] == kind)]
        if not targets:
            raise ValueError(f"no Posts.xml or PostLinks.xml in archive (members: {names[:10]})")
        factory = _Factory(out_dir, site, shard_bytes)
        archive.extract(targets=targets, factory=factory)
        for w in factory.writers:
            w.close()
    return sorted(p for w in factory.writers for p in w.paths)


_SIGNATURE = b"7z\xbc\xaf\x27\x1c"
_START_HEADER = 32  # signature, version, CRC, then the next (end) header's offset and size


def truncation(path: str) -> str | None:
    """Why the archive is shorter than its start header says it is, or None if it is not."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        head = f.read(_START_HEADER)
        size = len(head) + sum(len(c) for c in iter(lambda: f.read(1 << 20), b""))
    if len(head) < _START_HEADER or not head.startswith(_SIGNATURE):
        return None
    offset, length = struct.unpack("<QQ", head[12:28])
    expected = _START_HEADER + offset + length
    if size >= expected:
        return None
    return f"the archive is {size} bytes, its start header says {expected} (the file is truncated)"


class TranscodeArchives(AccountedDoFn):
    """(archive_path, site, kind_or_None) -> shard paths. A cut or corrupt archive is a
    ``truncated_input`` dead letter of stage ``read_input``; another broken one ``bad_archive``."""

    stage = "transcode_7z"

    def __init__(self, out_dir: str, shard_bytes: int = 256 << 20) -> None:
        self._out_dir, self._shard_bytes = out_dir, shard_bytes

    def process(self, item: tuple[str, str, str | None]) -> Iterator[Any]:
        path, site, kind = item
        try:
            shards = transcode_archive(path, site, kind, self._out_dir, self._shard_bytes)
        except (py7zr.exceptions.ArchiveError, py7zr.exceptions.PasswordRequired, ValueError, OSError, EOFError,
                lzma.LZMAError) as e:
            cut = truncation(path)
            corrupt = isinstance(e, (py7zr.exceptions.CrcError, lzma.LZMAError))
            if cut or corrupt:
                detail = cut or f"a member's compressed stream is corrupt ({type(e).__name__}: {e})"[:500]
                self.took_in(path, stage=checks.READ_STAGE)
                yield self.dead_letter(path, checks.InputProblem(path, -1, checks.TRUNCATED_INPUT, detail).letter(),
                                       stage=checks.READ_STAGE)
                return
            self.took_in(path)
            yield self.dead_letter(path, DeadLetter.make(self.stage, "bad_archive", b"", source=path,
                                                         detail=f"{type(e).__name__}: {e}"[:500]))
            return
        self.took_in(path)
        self.out(path)
        yield from shards
