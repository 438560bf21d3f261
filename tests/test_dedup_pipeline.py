"""``python -m pipelines.dedup`` end to end: JSONL and TFRecord inputs, outputs, specs, accounting."""

from __future__ import annotations

import gzip
import json
import pathlib
from typing import Any

import pytest

import specs
from pipelines import dedup as job
from specs import dedup as dedup_specs
from transforms import dedup
from transforms.core.records import BadRecordError
from transforms.core.runtime import main, run_pipeline
from transforms.core.spec_files import write_spec_files
from transforms.core.tfrecords import tfrecord_frame


def _tatoeba_pairs(shared_data: pathlib.Path, langs: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
    base = shared_data / "translation" / "laser_tatoeba_v1"
    rows = []
    for lang in langs:
        src = (base / f"tatoeba.{lang}-eng.{lang}").read_text("utf-8").splitlines()[:limit]
        eng = (base / f"tatoeba.{lang}-eng.eng").read_text("utf-8").splitlines()[:limit]
        rows += [{"en": e, "xx": s, "meta": {"lang": lang, "score": i % 5}} for i, (s, e) in enumerate(zip(
            src, eng, strict=True))]
    return rows


def _read_lines(folder: pathlib.Path) -> list[bytes]:
    return [line for f in sorted(folder.glob("part-*.jsonl.gz"))
            for line in gzip.decompress(f.read_bytes()).splitlines()]


@pytest.mark.slow
def test_jsonl_job_dedups_decontaminates_and_accounts_for_every_line(tmp_path, shared_data):
    rows = _tatoeba_pairs(shared_data, ("deu", "fra"), 300)
    planted = dict(rows[0], xx=rows[0]["xx"] + " !")  # exact duplicate after punctuation folding
    long_en = " ".join(rows[i]["en"] for i in range(10, 16))
    near_a = {"en": long_en, "xx": "eins", "meta": {"lang": "x", "score": 1}}
    near_b = {"en": long_en + " Indeed", "xx": "eins", "meta": {"lang": "x", "score": 9}}
    lines = [json.dumps(r, ensure_ascii=False) for r in [*rows, planted, near_a, near_b]]
    lines[5:5] = ["", "{broken json", json.dumps({"en": 3, "xx": "x", "meta": {"score": 1}})]
    (tmp_path / "in").mkdir()
    half = len(lines) // 2
    for i, part in enumerate((lines[:half], lines[half:])):
        (tmp_path / "in" / f"part{i}.jsonl.gz").write_bytes(gzip.compress(("\n".join(part) + "\n").encode()))
    evaluation = tmp_path / "eval.txt"
    evaluation.write_text(rows[20]["en"] + "\n" + rows[30]["xx"] + "\n", encoding="utf-8")

    out = tmp_path / "out"
    summary = run_pipeline("dedup", [
        f"--input={tmp_path}/in/*.jsonl.gz", f"--output_dir={out}", "--text_fields=en,xx",
        f"--exclude={evaluation}", "--with_clusters", "--rank_field=meta.score", "--cc_rounds=3",
        "--verify=shingles"], job.build)
    assert summary["balanced"]
    stages = summary["stages"]
    read = stages["read"]["total"]
    assert (read["in"], read["out"], read["filtered"], read["dead_lettered"]) == (
        len(lines), len(lines) - 3, {"blank_line": 1}, {"bad_json": 1, "bad_text_field": 1})
    assert stages["decontaminate"]["total"]["filtered"] == {"eval_overlap": 2}
    assert stages["exact_dedup"]["total"]["filtered"]["exact_duplicate"] >= 1
    assert stages["near_dedup"]["total"]["filtered"]["near_duplicate"] >= 1
    assert set(stages["exact_dedup"]["scopes"]) == {str(tmp_path / "in" / f"part{i}.jsonl.gz") for i in (0, 1)}

    kept = _read_lines(out / "deduplicated")
    assert len(kept) == stages["near_dedup"]["total"]["out"]
    assert set(kept) <= {line.encode() for line in lines}  # byte for byte
    kept_json = [json.loads(x) for x in kept]
    assert near_b in kept_json and near_a not in kept_json  # the higher --rank_field wins
    assert rows[20] not in kept_json and rows[30] not in kept_json

    clustered = [json.loads(x) for x in _read_lines(out / "clusters")]
    assert len(clustered) == stages["exact_dedup"]["total"]["in"]  # every record that reached dedup
    assert sum(not c["is_duplicate"] for c in clustered) == len(kept)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for c in clustered:
        by_id.setdefault(c["cluster_id"], []).append(c)
    assert all(len(v) == v[0]["cluster_size"] for v in by_id.values())
    (cluster,) = {c["cluster_id"] for c in clustered if c["en"] == long_en or c["xx"] == "eins"}
    assert by_id[cluster][0]["cluster_size"] == 2
    stats = json.loads((out / dedup.STATS_FILE).read_text())
    assert stats["near_dedup"]["components_converged"] and stats["near_dedup"]["verified_pairs"] >= 1
    assert stats["exact_dedup"]["records"] == len(clustered)
    dead = [json.loads(x) for f in (out / "dead_letter").glob("*.gz") for x in gzip.decompress(f.read_bytes())
            .splitlines()]
    assert sorted((d["reason"], d["line"]) for d in dead) == [("bad_json", 7), ("bad_text_field", 8)]


@pytest.mark.slow
def test_tfrecord_job_keeps_examples_byte_for_byte_and_writes_specs(tmp_path, shared_data):
    import tensorflow as tf

    rows = _tatoeba_pairs(shared_data, ("ita",), 200)
    spec = specs.TRANSLATION_PAIRS
    examples = [spec.encode({"src_raw": r["en"], "tgt_raw": r["xx"], "src_lang": "en", "tgt_lang": "it"})
                for r in rows]
    examples += examples[:7]  # seven exact copies
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "pairs.tfrecord").write_bytes(b"".join(tfrecord_frame(e) for e in examples))
    write_spec_files(spec, str(tmp_path / "in"))
    out = tmp_path / "out"
    assert main("dedup", job.build, [f"--input={tmp_path}/in/pairs.tfrecord", f"--output_dir={out}",
                                     "--text_fields=src_raw,tgt_raw", "--no_near", "--with_clusters"]) == 0

    kept = [r.numpy() for r in tf.data.TFRecordDataset(sorted(map(str, (out / "deduplicated").glob("*.gz"))),
                                                        compression_type="GZIP")]
    assert sorted(kept) == sorted(set(examples))
    written = specs.read_spec_text((out / "deduplicated" / specs.SCHEMA_FILE).read_text(),
                                   (out / "deduplicated" / specs.SPEC_FILE).read_text())
    assert set(written.features) == set(spec.features) and written.name == spec.name
    with_clusters = specs.read_spec_text((out / "clusters" / specs.SCHEMA_FILE).read_text())
    assert set(with_clusters.names) == set(spec.names) | {f.name for f in dedup_specs.CLUSTER_FEATURES}
    parsed = [tf.io.parse_single_example(r, with_clusters.tf_parsing_spec()) for r in tf.data.TFRecordDataset(
        sorted(map(str, (out / "clusters").glob("*.gz"))), compression_type="GZIP")]
    assert len(parsed) == len(examples)
    assert sum(int(p["is_duplicate"]) for p in parsed) == 7
    assert {int(p["cluster_size"]) for p in parsed if p["src_raw"].numpy() == rows[0]["en"].encode()} == {2}


@pytest.mark.slow
def test_tfrecord_job_dead_letters_a_corrupt_file_and_keeps_the_others(tmp_path, shared_data):
    rows = _tatoeba_pairs(shared_data, ("ita",), 40)
    spec = specs.TRANSLATION_PAIRS
    examples = [spec.encode({"src_raw": r["en"], "tgt_raw": r["xx"], "src_lang": "en", "tgt_lang": "it"})
                for r in rows]
    (tmp_path / "in").mkdir()
    good = b"".join(tfrecord_frame(e) for e in examples[:20])
    bad = bytearray(b"".join(tfrecord_frame(e) for e in examples[20:]))
    third = sum(len(tfrecord_frame(e)) for e in examples[20:23])
    bad[third + 20] ^= 0xFF  # a flipped byte inside the fourth record's data
    (tmp_path / "in" / "a.tfrecord").write_bytes(good)
    (tmp_path / "in" / "b.tfrecord").write_bytes(bytes(bad))
    write_spec_files(spec, str(tmp_path / "in"))
    out = tmp_path / "out"
    assert main("dedup", job.build, [f"--input={tmp_path}/in/*.tfrecord", f"--output_dir={out}",
                                     "--text_fields=src_raw,tgt_raw", "--no_near"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    frames = summary["stages"]["read_tfrecord_frames"]["scopes"]
    assert frames[str(tmp_path / "in" / "a.tfrecord")]["out"] == 20
    assert frames[str(tmp_path / "in" / "b.tfrecord")]["out"] == 3
    assert frames[str(tmp_path / "in" / "b.tfrecord")]["dead_lettered"] == {"corrupt_record": 1}
    dead = [json.loads(x) for f in (out / "dead_letter").glob("*.gz") for x in gzip.decompress(f.read_bytes())
            .splitlines()]
    assert [(d["reason"], d["source"]) for d in dead] == [("corrupt_record", str(tmp_path / "in" / "b.tfrecord"))]
    assert f"record 3 at byte {third}" in dead[0]["detail"]


def test_records_read_but_none_kept_leave_the_run_unfinished(tmp_path, shared_data, capsys):
    """Every record decontaminated away (the evaluation set is the input): exit 1 and no completion marker,
    as a run whose inputs hold no record, although the read stage let records out."""
    rows = _tatoeba_pairs(shared_data, ("deu",), 20)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    evaluation = tmp_path / "eval.txt"
    evaluation.write_text("".join(r["en"] + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    argv = [f"--input={tmp_path / 'in.jsonl'}", f"--output_dir={out}", "--text_fields=en", f"--exclude={evaluation}"]
    assert main("dedup", job.build, argv) == 1
    assert not (out / "_RUN_COMPLETE.json").exists()
    assert "warning: the kept records yielded no records" in capsys.readouterr().err


def test_a_job_record_is_fingerprinted_by_its_values_not_its_class():
    # The fingerprint is the last tie-break between duplicates: the record's content, so neither the
    # module that defines JobRecord nor pickle's layout can change which duplicate is kept.
    record = dedup.JobRecord("in.jsonl", 7, b'{"text": "a"}', ("a",), 1.5)
    assert dedup.fingerprint(record) == dedup.fingerprint(("in.jsonl", 7, b'{"text": "a"}', ("a",), 1.5))
    assert dedup.fingerprint(record) != dedup.fingerprint(record._replace(offset=8))


def test_parse_example_reads_what_tensorflow_writes():
    import tensorflow as tf

    ex = tf.train.Example(features=tf.train.Features(feature={
        "t": tf.train.Feature(bytes_list=tf.train.BytesList(value=["héllo".encode()])),
        "i": tf.train.Feature(int64_list=tf.train.Int64List(value=[3, -2, 1 << 40])),
        "f": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5, 2.0])),
        "e": tf.train.Feature(bytes_list=tf.train.BytesList(value=[])),
    }))
    parsed = dedup.parse_example(ex.SerializeToString())
    assert parsed == {"t": ["héllo".encode()], "i": [3, -2, 1 << 40], "f": [0.5, 2.0], "e": []}
    member = dedup.ClusterMember(dedup.JobRecord("s", -1, ex.SerializeToString(), ("héllo",), None), "ab" * 16, 3,
                                 True)
    merged = tf.train.Example.FromString(dedup.clustered_example(member))
    assert merged.features.feature["is_duplicate"].int64_list.value == [1]
    assert merged.features.feature["t"].bytes_list.value == ["héllo".encode()]
    with pytest.raises(BadRecordError):
        dedup.record_from_example("s", ex.SerializeToString()[:-3], ["t"], None)


@pytest.mark.parametrize(("argv", "message"), [
    (["--text_fields=a,b", "--key=both"], "--key must be one of"),
    (["--text_fields=a,b", "--key=one"], "--key=one needs exactly one"),
    ([], "--text_fields is required"),
    (["--text_fields=a", "--no_exact", "--no_near"], "nothing to do"),
    (["--text_fields=a", "--bands=30", "--rows=10"], "bands x rows"),
    (["--text_fields=a", "--verify=exact"], "verify must be one of"),
    (["--text_fields=a", "--exclude=/nonexistent/eval*.txt"], "--exclude: no file matches"),
])
def test_bad_configuration_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "x.jsonl").write_text('{"a": "b"}\n')
    assert main("dedup", job.build, [f"--input={tmp_path}/x.jsonl", f"--output_dir={tmp_path}/out", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
