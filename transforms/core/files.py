"""Reading lines splittably with their byte offsets, and writing deterministic shards.

Reading: ``ReadLineBatches`` is Beam's splittable file reading (``ReadAllFiles``: files are cut into
byte ranges that workers read in parallel; compressed files are read whole) with two differences from
``ReadFromText``: every line keeps the byte offset where it starts (so a dead letter can name its exact
place, and a line number can be resolved for it later), and lines travel in batches, because on the
DirectRunner a Python element costs about 12 us and a dump has millions of short lines. A line ends
at LF or CRLF (or at a lone CR in a file that has no LF). Lines stay bytes (XML parsers want bytes),
but every one has been checked to be UTF-8, and compressed streams are checked to their end:
``transforms.core.input_checks`` says how, and ``ReadLineBatches`` returns the dead letters of a
``read_input`` stage.

Writing: ``WriteShards`` assigns every record to a shard by a hash of its sort key, sorts each shard by
that key, and writes it whole. Output bytes therefore depend only on the records, never on bundle
boundaries or worker counts; with a seeded hash as the key the order is a deterministic global shuffle.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import itertools
import math
import struct
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import google_crc32c
import numpy as np
from apache_beam.io import filebasedsource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from specs import SCHEMA_FILE, SPEC_FILE, FeatureSpec
from transforms.core import input_checks as checks
from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.core.errors import ConfigError
from transforms.core.seeding import stable_hash64

_CHUNK = 1 << 20


class LineBatch(NamedTuple):
    """Consecutive lines of one file: ``(byte_offset, line_without_line_end)`` pairs. A line is
    None only where ``ReadLineBatches(keep_places=True)`` dead-lettered it (invalid UTF-8)."""

    path: str
    lines: list[tuple[int, bytes]]


def read_bytes(path: str) -> bytes:
    """A small file's bytes (a vocabulary, a sidecar) through Beam's FileSystems: local, gs:// or any
    filesystem the pipeline's options configure."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def match_files(patterns: Sequence[str], flag: str = "--input") -> list[str]:
    """Expands files and globs (local or gs://) to a sorted list of paths; fails with one line if a
    pattern matches nothing or cannot be listed."""
    paths: set[str] = set()
    for pattern in patterns:
        try:
            result = FileSystems.match([pattern])[0]
        except Exception as e:  # any listing failure is a configuration error here
            raise ConfigError(f"{flag}: cannot list {pattern!r}: {type(e).__name__}: {e}".splitlines()[0]) from None
        found = [m.path for m in result.metadata_list]
        if not found:
            raise ConfigError(f"{flag}: no file matches {pattern!r}")
        paths.update(found)
    return sorted(paths)


class _LineBatchSource(filebasedsource.FileBasedSource):
    """A FileBasedSource yielding ``LineBatch`` es and ``InputProblem`` s; a line belongs to the
    range holding its first byte. Every range reader looks at the file's first block, and a file
    that is not text gives one ``not_text`` problem (from the range holding offset 0) and no lines;
    a broken compressed stream gives a ``truncated_input`` problem instead of its partial last line."""

    def __init__(self, file_pattern: str, batch_size: int, **kwargs: Any) -> None:
        super().__init__(file_pattern, **kwargs)
        self._batch_size = batch_size

    def read_records(self, file_name: str, range_tracker: Any) -> Iterator[LineBatch | checks.InputProblem]:
        start = range_tracker.start_position()
        problem, cr_only = checks.sniff(file_name)
        if problem is not None:
            if start == 0 and range_tracker.try_claim(0):
                yield problem
            return
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

    Raises ``TruncatedInputError`` (holding the unfinished last line) when the stream breaks off.
    """
    return (_cr_lines if cr_only else _lf_lines)(f, start)


def _next_chunk(f: Any, offset: int, partial: bytes) -> bytes:
    """The next decompressed chunk; a stream that breaks off raises ``TruncatedInputError`` holding
    ``partial``, the unfinished line that starts at ``offset``."""
    try:
        return checks.read_chunk(f, _CHUNK)
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


# --- deterministic sharded writing -----------------------------------------------------------

def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@functools.lru_cache(maxsize=65536)
def _frame_header(size: int) -> bytes:
    length = struct.pack("<Q", size)
    return length + struct.pack("<I", _masked_crc(length))


def tfrecord_frame(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC32C of the length, data, masked CRC32C of the data. (Records
    of a data set have few distinct lengths, so the length's part is cached.)"""
    return _frame_header(len(data)) + data + _CRC.pack(_masked_crc(data))


def tfrecord_frames(payloads: Sequence[bytes]) -> bytes:
    """``tfrecord_frame`` of each payload, joined: the CRCs are masked with numpy and the pieces
    joined by C loops (``map``), about twice as fast as framing record by record in Python."""
    if not payloads:
        return b""
    crc = np.fromiter(map(google_crc32c.value, payloads), dtype=np.uint32, count=len(payloads))
    masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)  # wraps mod 2**32
    tails = masked.astype("<u4").tobytes()
    crcs = [tails[i:i + 4] for i in range(0, len(tails), 4)]
    return b"".join(itertools.chain.from_iterable(zip(map(_frame_header, map(len, payloads)), payloads, crcs,
                                                      strict=True)))


_CRC = struct.Struct("<I")


def shard_name(prefix: str, index: int, count: int, suffix: str) -> str:
    return f"{prefix}-{index:05d}-of-{count:05d}{suffix}"


_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def key_hash(key: bytes) -> int:
    """The 64-bit hash that places a record by its sort key: an 8-byte key (what ``sort_key`` and the
    pretraining examples use) through SplitMix64's bijective mixer, so ``key_hashes`` can do a batch
    with numpy; any other key through BLAKE2b."""
    if len(key) == 8:
        return int(key_hashes([key])[0])
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def key_hashes(keys: Sequence[bytes]) -> np.ndarray:
    """``key_hash`` of each key, as uint64."""
    if all(len(k) == 8 for k in keys):
        x = np.frombuffer(b"".join(keys), dtype=">u8").astype(np.uint64)
        x ^= x >> np.uint64(30)
        x *= _MIX[0]
        x ^= x >> np.uint64(27)
        x *= _MIX[1]
        x ^= x >> np.uint64(31)
        return x
    return np.fromiter((key_hash(k) for k in keys), dtype=np.uint64, count=len(keys))


def shard_of(key_hash: int, num_shards: int) -> int:
    """The shard of a record whose sort key hashes to ``key_hash`` (64 bits): shards are equal ranges
    of the hash, so a file of records sorted by hash holds each shard's records in one stretch."""
    return (key_hash * num_shards) >> 64


def _shard_bounds(index: int, num_shards: int) -> tuple[int, int]:
    """The hashes ``[lo, hi)`` of shard ``index``: ``shard_of(h) == index`` exactly for those."""
    return -((-index << 64) // num_shards), -((-(index + 1) << 64) // num_shards)


_WRITE_BATCH = 4096  # records joined per write call: one compressor call instead of thousands


def _split_by_shard(batch: Sequence[tuple[bytes, bytes]], num_shards: int
                    ) -> Iterator[tuple[int, list[tuple[bytes, bytes]]]]:
    """Splits a batch of records into one list per shard, so a batch crosses the shuffle as a few
    elements rather than one element per record."""
    by_shard: dict[int, list[tuple[bytes, bytes]]] = {}
    hashes = key_hashes([k for k, _ in batch]).tolist() if batch else []
    for h, record in zip(hashes, batch, strict=True):
        by_shard.setdefault(shard_of(h, num_shards), []).append(record)
    yield from by_shard.items()


def temp_folder(directory: str, name: str) -> str:
    """A hidden folder for one transform's temporary files in ``directory`` (unique per pipeline
    construction, so two writers or two runs never share one; readers' ``NAME-*`` globs miss it)."""
    return FileSystems.join(directory, f".temp-{name}-{uuid.uuid4().hex[:12]}")


def remove_folder(folder: str) -> None:
    """Deletes a folder and everything under it, locally or on object stores (where a folder is a
    name prefix)."""
    if FileSystems.get_scheme(folder) in (None, "file"):
        if FileSystems.exists(folder):
            FileSystems.delete([folder])
    else:
        FileSystems.delete([folder.rstrip("/") + "/"])


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hands the allocator's free pages back to the system (glibc's ``malloc_trim``; a no-op where
    there is none). Called when a group (a bucket of documents, a spilled run, a shard) is done: its
    objects are freed, but glibc keeps most of the freed heap mapped, so without this a worker's
    resident memory creeps up group by group (measured: 50-100 MB lower at 160 MB of text)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# --- spilling records to sorted runs on disk (an external shuffle for the local runner) ----------

_RUN_ROW = np.dtype([("hash", ">u8"), ("key_len", ">u4"), ("payload_len", ">u4")])
_INDEX_BITS = 12  # a run's index: where records with each value of the hash's top 12 bits start
SPILL_RUN_BYTES = 32 << 20


class SpillRun(NamedTuple):
    """A run file of ``(hash, key, payload)`` records sorted by hash: a table of ``_RUN_ROW`` s (hash,
    key length, payload length), then the keys and payloads in the same order. Its index is two
    little-endian int64 arrays of ``2**_INDEX_BITS + 1``: for b in 0..2**_INDEX_BITS, the number of the
    first record whose hash's top ``_INDEX_BITS`` bits are >= b, then where that record's key starts
    after the table (the last entries: the record count and the data's size)."""

    path: str
    records: int
    index: bytes


def write_run(path: str, hashes: np.ndarray, keys: Sequence[bytes], payloads: Sequence[bytes]) -> SpillRun:
    """Writes records (``hashes`` uint64, their keys and payloads) as one run file, sorted by hash."""
    n = len(keys)
    order = np.argsort(hashes, kind="stable")
    table = np.empty(n, dtype=_RUN_ROW)
    table["hash"] = hashes[order]
    table["key_len"] = np.fromiter(map(len, keys), dtype=np.int64, count=n)[order]
    table["payload_len"] = np.fromiter(map(len, payloads), dtype=np.int64, count=n)[order]
    starts = np.concatenate(([0], np.cumsum(table["key_len"] + table["payload_len"], dtype=np.int64)))
    tops = (hashes[order] >> np.uint64(64 - _INDEX_BITS)).astype(np.int64)
    first = np.searchsorted(tops, np.arange((1 << _INDEX_BITS) + 1), "left")
    rows = order.tolist()
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(table.tobytes())
        for start in range(0, n, _WRITE_BATCH):
            f.write(b"".join(itertools.chain.from_iterable(
                (keys[i], payloads[i]) for i in rows[start:start + _WRITE_BATCH])))
    return SpillRun(path, n, np.concatenate((first, starts[first])).astype("<i8").tobytes())


def read_group(runs: Iterable[SpillRun], index: int, count: int) -> list[tuple[bytes, bytes]]:
    """``(key, payload)`` of every spilled record in group ``index`` of ``count`` (``shard_of`` its
    hash), sorted: from each run only the stretch its index points to is read (its table rows, then
    its keys and payloads), so memory holds one group."""
    lo, hi = _shard_bounds(index, count)
    shift = 64 - _INDEX_BITS
    first, last = lo >> shift, min((hi + (1 << shift) - 1) >> shift, 1 << _INDEX_BITS)
    out: list[tuple[bytes, bytes]] = []
    for run in runs:
        record, offset = np.frombuffer(run.index, dtype="<i8").reshape(2, -1)
        r0, r1 = int(record[first]), int(record[last])
        if r0 == r1:
            continue
        begin, end = int(offset[first]), int(offset[last])
        with FileSystems.open(run.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.seek(r0 * _RUN_ROW.itemsize)
            table_bytes = f.read((r1 - r0) * _RUN_ROW.itemsize)
            f.seek(run.records * _RUN_ROW.itemsize + begin)
            data = f.read(end - begin)
        if len(table_bytes) != (r1 - r0) * _RUN_ROW.itemsize or len(data) != end - begin:
            raise OSError(f"{run.path}: spilled run is shorter than its index says")
        table = np.frombuffer(table_bytes, dtype=_RUN_ROW)
        sizes = table["key_len"].astype(np.int64) + table["payload_len"]
        key_start = np.cumsum(sizes) - sizes
        inside = table["hash"] >= np.uint64(lo)
        if hi < 1 << 64:
            inside &= table["hash"] < np.uint64(hi)
        key_start = key_start[inside]
        key_end = key_start + table["key_len"][inside]
        payload_end = key_end + table["payload_len"][inside]
        ks, ke, pe = key_start.tolist(), key_end.tolist(), payload_end.tolist()
        out.extend(zip([data[a:b] for a, b in zip(ks, ke, strict=True)],
                       [data[a:b] for a, b in zip(ke, pe, strict=True)], strict=True))
    return _sorted_records(out)


def _sorted_records(records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``sorted(records)``; with distinct 8-byte keys (sort keys, examples) by numpy, several times
    faster than comparing tuples."""
    if records and all(len(k) == 8 for k, _ in records):
        keys = np.frombuffer(b"".join(k for k, _ in records), dtype=">u8")
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        if not (ordered[1:] == ordered[:-1]).any():
            return [records[i] for i in order.tolist()]
    return sorted(records)


class SpillRuns(beam.DoFn):
    """Lists of ``(key, payload)`` records to run files in ``folder``, placed by ``key_hash`` (or by
    the hashes a subclass passes to ``add``), one run per ``run_bytes`` of input, yielding each
    run's ``SpillRun`` once its file is complete.

    Only the runs of bundles the runner commits flow downstream; a failed or retried bundle's files
    are never listed (their names are random, so an attempt never overwrites another's) and go when
    the folder is removed. Memory: one run.
    """

    def __init__(self, folder: str, run_bytes: int | None = None) -> None:
        self._folder = folder
        self._run_bytes = run_bytes or SPILL_RUN_BYTES

    def start_bundle(self) -> None:
        self._hashes: list[np.ndarray] = []
        self._keys: list[bytes] = []
        self._payloads: list[bytes] = []
        self._bytes = 0

    def process(self, records: Sequence[tuple[bytes, bytes]]) -> Iterator[SpillRun]:
        if records:
            keys = [k for k, _ in records]
            yield from self.add(key_hashes(keys), keys, [p for _, p in records])

    def add(self, hashes: np.ndarray, keys: list[bytes], payloads: list[bytes]) -> Iterator[SpillRun]:
        self._hashes.append(hashes)
        self._keys.extend(keys)
        self._payloads.extend(payloads)
        self._bytes += sum(map(len, payloads))
        if self._bytes >= self._run_bytes:
            yield self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self._keys:
            yield WindowedValue(self._flush(), MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self) -> SpillRun:
        run = write_run(FileSystems.join(self._folder, f"run-{uuid.uuid4().hex}"), np.concatenate(self._hashes),
                        self._keys, self._payloads)
        self.start_bundle()
        release_free_memory()
        return run


# --- shards ------------------------------------------------------------------------------------

class _WriteShard(beam.DoFn):
    """Writes one shard file, sorted by key, under a temporary name that is renamed to the final one
    when complete (a shard is never visible half-written); gzip is done here (not by Beam's
    CompressedFile) so that the level is a choice: level 1 deflates about 4x faster than zlib's
    default 6 for ~20% more bytes."""

    def __init__(self, prefix: str, suffix: str, fmt: str, gzip_level: int | None, temp: str = "") -> None:
        self._prefix, self._suffix, self._fmt, self._gzip_level = prefix, suffix, fmt, gzip_level
        self._temp = temp

    def process(self, shard: tuple[int, Iterable[Sequence[tuple[bytes, bytes]]]], num_shards: int) -> Iterator[int]:
        """Writes one shard; ``shard`` holds lists of records (one per input batch or single record)."""
        index, groups = shard
        yield self.write(index, num_shards, sorted(itertools.chain.from_iterable(groups)))

    def write(self, index: int, num_shards: int, records: Sequence[tuple[bytes, bytes]]) -> int:
        """Writes shard ``index`` from its records, already sorted; returns the index."""
        path = shard_name(self._prefix, index, num_shards, self._suffix)
        temp = FileSystems.join(self._temp, f"{FileSystems.split(path)[1]}.{uuid.uuid4().hex}")
        frames: Callable[[list[bytes]], bytes] = (
            tfrecord_frames if self._fmt == "tfrecord" else (lambda b: b"\n".join(b) + b"\n" if b else b""))
        # wbits 31: a gzip member whose header has no name and mtime 0, so the bytes are reproducible.
        deflate = zlib.compressobj(self._gzip_level, zlib.DEFLATED, 31) if self._gzip_level is not None else None
        with FileSystems.create(temp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for start in range(0, len(records), _WRITE_BATCH):
                block = frames([payload for _, payload in records[start:start + _WRITE_BATCH]])
                f.write(deflate.compress(block) if deflate else block)
            if deflate:
                f.write(deflate.flush())
        FileSystems.rename([temp], [path])
        return index


class _WriteShardFromRuns(beam.DoFn):
    """Shard index -> the shard, from the records of the spilled runs that fall in it."""

    def __init__(self, writer: _WriteShard) -> None:
        self._writer = writer

    def process(self, index: int, runs: list[SpillRun], num_shards: int) -> Iterator[int]:
        yield self._writer.write(index, num_shards, read_group(runs, index, num_shards))
        release_free_memory()


class _WriteEmptyShards(beam.DoFn):
    """Hash sharding can leave a shard without records; write it empty so every -of-N name exists.
    Yields once, when every shard exists."""

    def __init__(self, writer: _WriteShard) -> None:
        self._writer = writer

    def process(self, written: list[int], num_shards: int) -> Iterator[int]:
        for index in sorted(set(range(num_shards)) - set(written)):
            self._writer.write(index, num_shards, [])
        yield num_shards


WRITE_METHODS = ("auto", "spill", "shuffle")
LOCAL_METHOD = "spill"  # what ``auto`` means off Dataflow (tests set it to compare the methods)


def resolve_write_method(method: str, pipeline: beam.Pipeline) -> str:
    """``auto``: ``shuffle`` on Dataflow (its shuffle service holds the data, and its bundles are
    too small for run files to pay), else ``LOCAL_METHOD``."""
    if method not in WRITE_METHODS:
        raise ConfigError(f"unknown write method {method!r}")
    if method != "auto":
        return method
    return "shuffle" if "Dataflow" in type(pipeline.runner).__name__ else LOCAL_METHOD


class WriteShards(beam.PTransform):
    """Writes ``(sort_key, payload)`` records to ``PREFIX-SSSSS-of-NNNNN SUFFIX`` deterministically.

    A record's shard is ``shard_of(key_hash(sort_key))``; a shard holds its records sorted by
    ``(sort_key, payload)``, so the bytes depend only on the records, never on bundles, workers or
    the method. Shards are written under a temporary name and renamed when complete; temporary files
    live in a hidden ``.temp-*`` folder next to them, removed once every shard exists.

    Two methods, same bytes:

    - ``spill`` (the default off Dataflow): each bundle writes its records to run files sorted by
      hash (``SpillRuns``, ~32 MB each); once all are written, each shard is read back from the
      runs' stretches that hold it, sorted and written. Only run names cross the runner, so the local
      runner (which keeps every PCollection that crosses a shuffle in memory) holds one run and one
      shard, however large the corpus.
    - ``shuffle`` (the default on Dataflow, whose shuffle service is cheaper than a second pass over
      files): records grouped by shard through a ``GroupByKey``.

    With ``batched=True`` each input element is a list of such records: the output bytes are the same
    as for the records one by one, but a per-element Beam cost (about 12 us on the DirectRunner, and
    a shuffle entry on Dataflow) is paid per batch instead of per record.

    ``fmt`` is ``"lines"`` (payload plus newline) or ``"tfrecord"``; ``compression`` is ``"gzip"`` (at
    ``gzip_level``, zlib's default 6 unless asked) or ``"uncompressed"``. With ``num_shards=0`` the
    shard count is ``ceil(records / records_per_shard)``, which bounds the memory a worker needs to
    sort one shard. Returns the number of records written as a singleton PCollection.
    """

    def __init__(self, prefix: str, suffix: str, fmt: str = "lines", compression: str = "gzip",
                 num_shards: int = 0, records_per_shard: int = 200_000, batched: bool = False,
                 gzip_level: int = 6, method: str = "auto") -> None:
        super().__init__()
        self._batched = batched
        if fmt not in ("lines", "tfrecord"):
            raise ConfigError(f"unknown output format {fmt!r}")
        if compression not in ("gzip", "uncompressed"):
            raise ConfigError(f"unknown output compression {compression!r}")
        if not 0 <= gzip_level <= 9:
            raise ConfigError(f"gzip level {gzip_level} is not in 0..9")
        if method not in WRITE_METHODS:
            raise ConfigError(f"unknown write method {method!r}")
        self._prefix, self._suffix, self._fmt = prefix, suffix, fmt
        self._gzip_level = gzip_level if compression == "gzip" else None
        self._num_shards = num_shards
        self._per_shard = records_per_shard
        self._method = method

    def _shard_count(self) -> Callable[[int], int]:
        fixed, per_shard = self._num_shards, self._per_shard
        return lambda n: fixed or max(1, math.ceil(n / per_shard))

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        batches = records if self._batched else records | "AsLists" >> beam.Map(lambda kv: [kv])
        directory, name = FileSystems.split(self._prefix)
        temp = temp_folder(directory, name)
        writer = _WriteShard(self._prefix, self._suffix, self._fmt, self._gzip_level, temp)
        method = resolve_write_method(self._method, records.pipeline)
        count, done = (self._spill if method == "spill" else self._shuffle)(batches, writer, temp)
        _ = done | "RemoveTemp" >> beam.Map(lambda _, folder=temp: remove_folder(folder))
        return count

    def _spill(self, batches: beam.PCollection, writer: _WriteShard, temp: str
               ) -> tuple[beam.PCollection, beam.PCollection]:
        runs = (batches | "SpillRuns" >> beam.ParDo(SpillRuns(FileSystems.join(temp, "runs")))
                | "ListRuns" >> beam.combiners.ToList())
        count = runs | "Count" >> beam.Map(lambda rs: sum(r.records for r in rs))
        num_shards = count | "NumShards" >> beam.Map(self._shard_count())
        done = (
            num_shards
            | "ShardIndices" >> beam.FlatMap(lambda n: list(range(n)))
            | "SpreadShards" >> beam.Reshuffle()
            | "WriteShard" >> beam.ParDo(_WriteShardFromRuns(writer), beam.pvalue.AsSingleton(runs),
                                         beam.pvalue.AsSingleton(num_shards))
            | "WrittenShards" >> beam.combiners.ToList()
        )
        return count, done

    def _shuffle(self, batches: beam.PCollection, writer: _WriteShard, temp: str
                 ) -> tuple[beam.PCollection, beam.PCollection]:
        count = batches | "Count" >> beam.Map(len) | "Sum" >> beam.CombineGlobally(sum)
        num_shards = beam.pvalue.AsSingleton(count | "NumShards" >> beam.Map(self._shard_count()))
        # With a fixed shard count the assignment needs no side input: the records flow straight into
        # the shuffle instead of being held until the count is known.
        by_shard = batches | "AssignShard" >> beam.FlatMap(_split_by_shard, self._num_shards or num_shards)
        done = (
            by_shard
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(writer, num_shards)
            | "WrittenShards" >> beam.combiners.ToList()
            | "WriteEmpty" >> beam.ParDo(_WriteEmptyShards(writer), num_shards)
        )
        return count, done


def sort_key(seed: int, *parts: bytes | str | int) -> bytes:
    """A sort key that orders records pseudo-randomly but reproducibly (a seeded shuffle)."""
    return stable_hash64(seed, *parts).to_bytes(8, "big")


# --- TFRecord reading that survives corrupt files -----------------------------------------------

class TFRecordError(Exception):
    """A TFRecord frame that cannot be read: nothing after it in the file can be trusted."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _read_exact(f: Any, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def tfrecord_records(f: Any) -> Iterator[bytes]:
    """The records of an open (decompressed) TFRecord stream, CRCs checked; raises TFRecordError at
    the first frame that is truncated or fails its checksum. Memory holds one record at a time."""
    offset, index = 0, 0
    while True:
        header = _read_exact(f, 12)
        if not header:
            return
        where = f"record {index} at byte {offset}"
        if len(header) < 12:
            raise TFRecordError("truncated_record", f"{where}: the file ends inside a frame header")
        length_bytes = header[:8]
        if _masked_crc(length_bytes) != struct.unpack("<I", header[8:])[0]:
            raise TFRecordError("corrupt_record", f"{where}: length checksum mismatch")
        (length,) = struct.unpack("<Q", length_bytes)
        data = _read_exact(f, length)
        crc = _read_exact(f, 4)
        if len(data) < length or len(crc) < 4:
            raise TFRecordError("truncated_record", f"{where}: the file ends inside a {length}-byte record")
        if _masked_crc(data) != struct.unpack("<I", crc)[0]:
            raise TFRecordError("corrupt_record", f"{where}: data checksum mismatch")
        yield data
        offset += 16 + length
        index += 1


class _ReadTFRecordFile(AccountedDoFn):
    """path -> (path, record) for every intact record; a corrupt or truncated frame, or a compressed
    stream that breaks off (``truncated_input``, as for every reader: see ``input_checks``), becomes
    one dead letter naming the record and byte offset, and the rest of that file is not read,
    because a frame's length cannot be trusted after a bad checksum. Beam's own TFRecord reader
    raises instead, which fails the whole job on one bad file."""

    stage = "read_tfrecord_frames"

    def process(self, path: str) -> Iterator[Any]:
        count, offset = 0, 0
        try:
            with checks.open_checked(path) as f:
                for record in tfrecord_records(f):
                    self.took_in(path)
                    self.out(path)
                    yield path, record
                    count, offset = count + 1, offset + len(record) + 16
        except Exception as e:
            stream = checks.stream_error(e)
            if isinstance(e, TFRecordError):
                reason, detail = e.reason, e.detail
            elif stream is not None:
                reason, detail = checks.TRUNCATED_INPUT, f"record {count} at byte {offset}: {stream}"
            elif isinstance(e, (OSError, ValueError)):
                reason, detail = "unreadable_file", f"{type(e).__name__}: {e}"
            else:
                raise
            self.took_in(path)
            yield self.dead_letter(path, DeadLetter.make(self.stage, reason, b"", source=path,
                                                         detail=f"{detail}; the rest of the file is not read"))


class ReadTFRecords(beam.PTransform):
    """Files or globs of TFRecords (plain or gzip, by extension) -> ``(path, record)``, accounted per
    file. TFRecords have no sync markers, so a file is read whole by one worker; files are spread
    over workers."""

    def __init__(self, paths: Sequence[str]) -> None:
        super().__init__()
        self._paths = list(paths)

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        files = (pbegin
                 | "Patterns" >> beam.Create(self._paths)
                 | "Match" >> beam.FlatMap(lambda p: [m.path for m in FileSystems.match([p])[0].metadata_list])
                 | "Spread" >> beam.Reshuffle())
        return apply_accounted(files, "ReadFrames", _ReadTFRecordFile())


# --- dead letters ----------------------------------------------------------------------------

def _line_ends(data: bytes, end: int, cr_only: bool) -> int:
    """Line ends in ``data[:end]`` as ``lines_from`` reads them: LF (CRLF counts once), and in a file
    without LF (``cr_only``) every CR too."""
    lf = data.count(b"\n", 0, end)
    return lf + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end) if cr_only else lf


def _line_numbers(item: tuple[str, Iterable[int]]) -> Iterator[tuple[tuple[str, int], int]]:
    """For one source, maps each dead letter's byte offset to its 1-based line number by streaming
    the file once and counting line ends; only offsets (not records) are held in memory."""
    path, offsets = item
    wanted = sorted(set(offsets))
    ends, pos, i = 0, 0, 0
    cr_only: bool | None = None  # told by the first block, as the readers tell it
    split_crlf = False  # the last chunk ended in CR and this one starts with LF: one line end, not two
    with FileSystems.open(path) as f:
        while i < len(wanted):
            chunk = f.read(_CHUNK)
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
            | "CountNewlines" >> beam.FlatMap(_line_numbers)
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


def write_spec_files(spec: FeatureSpec, directory: str) -> None:
    """Writes ``schema.pbtxt`` (TF Metadata) and ``feature_spec.json`` into ``directory``."""
    for name, text in ((SCHEMA_FILE, spec.to_schema_text()), (SPEC_FILE, spec.to_json())):
        with FileSystems.create(FileSystems.join(directory, name)) as f:
            f.write(text.encode("utf-8"))


class WriteSpec(beam.PTransform):
    """Writes a spec's files next to the data as a step of the pipeline (not at construction, so that
    building a job, e.g. a Dataflow ``--dry_run``, touches no storage)."""

    def __init__(self, spec: FeatureSpec, directory: str) -> None:
        super().__init__()
        self._spec, self._dir = spec, directory

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        spec, directory = self._spec, self._dir
        return (pbegin | "Spec" >> beam.Create([directory])
                | "WriteSpecFiles" >> beam.Map(lambda d: write_spec_files(spec, d) or d))
