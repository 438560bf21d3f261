"""One run per folder, complete or visibly not (specs/run_folder.py and the launcher).

A rerun into the same folder leaves exactly the second run; a folder of something else is refused; a
run that did not finish (shards but no completion marker) is refused by every reader: inspect, the
trainer's input pipelines, and the jobs that read another job's output."""

from __future__ import annotations

import gzip
import importlib
import json
import pathlib

import pytest

import specs
from pipelines import inspect as insp
from specs import run_folder
from transforms.core import runtime
from transforms.core.spec_files import write_spec_files
from transforms.core.tfrecords import tfrecord_frame
from transforms.pretraining import inspection

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


# --- the contract, unit by unit ------------------------------------------------------------------

def test_claim_empty_rerun_foreign_and_other_jobs(tmp_path):
    out = tmp_path / "out"
    assert run_folder.claim(str(out), "dedup", ["--x=1"]) == []
    started = json.loads((out / run_folder.STARTED_FILE).read_text())
    assert started["job"] == "dedup" and started["argv"] == ["--x=1"]
    (out / "part-00000-of-00004.jsonl.gz").write_bytes(b"")
    (out / "sub").mkdir()
    (out / "sub" / "f").write_text("x")
    run_folder.write_complete(str(out), "dedup", {"stages": {}, "balanced": True}, {"records": str(out)})
    # the same job again: the previous run's files go, the new start marker is written
    removed = run_folder.claim(str(out), "dedup")
    assert set(removed) == {"part-00000-of-00004.jsonl.gz", "sub", run_folder.STARTED_FILE, run_folder.COMPLETE_FILE}
    assert sorted(p.name for p in out.iterdir()) == [run_folder.STARTED_FILE]
    # another job
    with pytest.raises(run_folder.RunFolderError, match="holds a dedup run; give vocab its own folder"):
        run_folder.claim(str(out), "vocab")
    # something else entirely
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("keep")
    with pytest.raises(run_folder.RunFolderError, match="not empty and holds no polyembed run"):
        run_folder.claim(str(foreign), "dedup")
    assert (foreign / "a.txt").read_text() == "keep"


def test_claim_of_named_files_in_a_shared_folder_leaves_the_rest(tmp_path):
    (tmp_path / "unrelated.txt").write_text("keep")
    owned = ["out.tfrecord", "out.tfrecord.part-*", "schema.pbtxt", "summary.json"]
    run_folder.claim(str(tmp_path), "pretrain_data", owned=owned)
    (tmp_path / "out.tfrecord").write_bytes(b"1")
    (tmp_path / "out.tfrecord.part-00000-of-00001.tfrecord").write_bytes(b"")
    run_folder.claim(str(tmp_path), "pretrain_data", owned=owned)
    assert sorted(p.name for p in tmp_path.iterdir()) == [run_folder.STARTED_FILE, "unrelated.txt"]
    (tmp_path / "schema.pbtxt").write_text("not ours")
    (tmp_path / run_folder.STARTED_FILE).unlink()
    with pytest.raises(run_folder.RunFolderError, match=r"schema\.pbtxt exists and is not from a polyembed run"):
        run_folder.claim(str(tmp_path), "pretrain_data", owned=owned)


def test_require_complete_finds_the_marker_above_data_folders_and_globs(tmp_path):
    data = tmp_path / "run" / "train"
    data.mkdir(parents=True)
    (data / "pairs-00000-of-00001.tfrecord.gz").write_bytes(b"")
    pattern = str(data / "pairs-*")
    with pytest.raises(run_folder.RunFolderError, match=r"no _RUN_COMPLETE\.json here or up to 3 folders above"):
        run_folder.require_complete(pattern, "--input")
    assert run_folder.require_complete(pattern, "--input", allow_incomplete=True) is None
    (tmp_path / "run" / run_folder.STARTED_FILE).write_text('{"job": "translation_pairs"}')
    with pytest.raises(run_folder.RunFolderError, match=r"the run in .*run did not finish"):
        run_folder.require_complete(pattern, "--input", override="x.allow_incomplete=true")
    run_folder.write_complete(str(tmp_path / "run"), "translation_pairs",
                              {"stages": {"read": {"total": {"in": 3, "out": 2, "filtered": {"long": 1},
                                                             "dead_lettered": {}}}}, "balanced": True}, {})
    marker = run_folder.require_complete(pattern, "--input")
    assert marker["job"] == "translation_pairs" and marker["totals"]["read"] == {
        "in": 3, "out": 2, "filtered": 1, "dead_lettered": 0}
    assert run_folder.require_complete(str(data / "pairs-00000-of-00001.tfrecord.gz"), "--input")
    assert run_folder.require_complete(str(data), "--input")


# --- an interrupted run is refused by every reader ------------------------------------------------

@pytest.fixture
def interrupted(tmp_path) -> pathlib.Path:
    """What a run killed while writing shards leaves: the start marker, a spec, 1 of 4 shards (of
    translation pairs under train/, as translation_pairs writes them) and pretraining records at the
    top, but no completion marker."""
    run = tmp_path / "killed"
    run_folder.claim(str(run), "translation_pairs")
    train = run / "train"
    train.mkdir()
    write_spec_files(specs.TRANSLATION_PAIRS, str(train))
    pair = specs.TRANSLATION_PAIRS.encode({"src_raw": "Hallo", "tgt_raw": "Hello", "src_lang": "deu",
                                           "tgt_lang": "eng"})
    (train / "pairs-00000-of-00004.tfrecord.gz").write_bytes(gzip.compress(tfrecord_frame(pair)))
    spec = specs.pretraining_spec(8, 2)
    write_spec_files(spec, str(run))
    record = spec.encode({"input_ids": [101, 7, 102, 8, 102, 0, 0, 0], "input_mask": [1] * 5 + [0] * 3,
                          "segment_ids": [0, 0, 0, 1, 1, 0, 0, 0], "masked_lm_positions": [1, 0],
                          "masked_lm_ids": [7, 0], "masked_lm_weights": [1.0, 0.0], "next_sentence_labels": [0]})
    (run / "pretrain-00000-of-00004.tfrecord").write_bytes(tfrecord_frame(record))
    return run


def test_inspect_refuses_an_unfinished_run(interrupted, capsys):
    assert insp.main([str(interrupted), "--histogram="]) == 2
    err = capsys.readouterr().err.strip()
    assert "did not finish (no _RUN_COMPLETE.json)" in err and "\n" not in err
    assert insp.main([str(interrupted), "--histogram=", "--allow_incomplete"]) == 0


def test_trainer_refuses_an_unfinished_run(interrupted):
    from trainer import plan
    from trainer.core import config, data

    cfg = plan.load_config("labse/train", [], f"task.train_data.input_path={interrupted}/train/pairs-*")
    with pytest.raises(config.ConfigError, match=r"task.train_data.input_path .* did not finish .*"
                                                 r"task.train_data.allow_incomplete=true"):
        data.check_complete(cfg.task.train_data, "task.train_data")
    cfg = plan.load_config("labse/train", [], f"task.train_data.input_path={interrupted}/train/pairs-*,"
                                                "task.train_data.allow_incomplete=true")
    data.check_complete(cfg.task.train_data, "task.train_data")


@pytest.mark.parametrize("name,flags", [
    ("pretrain_data", ["--tlm_input={run}/train/pairs-*", "--vocab_file={vocab}"]),
    ("dedup", ["--input={run}/train/pairs-*", "--text_fields=src_raw"]),
    ("translation_pairs", ["--input={run}/train/pairs-00000-of-00004.tfrecord.gz"]),
    ("vocab", ["--input_patterns={run}/train/*", "--vocab_size=1000"]),
])
def test_jobs_refuse_an_unfinished_run_as_input(name, flags, interrupted, tmp_path, shared_data, capsys):
    build = importlib.import_module(f"pipelines.{name}").build
    vocab = shared_data / "vocab" / "bert-base-multilingual-cased.vocab.txt"
    argv = [f.format(run=interrupted, vocab=vocab) for f in flags] + [f"--output_dir={tmp_path / 'out'}"]
    assert runtime.main(name, build, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "did not finish" in err and "\n" not in err, err
    assert not (tmp_path / "out" / run_folder.COMPLETE_FILE).exists()


def test_pretrain_tlm_input_needs_a_polyembed_run(tmp_path, shared_data, capsys):
    """TLM pairs are our format: TFRecords from no polyembed run at all need --allow_incomplete."""
    (tmp_path / "pairs.tfrecord").write_bytes(b"")
    build = importlib.import_module("pipelines.pretrain_data").build
    vocab = shared_data / "vocab" / "bert-base-multilingual-cased.vocab.txt"
    assert runtime.main("pretrain_data", build, [f"--tlm_input={tmp_path / 'pairs.tfrecord'}",
                                                 f"--vocab_file={vocab}", f"--output_dir={tmp_path / 'o'}"]) == 2
    assert "not a finished polyembed run (--allow_incomplete reads it anyway)" in capsys.readouterr().err


# --- reruns, per pipeline: a glob sees exactly the second run ----------------------------------------

def _names(folder: pathlib.Path, pattern: str) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.glob(pattern))


@pytest.mark.slow
def test_pretrain_data_rerun_with_fewer_shards(tmp_path, shared_data):
    build = importlib.import_module("pipelines.pretrain_data").build
    out = tmp_path / "out"
    base = [f"--input_patterns={SAMPLES / 'text' / 'cycling.multilingual.txt'}", f"--output_dir={out}",
            f"--vocab_file={shared_data / 'vocab' / 'bert-base-multilingual-cased.vocab.txt'}",
            "--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=1"]
    for shards in (4, 2):
        assert runtime.main("pretrain_data", build, [*base, f"--num_output_shards={shards}"]) == 0
    assert _names(out, "pretrain-*") == [f"pretrain-0000{i}-of-00002.tfrecord" for i in range(2)]
    marker = json.loads((out / run_folder.COMPLETE_FILE).read_text())
    assert marker["job"] == "pretrain_data" and "--num_output_shards=2" in marker["argv"]
    assert marker["totals"]["tokenize"]["out"] > 0


@pytest.mark.slow
def test_pretrain_data_reference_output_files(tmp_path, shared_data):
    """--output_file as the reference takes it: comma-separated files, records exactly there."""
    build = importlib.import_module("pipelines.pretrain_data").build
    files = [tmp_path / "a.tfrecord", tmp_path / "b.tfrecord"]
    (tmp_path / "unrelated.txt").write_text("keep")
    argv = [f"--input_file={SAMPLES / 'text' / 'cycling.multilingual.txt'}",
            f"--output_file={','.join(map(str, files))}",
            f"--vocab_file={shared_data / 'vocab' / 'bert-base-multilingual-cased.vocab.txt'}",
            "--do_lower_case=False", "--max_seq_length=32", "--max_predictions_per_seq=5", "--masked_lm_prob=0.15",
            "--random_seed=12345", "--dupe_factor=1"]
    assert runtime.main("pretrain_data", build, argv) == 0
    assert all(f.stat().st_size > 0 for f in files)
    assert not list(tmp_path.glob("*.part-*"))
    assert (tmp_path / "schema.pbtxt").exists() and (tmp_path / run_folder.COMPLETE_FILE).exists()
    assert (tmp_path / "unrelated.txt").read_text() == "keep"
    res = inspection.inspect(str(files[0]), num_examples=0)
    assert res["records"] > 0 and not res["problems"]


@pytest.mark.slow
def test_translation_pairs_rerun_with_fewer_shards(tmp_path):
    build = importlib.import_module("pipelines.translation_pairs").build
    out = tmp_path / "out"
    for shards in (3, 1):
        assert runtime.main("translation_pairs", build, [f"--input={SAMPLES / 'translation' / '*.tsv'}",
                                                         f"--output_dir={out}", f"--num_shards={shards}",
                                                         "--no_stats_chart"]) == 0
    assert _names(out, "*/pairs-*") == [f"{s}/pairs-00000-of-00001.tfrecord.gz" for s in ("test", "train",
                                                                                          "validation")]


@pytest.mark.slow
def test_dedup_rerun_with_fewer_shards(tmp_path):
    build = importlib.import_module("pipelines.dedup").build
    out = tmp_path / "out"
    for shards in (3, 1):
        assert runtime.main("dedup", build, [f"--input={SAMPLES / 'text' / 'cycling.multilingual.jsonl'}",
                                             "--text_fields=text", "--no_near", f"--output_dir={out}",
                                             f"--num_shards={shards}"]) == 0
    assert _names(out, "deduplicated/part-*") == ["deduplicated/part-00000-of-00001.jsonl.gz"]


@pytest.mark.slow
def test_stackexchange_rerun_leaves_no_pair_type_of_the_first_run(tmp_path):
    build = importlib.import_module("pipelines.stackexchange").build
    out = tmp_path / "out"
    site = SAMPLES / "stackexchange" / "cycling.example.stackexchange.com"
    for types, shards in (("title_body,title_answer", 2), ("title_body", 1)):
        assert runtime.main("stackexchange", build, [f"--input={site}", f"--output_dir={out}",
                                                     f"--pair_types={types}", f"--num_shards={shards}"]) == 0
    assert not (out / "title_answer").exists()
    assert _names(out, "title_body/*/title_body-*") == ["title_body/jsonl/title_body-00000-of-00001.jsonl.gz",
                                                        "title_body/tfrecord/title_body-00000-of-00001.tfrecord.gz"]


@pytest.mark.slow
def test_vocab_rerun_replaces_the_vocabulary(tmp_path):
    build = importlib.import_module("pipelines.vocab").build
    out = tmp_path / "out"
    for size in (600, 400):
        assert runtime.main("vocab", build, [f"--input_patterns={SAMPLES / 'text' / 'cycling.multilingual.txt'}",
                                             f"--output_dir={out}", f"--vocab_size={size}", "--min_word_count=1",
                                             "--min_token_count=1"]) == 0
    assert json.loads((out / "vocab_params.json").read_text())["flags"]["vocab_size"] == 400
    assert "--vocab_size=400" in json.loads((out / run_folder.COMPLETE_FILE).read_text())["argv"]


@pytest.mark.slow
def test_an_input_without_records_ends_with_a_warning_and_no_marker(tmp_path, capsys):
    build = importlib.import_module("pipelines.dedup").build
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    argv = [f"--input={empty}", "--text_fields=text", "--no_near", f"--output_dir={tmp_path / 'out'}"]
    assert runtime.main("dedup", build, argv) == 1
    err = capsys.readouterr().err
    assert "warning: the inputs yielded no records at all" in err and "--allow_empty" in err
    assert not (tmp_path / "out" / run_folder.COMPLETE_FILE).exists()
    assert runtime.main("dedup", build, [*argv, "--allow_empty"]) == 0
    assert (tmp_path / "out" / run_folder.COMPLETE_FILE).exists()
