"""WriteShards' two methods (spilled runs, Beam shuffle) write the same bytes, in-process and with
worker processes; shards appear only complete and temporary files go."""

from __future__ import annotations

import gzip

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.core import placement, shards, spill
from transforms.core.runners import local_runner
from transforms.core.seeding import stable_hash64

TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _records(n: int, seed: int = 5) -> list[tuple[bytes, bytes]]:
    # Sizes vary so that spilled runs hold records of many lengths; a few keys repeat.
    return [(stable_hash64(seed, i % (n - 3)).to_bytes(8, "big"), b"record %d " % i + b"x" * (i % 97))
            for i in range(n)]


def _write(tmp, name, records, argv=(), batch=50, **kwargs) -> dict[str, bytes]:
    batches = [records[i:i + batch] for i in range(0, len(records), batch)]
    out = tmp / name
    with beam.Pipeline(runner=local_runner(), options=PipelineOptions(list(argv))) as p:
        _ = (p | beam.Create(batches) | "Spread" >> beam.Reshuffle()
             | shards.WriteShards(str(out / "part"), ".tfrecord.gz", "tfrecord", batched=True, **kwargs))
    return {f.name: f.read_bytes() for f in sorted(out.iterdir())}


@pytest.mark.parametrize("kwargs", [{"records_per_shard": 700}, {"num_shards": 5}])
def test_spill_and_shuffle_write_identical_shards(tmp_path, monkeypatch, kwargs):
    monkeypatch.setattr(spill, "SPILL_RUN_BYTES", 20_000)  # many runs, each shard spread over them
    runs = []
    write_run = spill.write_run
    monkeypatch.setattr(spill, "write_run", lambda path, *a: runs.append(path) or write_run(path, *a))
    records = _records(3000)
    spilled = _write(tmp_path, "spill", records, method="spill", **kwargs)
    assert len(runs) > 3
    shuffle = _write(tmp_path, "shuffle", records, method="shuffle", **kwargs)
    assert spilled == shuffle
    n = len(spilled)
    assert sorted(spilled) == [f"part-{i:05d}-of-{n:05d}.tfrecord.gz" for i in range(n)]  # no temp files left
    assert n == kwargs.get("num_shards", 5)
    # Every record once, each shard sorted by key.
    payloads = []
    for data in spilled.values():
        raw = gzip.decompress(data)
        pos = 0
        while pos < len(raw):
            length = int.from_bytes(raw[pos:pos + 8], "little")
            payloads.append(raw[pos + 12:pos + 12 + length])
            pos += 16 + length
    assert sorted(payloads) == sorted(p for _, p in records)


@pytest.mark.slow
def test_two_workers_write_what_one_process_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(spill, "SPILL_RUN_BYTES", 20_000)
    records = _records(2000, seed=9)
    one = _write(tmp_path, "one", records, records_per_shard=600)
    two = _write(tmp_path, "two", records, TWO_WORKERS, records_per_shard=600)
    assert one == two and len(one) == 4


def test_empty_input_writes_one_empty_shard(tmp_path):
    for method in ("spill", "shuffle"):
        got = _write(tmp_path, method, [], method=method)
        assert list(got) == ["part-00000-of-00001.tfrecord.gz"]
        assert gzip.decompress(got["part-00000-of-00001.tfrecord.gz"]) == b""


def test_holds_data_finds_one_byte_through_gzip_and_nothing_in_empty_or_missing_shards(tmp_path):
    got = _write(tmp_path, "none", [])
    assert got and not shards.holds_data([str(tmp_path / "none" / "*.gz")])  # the empty shard WriteShards leaves
    (tmp_path / "plain.tfrecord").write_bytes(b"")
    assert not shards.holds_data([str(tmp_path / "plain.tfrecord"), str(tmp_path / "missing" / "*.gz")])
    (tmp_path / "one.jsonl.gz").write_bytes(gzip.compress(b"{}\n"))
    assert shards.holds_data([str(tmp_path / "plain.tfrecord"), str(tmp_path / "*.jsonl.gz")])


def test_read_group_takes_each_record_once_from_runs(tmp_path):
    items = [(stable_hash64(i), b"k%d" % i, b"v%d" % i) for i in range(500)]
    runs = [spill.write_run(str(tmp_path / f"r{j}"), np.array([h for h, _, _ in items[j::3]], dtype=np.uint64),
                            [k for _, k, _ in items[j::3]], [v for _, _, v in items[j::3]]) for j in range(3)]
    for count in (1, 3, 7, 5000):
        groups = [spill.read_group(runs, g, count) for g in range(count)]
        assert sorted(r for g in groups for r in g) == sorted((k, v) for _, k, v in items)
        for g, got in enumerate(groups):
            assert got == sorted(got)
            assert all(placement.shard_of(stable_hash64(int(k[1:])), count) == g for k, _ in got)


def test_a_run_shorter_than_its_index_fails(tmp_path):
    run = spill.write_run(str(tmp_path / "r"), np.arange(100, dtype=np.uint64) << np.uint64(50), [b"k"] * 100,
                          [b"v" * 10] * 100)
    (tmp_path / "r").write_bytes((tmp_path / "r").read_bytes()[:-5])
    with pytest.raises(OSError, match="index says"):
        spill.read_group([run], 0, 1)


@pytest.mark.slow
def test_pretraining_spill_and_shuffle_methods_agree_and_leave_no_temp(shared_data, tmp_path, monkeypatch):
    """The whole pretraining job: documents and examples spilled to runs (the local default) or
    grouped by Beam's shuffle (Dataflow's), in one process or two: the same shards, the same
    accounting, and the output folder holds only the run's files."""
    import json

    from pipelines import pretrain_data
    from transforms.core import runtime

    monkeypatch.setattr(spill, "SPILL_RUN_BYTES", 50_000)  # several runs even for a small corpus
    text = (shared_data / "text" / "wikitext-2" / "wiki.test.tokens.txt").read_text("utf-8")
    paragraphs = [p.strip() for p in text.splitlines() if p.strip() and not p.strip().startswith("=")][:120]
    corpus = tmp_path / "corpus.txt"
    # A document per 4 paragraphs, a sentence per line (roughly: split at ". ").
    corpus.write_text("\n\n".join("\n".join(s for p in paragraphs[i:i + 4] for s in p.split(" . "))
                                  for i in range(0, len(paragraphs), 4)) + "\n")
    flags = [f"--input_file={corpus}", f"--vocab_file={shared_data / 'vocab' / 'bert-base-uncased.vocab.txt'}",
             "--dupe_factor=2", "--records_per_shard=150", "--docs_per_bucket=6"]

    def run(name: str, *extra: str) -> tuple[dict[str, bytes], dict]:
        out = tmp_path / name
        summary = runtime.run_pipeline("pretrain_data", [f"--output_dir={out}", *flags, *extra], pretrain_data.build)
        assert summary["balanced"]
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # temporary folders removed
        return {p.name: p.read_bytes() for p in sorted(out.glob("pretrain-*"))}, json.loads(
            (out / "summary.json").read_text())

    spilled, spilled_summary = run("spill")
    assert len(list((tmp_path / "spill").glob("pretrain-*"))) > 2
    two, two_summary = run("two", *TWO_WORKERS)
    monkeypatch.setattr(shards, "LOCAL_METHOD", "shuffle")
    shuffle, shuffle_summary = run("shuffle")
    assert len(spilled) > 2
    assert spilled == shuffle == two
    assert spilled_summary == shuffle_summary == two_summary


def test_key_hashes_agree_with_key_hash_and_spread_over_shards():
    keys = [shards.sort_key(1, i) for i in range(2000)]
    assert placement.key_hashes(keys).tolist() == [placement.key_hash(k) for k in keys]
    mixed = [b"k", *keys[:5], b"a longer key"]
    assert placement.key_hashes(mixed).tolist() == [placement.key_hash(k) for k in mixed]
    # Counter-like 8-byte keys still spread evenly over the hash ranges.
    placed = [placement.shard_of(placement.key_hash(i.to_bytes(8, "big")), 4) for i in range(4000)]
    assert all(900 < placed.count(s) < 1100 for s in range(4))


def test_sorted_records_matches_sorted_with_and_without_ties():
    distinct = [(shards.sort_key(2, i), b"p%d" % i) for i in range(300)]
    ties = [*distinct[:50], (distinct[7][0], b"another payload"), (distinct[9][0], b"a")]
    for records in (distinct, ties, [(b"short", b"x"), *distinct[:5]]):
        assert spill._sorted_records(list(records)) == sorted(records)
