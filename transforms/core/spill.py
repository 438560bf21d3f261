"""Spilling records to sorted runs on disk: an external shuffle for the local runner.

Records go to run files sorted by ``key_hash`` (``SpillRuns``, one run per ~32 MB of input); a group
of them (``shard_of`` the hash: a shard, a bucket) is read back from the stretch of each run that
holds it (``read_group``). Only the runs' names cross the runner, so the local runner, which keeps
every PCollection that crosses a shuffle in memory, holds one run and one group at a time.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from transforms.core.memory import release_free_memory
from transforms.core.placement import key_hashes, shard_bounds

_RUN_ROW = np.dtype([("hash", ">u8"), ("key_len", ">u4"), ("payload_len", ">u4")])
_INDEX_BITS = 12  # a run's index: where records with each value of the hash's top 12 bits start
SPILL_RUN_BYTES = 32 << 20
WRITE_BATCH = 4096  # records joined per write call: one compressor call instead of thousands


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
        for start in range(0, n, WRITE_BATCH):
            f.write(b"".join(itertools.chain.from_iterable(
                (keys[i], payloads[i]) for i in rows[start:start + WRITE_BATCH])))
    return SpillRun(path, n, np.concatenate((first, starts[first])).astype("<i8").tobytes())


def read_group(runs: Iterable[SpillRun], index: int, count: int) -> list[tuple[bytes, bytes]]:
    """``(key, payload)`` of every spilled record in group ``index`` of ``count`` (``shard_of`` its
    hash), sorted: from each run only the stretch its index points to is read (its table rows, then
    its keys and payloads), so memory holds one group."""
    lo, hi = shard_bounds(index, count)
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
