"""Shared pipeline machinery: splittable line reading, deterministic shards, accounting."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import pathlib
import re

import apache_beam as beam
import pytest
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.range_trackers import OffsetRangeTracker
from apache_beam.testing.util import assert_that, equal_to

from transforms.core import accounting, runtime, seeding
from transforms.core.lines import _LineBatchSource
from transforms.core.runners import local_runner
from transforms.core.shards import WriteShards
from transforms.core.tfrecords import ReadTFRecords, TFRecordError, tfrecord_frame, tfrecord_records


def _lines_via_splits(path: str, split_points: list[int]) -> list[tuple[int, bytes]]:
    src = _LineBatchSource(path, 3, compression_type=CompressionTypes.AUTO, validate=False)
    size = pathlib.Path(path).stat().st_size
    bounds = [0, *split_points, size]
    out = []
    for a, b in itertools.pairwise(bounds):
        for batch in src.read_records(path, OffsetRangeTracker(a, b)):
            out.extend(batch.lines)
    return out


@pytest.mark.parametrize("cr_file", [False, True])
def test_every_line_read_exactly_once_whatever_the_split_points(tmp_path, cr_file):
    # LF and CRLF line ends (a CRLF that a split point can cut in two) and stray CRs inside lines;
    # a file without LF reads every CR as a line end instead
    text = (b"\xef\xbb\xbfheader\r\nline one\r\n\r\nline three\nx\rmac\r\rline\n" + b"long" * 5000
            + b"\nlast without newline")
    if cr_file:
        text = text.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    p = tmp_path / "a.txt"
    p.write_bytes(text)
    expected = []
    pos = 0
    for raw, end in zip(*[iter([*re.split(b"(\r\n|\r|\n)" if cr_file else b"(\r?\n)", text), b""])] * 2,
                        strict=True):
        expected.append((pos, raw))
        pos += len(raw) + len(end)
    # the file's UTF-8 byte-order mark is dropped once, from its first line (which still starts at 0)
    expected[0] = (0, expected[0][1].removeprefix(b"\xef\xbb\xbf"))
    assert [raw for _, raw in expected][:5] == (
        [b"header", b"line one", b"", b"line three", b"x"] if cr_file
        else [b"header", b"line one", b"", b"line three", b"x\rmac\r\rline"])
    for splits in ([], [1], [7, 8, 9], [14, 15, 16], list(range(1, len(text), 997)), [len(text) - 3]):
        assert _lines_via_splits(str(p), splits) == expected, splits


def test_gzip_offsets_are_positions_in_the_decompressed_stream(tmp_path):
    p = tmp_path / "a.txt.gz"
    p.write_bytes(gzip.compress(b"ab\ncd\n\nef"))
    src = _LineBatchSource(str(p), 100, compression_type=CompressionTypes.AUTO, validate=False)
    (sub,) = list(src.split(1 << 20))
    lines = [line for b in sub.source.read(sub.source.get_range_tracker(None, None)) for line in b.lines]
    assert lines == [(0, b"ab"), (3, b"cd"), (6, b""), (7, b"ef")]


def _run(fn):
    with beam.Pipeline(runner=local_runner()) as p:
        fn(p)


def test_write_shards_is_deterministic_and_complete(tmp_path):
    records = [(seeding.stable_hash64(7, i).to_bytes(8, "big"), f'{{"i": {i}}}'.encode()) for i in range(1000)]
    outs = []
    for run, order in enumerate([records, records[::-1]]):
        prefix = str(tmp_path / f"run{run}" / "part")
        _run(lambda p, o=order, pr=prefix: p | beam.Create(o) | WriteShards(pr, ".jsonl.gz", num_shards=7))
        outs.append({f.name: f.read_bytes() for f in sorted((tmp_path / f"run{run}").iterdir())})
    assert outs[0] == outs[1]
    assert sorted(outs[0]) == [f"part-{i:05d}-of-00007.jsonl.gz" for i in range(7)]
    got = [json.loads(line)["i"] for b in outs[0].values() for line in gzip.decompress(b).splitlines()]
    assert sorted(got) == list(range(1000))


def test_batched_write_shards_writes_the_same_bytes(tmp_path):
    records = [(seeding.stable_hash64(3, i).to_bytes(8, "big"), b"v%d" % i) for i in range(500)]
    batches = [records[i:i + 37] for i in range(0, len(records), 37)] + [[]]
    _run(lambda p: p | beam.Create(records) | WriteShards(str(tmp_path / "a" / "r"), ".tfrecord",
                                                            "tfrecord", "uncompressed", num_shards=0,
                                                            records_per_shard=120))
    _run(lambda p: p | beam.Create(batches) | WriteShards(str(tmp_path / "b" / "r"), ".tfrecord",
                                                            "tfrecord", "uncompressed", num_shards=0,
                                                            records_per_shard=120, batched=True))
    a = {f.name: f.read_bytes() for f in (tmp_path / "a").iterdir()}
    b = {f.name: f.read_bytes() for f in (tmp_path / "b").iterdir()}
    assert len(a) == 5 and a == b


def test_gzip_level_changes_bytes_not_content(tmp_path):
    records = [(b"%04d" % i, b"some repetitive text %d" % (i % 7)) for i in range(3000)]
    for level in (1, 9):
        _run(lambda p, lv=level: p | beam.Create(records) | WriteShards(
            str(tmp_path / f"l{lv}" / "r"), ".jsonl.gz", num_shards=1, gzip_level=lv))
    fast, small = ((tmp_path / f"l{lv}" / "r-00000-of-00001.jsonl.gz").read_bytes() for lv in (1, 9))
    assert gzip.decompress(fast) == gzip.decompress(small) == b"".join(v + b"\n" for _, v in records)
    assert len(small) < len(fast)


def test_tfrecord_frames_read_back_with_tensorflow(tmp_path):
    import tensorflow as tf

    prefix = str(tmp_path / "r")
    _run(lambda p: p | beam.Create([(b"k%d" % i, b"v%d" % i) for i in range(50)])
         | WriteShards(prefix, ".tfrecord.gz", "tfrecord", num_shards=0, records_per_shard=20))
    paths = sorted(str(x) for x in tmp_path.iterdir())
    assert [pathlib.Path(x).name for x in paths] == [f"r-{i:05d}-of-00003.tfrecord.gz" for i in range(3)]
    got = sorted(r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP"))
    assert got == sorted(b"v%d" % i for i in range(50))


class _Keep(accounting.AccountedDoFn):
    stage = "toy"

    def process(self, x: int):
        self.took_in("file.txt")
        if x % 10 == 0:
            yield self.dead_letter("file.txt", accounting.DeadLetter.make(self.stage, "bad", str(x)))
        elif x % 3 == 0:
            self.filtered("file.txt", "multiple_of_3")
        else:
            self.out("file.txt")
            yield x


def test_accounting_identity_and_summary(tmp_path):
    path = str(tmp_path / "summary.json")

    def build(p):
        res = accounting.apply_accounted(p | beam.Create(range(100)), "Keep", _Keep())
        _ = res.tally | accounting.WriteRunSummary(path)

    _run(build)
    s = accounting.read_summary(path)
    e = s["stages"]["toy"]["scopes"]["file.txt"]
    assert (e["in"], e["out"], e["filtered"], e["dead_lettered"]) == (100, 60, {"multiple_of_3": 30}, {"bad": 10})
    assert s["balanced"] and e["balanced"]
    assert "holds for every stage" in accounting.format_summary(s)


def test_ledger_collects_every_accounted_step_for_the_summary(tmp_path):
    path = str(tmp_path / "summary.json")

    class _KeepAgain(_Keep):
        stage = "keep_again"

    def build(p):
        ledger = runtime.Ledger()
        kept = ledger.add(accounting.apply_accounted(p | beam.Create(range(100)), "Keep", _Keep()))
        tagged = ledger.add(kept | "KeepAgain" >> beam.ParDo(_KeepAgain()).with_outputs(
            accounting.TALLY, accounting.DEAD_LETTER, main="out"))
        built = ledger.built(outputs={"numbers": "nowhere"})
        assert built.outputs == {"numbers": "nowhere"} and len(built.tallies) == len(built.dead_letters) == 2
        assert_that(tagged.out, equal_to([x for x in range(100) if x % 10 and x % 3]), label="Kept")
        _ = built.tallies | beam.Flatten() | accounting.WriteRunSummary(path)

    _run(build)
    stages = accounting.read_summary(path)["stages"]
    assert stages["toy"]["total"]["in"] == 100 and stages["keep_again"]["total"]["in"] == 60


def _frames(n: int) -> bytes:
    return b"".join(tfrecord_frame(b"record %d" % i) for i in range(n))


def test_tfrecord_records_reads_every_frame_and_stops_at_the_first_bad_one():
    data = _frames(5)
    assert list(tfrecord_records(io.BytesIO(data))) == [b"record %d" % i for i in range(5)]
    flipped = bytearray(data)
    flipped[len(tfrecord_frame(b"record 0")) + 3] ^= 1  # the second frame's length
    got = tfrecord_records(io.BytesIO(bytes(flipped)))
    assert next(got) == b"record 0"
    with pytest.raises(TFRecordError) as e:
        next(got)
    assert e.value.reason == "corrupt_record" and "record 1 at byte 24" in e.value.detail
    with pytest.raises(TFRecordError) as e:
        list(tfrecord_records(io.BytesIO(data[:-2])))
    assert e.value.reason == "truncated_record"


def test_read_tfrecords_dead_letters_a_truncated_gzip_file(tmp_path):
    (tmp_path / "ok.tfrecord.gz").write_bytes(gzip.compress(_frames(4)))
    whole = gzip.compress(_frames(50))
    (tmp_path / "cut.tfrecord.gz").write_bytes(whole[:len(whole) // 2])
    ok, cut = str(tmp_path / "ok.tfrecord.gz"), str(tmp_path / "cut.tfrecord.gz")

    def check(p):
        res = p | ReadTFRecords([str(tmp_path / "*.tfrecord.gz")])
        # the cut file's records before the cut are read; nothing after it is
        in_order = res.out | beam.Map(lambda kv: (kv[0], int(kv[1].split()[1]))) | beam.GroupByKey() | beam.Map(
            lambda kv: (kv[0], sorted(kv[1]) == list(range(len(kv[1]))),
                       len(kv[1]) if kv[0] == ok else 0 < len(kv[1]) < 50))
        assert_that(in_order, equal_to([(ok, True, 4), (cut, True, True)]), label="Records")
        assert_that(res.dead_letter | beam.Map(lambda d: (d.reason, d.source)),
                    equal_to([("truncated_input", cut)]), label="DeadLetters")

    _run(check)
