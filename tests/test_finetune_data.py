"""The fine-tuning data job on the real GLUE files (used in place; subsets and header-less or damaged
copies made in tmp), checked against Model Garden's own featurisation and read by its
``SentencePredictionDataLoader``."""

from __future__ import annotations

import gzip
import json
import pathlib

import numpy as np
import pytest

from pipelines import finetune_data
from specs import SCHEMA_FILE, SPEC_FILE, read_spec_text, run_folder
from specs.errors import ConfigError
from specs.finetune import sentence_prediction_spec
from transforms import finetune as ft
from transforms.core import runners, runtime
from transforms.finetune import RowFormat, glue_task

UNCASED = "bert-base-uncased.vocab.txt"


def _glue(shared_data: pathlib.Path, task: str, name: str) -> pathlib.Path:
    return shared_data / "glue" / task / name


def _head(src: pathlib.Path, dst: pathlib.Path, n: int, drop_first: bool = False, prepend: bytes = b"",
          append: bytes = b"") -> pathlib.Path:
    """The first ``n`` lines of a real file (optionally without its header, or with one added)."""
    data = src.read_bytes()
    lines = data.removesuffix(b"\n").split(b"\n")
    lines = lines[1:n] if drop_first else lines[:n]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(prepend + b"\n".join(lines) + b"\n" + append)
    return dst


def _run(argv: list[str]) -> dict:
    return runtime.run_pipeline("finetune_data", argv, finetune_data.build)


def _records(paths: list[pathlib.Path]) -> list[dict[str, np.ndarray]]:
    """Every record of the files, parsed with the spec written beside the first one."""
    import tensorflow as tf

    directory = paths[0].parent
    spec = read_spec_text((directory / SCHEMA_FILE).read_text(), (directory / SPEC_FILE).read_text())
    parsing = spec.tf_parsing_spec()
    out = []
    for raw in tf.data.TFRecordDataset([str(p) for p in paths]):
        example = tf.io.parse_single_example(raw, parsing)
        out.append({k: v.numpy() for k, v in example.items()})
    return out


def _split(out: pathlib.Path, dest: str) -> list[dict[str, np.ndarray]]:
    return _records(sorted((out / dest).glob("finetune-*.tfrecord")))


def _dead_letters(out: pathlib.Path) -> list[dict]:
    letters = []
    for path in sorted((out / "dead_letter").glob("*.jsonl.gz")):
        letters += [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    return letters


def _bytes(out: pathlib.Path, dest: str) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((out / dest).glob("finetune-*.tfrecord")))


def _common(shared_data: pathlib.Path, out: pathlib.Path, seq: int = 64, vocab: str = UNCASED) -> list[str]:
    return [f"--vocab_file={shared_data / 'vocab' / vocab}", f"--max_seq_length={seq}", f"--output_dir={out}"]


# --- pure functions ------------------------------------------------------------------------------

def test_truncation_matches_the_reference_loop(model_garden):
    from official.nlp.data.classifier_data_lib import _truncate_seq_pair

    for la in range(0, 14):
        for lb in range(0, 14):
            for budget in range(0, 20):
                a, b = list(range(la)), list(range(lb))
                _truncate_seq_pair(a, b, budget)
                assert ft.truncated_lengths(la, lb, budget) == (len(a), len(b)), (la, lb, budget)


def test_pack_single_and_pair():
    ids, mask, seg, cut = ft.pack(np.array([5, 6, 7]), None, 6, 101, 102)
    assert ids.tolist() == [101, 5, 6, 7, 102, 0] and mask.tolist() == [1, 1, 1, 1, 1, 0] and not cut
    assert seg.tolist() == [0] * 6
    ids, mask, seg, cut = ft.pack(np.array([5, 6, 7, 8]), np.array([9, 10]), 7, 101, 102)
    # budget 4: A (4) is longer and loses 2 tokens
    assert ids.tolist() == [101, 5, 6, 102, 9, 10, 102] and seg.tolist() == [0, 0, 0, 0, 1, 1, 1] and cut


def test_header_detection_and_row_parsing():
    sst = glue_task("sst-2").files[0].fmt
    labels = ft.Labels(("0", "1"), False)
    assert ft.is_header(b"sentence\tlabel", sst, labels)
    assert not ft.is_header(b"a fine film \t1", sst, labels)
    stsb = glue_task("STS-B")
    reg = ft.Labels(None, True)
    assert ft.is_header(b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
                        stsb.files[0].fmt, reg)
    test_fmt = stsb.files[2].fmt
    assert ft.is_header(b"index\tgenre\tf\ty\to\ts1\ts2\tsentence1\tsentence2", test_fmt, reg)
    assert not ft.is_header(b"0\tgenre\tf\ty\to\ts1\ts2\tA.\tB.", test_fmt, reg)
    assert ft.parse_tsv_row(b'say "hi"\t1\r', sst, labels) == ('say "hi"', None, "1", "")
    for raw, reason in ((b"only one column", "missing_column"), (b"x\t2", "unknown_label"),
                        (b"   \t1", "empty_text"), (b"\xff\t1", "invalid_utf8")):
        with pytest.raises(ft.BadRecordError) as e:
            ft.parse_tsv_row(raw, sst, labels)
        assert e.value.reason == reason
    with pytest.raises(ft.BadRecordError, match="not a number"):
        ft.label_value("high", reg)
    mnli = glue_task("MNLI").files[0].fmt
    assert mnli.min_columns == 11  # sentence2 is column 9 and the gold label comes after it
    xnli = glue_task("XNLI").files[0].fmt
    assert ft.parse_tsv_row(b"p\th\tcontradictory", xnli, ft.Labels(("contradiction",), False,
                                                                   xnli.label_aliases))[2] == "contradiction"


def test_negatives_come_from_other_pairs_of_the_bucket():
    rows = [ft.Row("train", -1, f"q{i}", f"d{i}", ft.POSITIVE, "f", i) for i in range(7)]
    rows.append(ft.Row("train", -1, "q0", "d0-dup", ft.POSITIVE, "f", 7))  # same A as another pair
    pairs = list(ft.pair_with_negatives(3, rows))
    assert pairs == list(ft.pair_with_negatives(3, list(reversed(rows))))  # order of arrival does not matter
    for pos, neg in pairs:
        assert neg is not None and neg.label == ft.NEGATIVE and neg.text_a == pos.text_a
        partner = next(r for r in rows if r.text_b == neg.text_b)
        assert partner.text_a != pos.text_a and neg.text_b != pos.text_b
    assert list(ft.pair_with_negatives(3, rows[:1])) == [(rows[0], None)]


def test_configuration_errors(shared_data, tmp_path):
    vocab = f"--vocab_file={shared_data / 'vocab' / UNCASED}"
    glue = shared_data / "glue"

    def build(*argv: str) -> None:
        from apache_beam.options.pipeline_options import PipelineOptions

        options = PipelineOptions([vocab, f"--output_dir={tmp_path}", *argv])
        finetune_data.build(runners.make_pipeline(options), options)

    with pytest.raises(ConfigError, match="unknown task 'SQuAD'"):
        build("--task=SQuAD", f"--input_data_dir={glue / 'MRPC'}")
    with pytest.raises(ConfigError, match="contradicts --task=STS-B"):
        build("--task=STS-B", "--fine_tuning_task_type=classification", f"--input_data_dir={glue / 'STS-B'}")
    with pytest.raises(ConfigError, match=r"test\.tsv.*does not exist"):
        build("--task=MRPC", f"--input_data_dir={glue / 'MRPC'}", f"--test_data_output_path={tmp_path}/t.tfrecord")
    with pytest.raises(ConfigError, match="--labels is for your own data"):
        build("--task=RTE", f"--input_data_dir={glue / 'RTE'}", "--labels=yes,no")
    with pytest.raises(ConfigError, match="--text_a_field is required"):
        build(f"--train_files={glue / 'SST-2' / 'dev.tsv'}")
    with pytest.raises(ConfigError, match="no column named 'sentence1'"):
        build(f"--train_files={glue / 'SST-2' / 'dev.tsv'}", "--text_a_field=sentence1", "--label_field=label")
    # the flag the user gave, named as given (before: "no input: give --task with --input_data_dir")
    with pytest.raises(ConfigError, match=r"^--input_data_dir /nonexistent does not exist$"):
        build("--task=SST-2", "--input_data_dir=/nonexistent")
    with pytest.raises(ConfigError, match=rf"^--input_data_dir {tmp_path} holds none of SST-2's files \(train\.tsv, "):
        build("--task=SST-2", f"--input_data_dir={tmp_path}")
    # one label is no classification (before: a 1-class task the trainer could not use)
    with pytest.raises(ConfigError, match=r"^--labels=pos names 1 distinct label; classification needs at least two"):
        build(f"--train_files={glue / 'SST-2' / 'dev.tsv'}", "--text_a_field=0", "--label_field=1", "--labels=pos")
    with pytest.raises(ConfigError, match=r"^--labels=0,0 names 1 distinct label"):
        build(f"--train_files={glue / 'SST-2' / 'dev.tsv'}", "--text_a_field=0", "--label_field=1", "--labels=0,0")


def _main(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str]:
    """``finetune_data.main``'s exit status and its last line on stderr (no traceback)."""
    code = finetune_data.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    return code, err.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_split_that_yields_nothing_exits_1_without_the_marker(shared_data, tmp_path, capsys):
    """An empty and a header-only train.tsv, and a run whose every row is dead-lettered: exit 1, no
    completion marker, no reference file (before: exit 0 and the marker, and training then hung)."""
    dev = _glue(shared_data, "SST-2", "dev.tsv")
    for name, train in (("empty", b""), ("header_only", b"sentence\tlabel\n")):
        data = tmp_path / name
        data.mkdir()
        (data / "train.tsv").write_bytes(train)
        _head(dev, data / "dev.tsv", 20)
        out = tmp_path / f"{name}_out"
        code, line = _main(capsys, ["--task=SST-2", f"--input_data_dir={data}", *_common(shared_data, out),
                                    f"--train_data_output_path={out}/train.tf_record",
                                    f"--eval_data_output_path={out}/eval.tf_record"])
        run = out  # --output_dir is the run folder; the reference's files are not made
        assert code == 1 and line == (
            "finetune_data: warning: train yielded no records (empty or header-only input, or every row filtered or "
            f"dead-lettered: see {run}/summary.json); the run is left unfinished (no _RUN_COMPLETE.json); "
            "--allow_empty accepts an empty result")
        assert not (run / run_folder.COMPLETE_FILE).exists() and not list(out.glob("*.tf_record"))
    # --from_pairs over a TSV read as JSONL: 1,000 rows in, every one dead-lettered
    out = tmp_path / "pairs_out"
    code, line = _main(capsys, ["--from_pairs", f"--train_files={_glue(shared_data, 'SST-2', 'train.tsv')}",
                                "--input_format=jsonl", *_common(shared_data, out)])
    assert code == 1 and line.startswith("finetune_data: warning: train yielded no records")
    assert not (out / run_folder.COMPLETE_FILE).exists()
    assert json.loads((out / "summary.json").read_text())["stages"]["parse_rows"]["total"]["dead_lettered"]


def test_inputs_of_an_unfinished_run_are_refused(shared_data, tmp_path, capsys):
    """Pairs from a run that did not finish (its started marker, no completion marker): refused before
    any row is read (before: all 23,201 rows of a killed run dead-lettered, exit 0, marker written)."""
    killed = tmp_path / "killed"
    (killed / "train").mkdir(parents=True)
    (killed / run_folder.STARTED_FILE).write_text('{"job": "translation_pairs"}')
    _head(_glue(shared_data, "SST-2", "train.tsv"), killed / "train" / "pairs.jsonl", 10)
    out = tmp_path / "out"
    code, line = _main(capsys, ["--from_pairs", f"--train_files={killed}/train/*.jsonl", *_common(shared_data, out)])
    assert code == 2 and line == (
        f"finetune_data: error: --train_files {killed}/train/*.jsonl: the run in {killed} did not finish (no "
        "_RUN_COMPLETE.json); rerun it (--allow_incomplete reads the partial data anyway)")
    assert [p.name for p in out.iterdir()] == [run_folder.STARTED_FILE]  # claimed at start-up, nothing written


@pytest.mark.slow
def test_a_byte_order_mark_is_not_text(shared_data, tmp_path):
    """A UTF-8 BOM on a header-less MRPC file (before: its first row taken for a header, filtered, every
    example id shifted) and on a generic TSV's header (before: a column named '\ufefftext')."""
    plain, bom = tmp_path / "plain", tmp_path / "bom"
    for folder, prefix in ((plain, b""), (bom, b"\xef\xbb\xbf")):
        _head(_glue(shared_data, "MRPC", "train.tsv"), folder / "train.tsv", 40, prepend=prefix)
        _head(_glue(shared_data, "MRPC", "dev.tsv"), folder / "dev.tsv", 20, prepend=prefix)
        summary = _run(["--task=MRPC", f"--input_data_dir={folder}", *_common(shared_data, folder / "out")])
        assert summary["stages"]["parse_rows"]["total"]["filtered"] == {}
    for dest in ("train", "dev"):
        assert _bytes(bom / "out", dest) == _bytes(plain / "out", dest)
    named = tmp_path / "named.tsv"
    rows = _glue(shared_data, "SST-2", "dev.tsv").read_bytes().split(b"\n")[1:21]
    named.write_bytes(b"\xef\xbb\xbftext\tlabel\n" + b"\n".join(rows) + b"\n")
    summary = _run([f"--train_files={named}", "--text_a_field=text", "--label_field=label",
                    *_common(shared_data, tmp_path / "named_out")])
    assert summary["stages"]["parse_rows"]["total"]["filtered"] == {"header": 1}
    assert len(_split(tmp_path / "named_out", "train")) == 20


# --- GLUE end to end -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sst2(shared_data, tmp_path_factory):
    """SST-2's first 500 train lines and its dev set, once as shipped (headers) and once without."""
    tmp = tmp_path_factory.mktemp("sst2")
    runs = {}
    for variant, drop in (("header", False), ("no_header", True)):
        data = tmp / variant / "data"
        _head(_glue(shared_data, "SST-2", "train.tsv"), data / "train.tsv", 500, drop_first=drop)
        _head(_glue(shared_data, "SST-2", "dev.tsv"), data / "dev.tsv", 10_000, drop_first=drop)
        out = tmp / variant / "out"
        summary = _run(["--task=SST-2", f"--input_data_dir={data}", *_common(shared_data, out)])
        runs[variant] = (data, out, summary)
    return runs


@pytest.mark.slow
def test_sst2_counts_labels_and_headers(sst2, shared_data):
    data, out, summary = sst2["header"]
    assert summary["balanced"]
    parse = summary["stages"]["parse_rows"]["total"]
    assert parse["in"] == 500 + 873 and parse["filtered"] == {"header": 2} and parse["dead_lettered"] == {}
    meta = json.loads((out / finetune_data.META_DATA_FILE).read_text())
    assert meta["train_data_size"] == 499 and meta["eval_data_size"] == 872 and meta["num_labels"] == 2
    assert meta["task_type"] == "bert_classification" and meta["processor_type"] == "SST-2"
    assert meta["labels"] == ["0", "1"] and "test_data_size" not in meta
    train = _split(out, "train")
    lines = (data / "train.tsv").read_text().splitlines()[1:]
    by_id = {int(r["example_id"]): r for r in train}
    assert sorted(by_id) == list(range(499))
    for i, line in enumerate(lines):
        assert by_id[i]["label_ids"] == int(line.split("\t")[1])
    assert set(np.unique([r["label_ids"] for r in train])) == {0, 1}
    for r in train:
        n = int(r["input_mask"].sum())
        assert r["input_ids"][0] == 101 and r["input_ids"][n - 1] == 102 and not r["segment_ids"].any()
    # Header-less copies are detected as such and give the same bytes.
    _, out2, summary2 = sst2["no_header"]
    assert summary2["stages"]["parse_rows"]["total"]["filtered"] == {}
    for dest in ("train", "dev"):
        assert _bytes(out, dest) == _bytes(out2, dest) and _bytes(out, dest)


@pytest.mark.slow
def test_sst2_forced_header_flag(sst2, shared_data, tmp_path):
    """--header_row=false keeps a header line as data, where it is a bad row (its label is "label")."""
    data, _, _ = sst2["header"]
    out = tmp_path / "out"
    summary = _run(["--task=SST-2", f"--dev_files={data / 'dev.tsv'}", "--header_row=false",
                    "--eval_data_output_path=" + str(tmp_path / "eval.tfrecord"), *_common(shared_data, out)])
    assert summary["stages"]["parse_rows"]["total"]["dead_lettered"] == {"unknown_label": 1}
    (letter,) = _dead_letters(out)
    assert letter["line"] == 1 and letter["reason"] == "unknown_label" and letter["record"] == "sentence\tlabel"


@pytest.fixture(scope="module")
def rte(shared_data, tmp_path_factory):
    """RTE's first 200 train lines with bad rows appended, and its dev file in place."""
    tmp = tmp_path_factory.mktemp("rte")
    bad = (b"9001\tOnly the premise survived\n"  # missing column
           b"9002\tA premise.\tA hypothesis.\tmaybe\n"  # unknown label
           b"9003\t \tA hypothesis.\tentailment\n"  # empty text
           b"\n")  # blank line
    train = _head(_glue(shared_data, "RTE", "train.tsv"), tmp / "data" / "train.tsv", 200, append=bad)
    argv = ["--task=RTE", f"--train_files={train}", f"--dev_files={_glue(shared_data, 'RTE', 'dev.tsv')}",
            *_common(shared_data, tmp / "out", seq=128)]
    return train, tmp / "out", _run(argv), argv


@pytest.mark.slow
def test_rte_dead_letters_name_file_line_and_reason(rte):
    train, out, summary, _ = rte
    assert summary["balanced"]
    scope = summary["stages"]["parse_rows"]["scopes"][str(train)]
    assert scope["in"] == 204 and scope["out"] == 199
    assert scope["filtered"] == {"blank_line": 1, "header": 1}
    assert scope["dead_lettered"] == {"empty_text": 1, "missing_column": 1, "unknown_label": 1}
    letters = {d["reason"]: d for d in _dead_letters(out)}
    assert {k: (v["line"], v["source"]) for k, v in letters.items()} == {
        "missing_column": (201, str(train)), "unknown_label": (202, str(train)), "empty_text": (203, str(train))}
    assert letters["unknown_label"]["record"].endswith("maybe")
    meta = json.loads((out / finetune_data.META_DATA_FILE).read_text())
    assert meta["labels"] == ["entailment", "not_entailment"] and meta["train_data_size"] == 199
    assert meta["eval_data_size"] == 139
    records = _split(out, "train")
    lines = train.read_text().split("\n")[1:200]
    assert [int(r["label_ids"]) for r in sorted(records, key=lambda r: int(r["example_id"]))] == [
        ["entailment", "not_entailment"].index(line.split("\t")[3]) for line in lines]
    # RTE premises are long: at 128 tokens some pairs are cut, B segments always end with [SEP]
    assert meta["truncated"]["train"] > 0
    for r in records:
        n = int(r["input_mask"].sum())
        assert r["segment_ids"][n - 1] == 1 and r["input_ids"][n - 1] == 102


@pytest.mark.slow
def test_generic_jsonl_and_named_tsv_columns_equal_the_task(rte, tmp_path):
    """The same RTE rows as the user's own JSONL (train) and TSV with named columns (dev), labels
    discovered from the data: the records equal the --task=RTE ones byte for byte."""
    train, out, _, argv = rte
    rows = [line.split("\t") for line in train.read_text().split("\n")[1:200]]
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("".join(json.dumps({"pair": {"p": r[1], "h": r[2]}, "y": r[3]}) + "\n" for r in rows))
    dev = tmp_path / "dev.tsv"
    vocab = next(a for a in argv if a.startswith("--vocab_file"))
    out2 = tmp_path / "out"
    summary = _run([f"--train_files={jsonl}", "--text_a_field=pair.p", "--text_b_field=pair.h",
                    "--label_field=y", vocab, "--max_seq_length=128", f"--output_dir={out2}"])
    assert summary["balanced"]
    assert _bytes(out2, "train") == _bytes(out, "train")
    meta = json.loads((out2 / finetune_data.META_DATA_FILE).read_text())
    assert meta["labels"] == ["entailment", "not_entailment"] and meta["processor_type"] == "GENERIC"
    # a TSV with a header of names, columns in another order
    dev.write_text("label\thypothesis\tpremise\n" + "".join(f"{r[3]}\t{r[2]}\t{r[1]}\n" for r in rows))
    out3 = tmp_path / "out3"
    summary = _run([f"--train_files={dev}", "--text_a_field=premise", "--text_b_field=hypothesis",
                    "--label_field=label", "--labels=entailment,not_entailment", vocab, "--max_seq_length=128",
                    f"--output_dir={out3}"])
    assert summary["stages"]["parse_rows"]["total"]["filtered"] == {"header": 1}
    assert _bytes(out3, "train") == _bytes(out, "train")
    # discovered labels are capped by --max_labels: the rest are dead letters, not new ids
    out4 = tmp_path / "out4"
    summary = _run([f"--train_files={jsonl}", "--text_a_field=pair.p", "--text_b_field=pair.h",
                    "--label_field=y", "--max_labels=1", vocab, "--max_seq_length=128", f"--output_dir={out4}"])
    n_not = sum(r[3] == "not_entailment" for r in rows)
    assert summary["stages"]["featurize"]["total"]["dead_lettered"] == {"label_beyond_max_labels": n_not}
    assert json.loads((out4 / finetune_data.META_DATA_FILE).read_text())["labels"] == ["entailment"]
    assert {d["line"] for d in _dead_letters(out4)} == {i + 1 for i, r in enumerate(rows) if r[3] == "not_entailment"}


@pytest.mark.slow
def test_rte_bytes_identical_with_two_processes(rte, tmp_path):
    _, out, _, argv = rte
    out2 = tmp_path / "out"
    argv2 = [a for a in argv if not a.startswith("--output_dir")] + [
        f"--output_dir={out2}", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    summary = _run(argv2)
    assert summary["balanced"]
    for dest in ("train", "dev"):
        assert _bytes(out2, dest) == _bytes(out, dest)
    assert (out2 / finetune_data.META_DATA_FILE).read_bytes() == (out / finetune_data.META_DATA_FILE).read_bytes()
    assert _dead_letters(out2) == _dead_letters(out)


@pytest.fixture(scope="module")
def mrpc_reference_flags(shared_data, tmp_path_factory):
    """MRPC (header-less as shipped here) through the reference's command line only."""
    tmp = tmp_path_factory.mktemp("mrpc")
    data = tmp / "MRPC"
    _head(_glue(shared_data, "MRPC", "train.tsv"), data / "train.tsv", 300)
    _head(_glue(shared_data, "MRPC", "dev.tsv"), data / "dev.tsv", 200)
    out = tmp / "out"
    code = finetune_data.main([
        "--fine_tuning_task_type=classification", "--classification_task_name=MRPC", f"--input_data_dir={data}",
        f"--vocab_file={shared_data / 'vocab' / UNCASED}", "--do_lower_case=true", "--max_seq_length=32",
        f"--train_data_output_path={out / 'MRPC_train.tf_record'}",
        f"--eval_data_output_path={out / 'MRPC_eval.tf_record'}", f"--meta_data_file_path={out / 'MRPC_meta_data'}"])
    return data, out, code


@pytest.mark.slow
def test_reference_command_line_writes_the_reference_files(mrpc_reference_flags):
    _, out, code = mrpc_reference_flags
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "MRPC_eval.tf_record", "MRPC_meta_data", "MRPC_train.tf_record", SCHEMA_FILE, SPEC_FILE,
        finetune_data.REFERENCE_RUN_DIR}
    run = out / finetune_data.REFERENCE_RUN_DIR
    assert json.loads((run / "summary.json").read_text())["balanced"]
    assert not list(run.glob("*/finetune-*"))  # the shards were moved into the single files
    # the outputs the run printed and recorded are the files that exist after the shards were moved
    outputs = json.loads((run / run_folder.COMPLETE_FILE).read_text())["outputs"]
    assert outputs["train records"] == str(out / "MRPC_train.tf_record")
    assert outputs["dev records"] == str(out / "MRPC_eval.tf_record")
    meta = json.loads((out / "MRPC_meta_data").read_text())
    for key, value in {"processor_type": "MRPC", "train_data_size": 300, "eval_data_size": 200,
                       "max_seq_length": 32, "task_type": "bert_classification", "num_labels": 2}.items():
        assert meta[key] == value
    spec = read_spec_text((out / SCHEMA_FILE).read_text(), (out / SPEC_FILE).read_text())
    spec.require(sentence_prediction_spec(32))
    # the ids are tied to their vocabulary: the trainer checks its own against this
    assert spec.params["vocab_fingerprint"].startswith("sha256:") and spec.params["vocab_size"] == 30522


@pytest.mark.slow
def test_records_equal_model_gardens_own_records(mrpc_reference_flags, shared_data, model_garden, tmp_path):
    """Every record equals the one Model Garden's own writer (file_based_convert_examples_to_features,
    with its FullTokenizer) makes of the same row, all six features, truncation included (MRPC pairs
    at 32 tokens are mostly cut)."""
    from official.nlp.data import classifier_data_lib as cdl
    from official.nlp.tools import tokenization

    data, out, _ = mrpc_reference_flags
    tokenizer = tokenization.FullTokenizer(str(shared_data / "vocab" / UNCASED), do_lower_case=True)
    for split, name in (("train", "MRPC_train.tf_record"), ("dev", "MRPC_eval.tf_record")):
        lines = (data / f"{split}.tsv").read_text().splitlines()
        examples = [cdl.InputExample(f"{split}-{i}", c[3], c[4], c[0]) for i, c in
                    enumerate(line.split("\t") for line in lines)]
        reference = tmp_path / f"{split}.tf_record"
        cdl.file_based_convert_examples_to_features(examples, ["0", "1"], 32, tokenizer, str(reference))
        theirs = _records_with(reference, out / name)
        ours = sorted(_records([out / name]), key=lambda r: int(r["example_id"]))
        assert len(ours) == len(theirs) == len(lines)
        for mine, ref in zip(ours, theirs, strict=True):
            assert mine.keys() == ref.keys()
            for key in mine:
                np.testing.assert_array_equal(mine[key], ref[key], err_msg=f"{split} {key} {int(ref['example_id'])}")
        assert sum(int(r["input_mask"].sum()) == 32 for r in ours) > len(lines) // 2


def _records_with(path: pathlib.Path, ours: pathlib.Path) -> list[dict[str, np.ndarray]]:
    """``path``'s records parsed with the spec written beside ``ours``."""
    import tensorflow as tf

    spec = read_spec_text((ours.parent / SCHEMA_FILE).read_text(), (ours.parent / SPEC_FILE).read_text())
    parsing = spec.tf_parsing_spec()
    return [{k: v.numpy() for k, v in tf.io.parse_single_example(raw, parsing).items()}
            for raw in tf.data.TFRecordDataset([str(path)])]


@pytest.mark.slow
def test_sentence_prediction_dataloader_reads_the_records(mrpc_reference_flags, model_garden):
    from official.nlp.data.sentence_prediction_dataloader import (
        SentencePredictionDataConfig,
        SentencePredictionDataLoader,
    )

    _, out, _ = mrpc_reference_flags
    config = SentencePredictionDataConfig(input_path=str(out / "MRPC_eval.tf_record"), seq_length=32,
                                          global_batch_size=50, is_training=False, include_example_id=True,
                                          drop_remainder=False)
    batches = list(SentencePredictionDataLoader(config).load())
    assert sum(int(b["label_ids"].shape[0]) for b in batches) == 200
    first = batches[0]
    assert first["input_word_ids"].shape == (50, 32) and first["input_type_ids"].shape == (50, 32)
    ids = np.concatenate([b["example_id"].numpy() for b in batches])
    assert sorted(ids.tolist()) == list(range(200))


@pytest.fixture(scope="module")
def stsb(shared_data, tmp_path_factory):
    """STS-B regression: train with GLUE's header line added, dev header-less as shipped."""
    tmp = tmp_path_factory.mktemp("stsb")
    header = b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    train = _head(_glue(shared_data, "STS-B", "train.tsv"), tmp / "data" / "train.tsv", 300, prepend=header)
    dev = _head(_glue(shared_data, "STS-B", "dev.tsv"), tmp / "data" / "dev.tsv", 200)
    out = tmp / "out"
    summary = _run(["--task=STS-B", f"--input_data_dir={train.parent}", *_common(shared_data, out, seq=48)])
    return train, dev, out, summary


@pytest.mark.slow
def test_stsb_regression_labels(stsb, model_garden):
    train, dev, out, summary = stsb
    assert summary["balanced"]
    assert summary["stages"]["parse_rows"]["scopes"][str(train)]["filtered"] == {"header": 1}
    assert summary["stages"]["parse_rows"]["scopes"][str(dev)]["filtered"] == {}
    meta = json.loads((out / finetune_data.META_DATA_FILE).read_text())
    assert meta["task_type"] == "bert_regression" and meta["label_type"] == "float" and "num_labels" not in meta
    assert meta["train_data_size"] == 300 and meta["eval_data_size"] == 200
    records = sorted(_split(out, "dev"), key=lambda r: int(r["example_id"]))
    scores = [float(line.split("\t")[9]) for line in dev.read_text().splitlines()]
    np.testing.assert_allclose([float(r["label_ids"]) for r in records], scores, rtol=1e-6)

    from official.nlp.data.sentence_prediction_dataloader import (
        SentencePredictionDataConfig,
        SentencePredictionDataLoader,
    )

    config = SentencePredictionDataConfig(input_path=str(out / "dev" / "finetune-*.tfrecord"), seq_length=48,
                                          global_batch_size=200, is_training=False, label_type="float")
    (batch,) = list(SentencePredictionDataLoader(config).load())
    assert batch["label_ids"].dtype.name == "float32"
    assert sorted(batch["label_ids"].numpy().tolist()) == pytest.approx(sorted(scores), rel=1e-6)


# --- pairs of our own data -----------------------------------------------------------------------

@pytest.mark.slow
def test_from_pairs_makes_a_balanced_pair_task(shared_data, tmp_path):
    """Tatoeba deu-eng pairs as our JSONL (train) and translation-pair TFRecords (dev): every pair a
    positive, nearly every pair a negative whose B is another pair's translation."""
    from specs import TRANSLATION_PAIRS
    from transforms.core.tfrecords import tfrecord_frame

    base = shared_data / "translation" / "laser_tatoeba_v1" / "tatoeba.deu-eng"
    deu = pathlib.Path(f"{base}.deu").read_text().splitlines()[:240]
    eng = pathlib.Path(f"{base}.eng").read_text().splitlines()[:240]
    train = tmp_path / "pairs.jsonl"
    train.write_text("".join(json.dumps([d, e], ensure_ascii=False) + "\n" for d, e in zip(deu[:160], eng[:160],
                                                                                               strict=True)))
    dev = tmp_path / "pairs-00000-of-00001.tfrecord"
    dev.write_bytes(b"".join(tfrecord_frame(TRANSLATION_PAIRS.encode(
        {"src_raw": d, "tgt_raw": e, "src_lang": "deu", "tgt_lang": "eng"})) for d, e in zip(deu[160:], eng[160:],
                                                                                             strict=True)))
    out = tmp_path / "out"
    summary = _run(["--from_pairs", f"--train_files={train}", f"--dev_files={dev}", "--pairs_per_bucket=40",
                    *_common(shared_data, out, vocab="bert-base-multilingual-cased.vocab.txt"),
                    "--do_lower_case=false"])
    assert summary["balanced"]
    negatives = summary["stages"][ft.NEGATIVES_STAGE]["total"]
    assert negatives["in"] == 240 and negatives["out"] >= 236
    meta = json.loads((out / finetune_data.META_DATA_FILE).read_text())
    assert meta["labels"] == ["0", "1"] and meta["train_data_size"] == 160 + summary["stages"][
        ft.NEGATIVES_STAGE]["scopes"]["train"]["out"]
    from specs.vocabulary import Vocabulary
    from transforms.text.bert_tokenization import BertTokenizer

    tok = BertTokenizer(Vocabulary.load(str(shared_data / "vocab" / "bert-base-multilingual-cased.vocab.txt"), False))
    pair_ids = {(tuple(tok.tokenize(d)[:20]), tuple(tok.tokenize(e)[:20])) for d, e in zip(deu, eng, strict=True)}
    records = _split(out, "train")
    labels = [int(r["label_ids"]) for r in records]
    assert labels.count(1) == 160 and labels.count(0) >= 156
    for r in records:
        real = r["input_mask"] == 1
        ids, n_a = r["input_ids"][real], int((r["segment_ids"][real] == 0).sum())  # [CLS] A [SEP]
        a, b = tuple(ids[1:n_a - 1][:20]), tuple(ids[n_a:-1][:20])
        if int(r["input_mask"].sum()) < 64:  # untruncated: the sides are whole and comparable
            assert ((a, b) in pair_ids) == (int(r["label_ids"]) == 1)
    # deterministic: the same seed gives the same bytes, another seed other negatives
    out2 = tmp_path / "out2"
    _run(["--from_pairs", f"--train_files={train}", f"--dev_files={dev}", "--pairs_per_bucket=40", "--seed=7",
          *_common(shared_data, out2, vocab="bert-base-multilingual-cased.vocab.txt"), "--do_lower_case=false"])
    assert _bytes(out2, "train") != _bytes(out, "train")


@pytest.mark.slow
def test_dataflow_job_graph_builds_offline(shared_data):
    from apache_beam.options.pipeline_options import PipelineOptions

    glue = shared_data / "glue"
    options = PipelineOptions([
        "--task=RTE", f"--input_data_dir={glue / 'RTE'}", f"--vocab_file={shared_data / 'vocab' / UNCASED}",
        "--output_dir=gs://polyembed-test-bucket/out/ft", "--runner=DataflowRunner", "--project=polyembed-test",
        "--region=us-central1", "--temp_location=gs://polyembed-test-bucket/tmp", "--dry_run=True",
        f"--setup_file={pathlib.Path(__file__).resolve().parent.parent / 'setup.py'}",
        "--experiments=use_runner_v2"])
    pipeline = runners.make_pipeline(options)
    finetune_data.build(pipeline, options)
    labels = [t.unique_name for t in pipeline.run().job.proto_pipeline.components.transforms.values()]
    assert any("Featurize" in label for label in labels)


def test_row_format_min_columns():
    assert RowFormat(3, 4, 0).min_columns == 5
    assert RowFormat(1, 2, -1).min_columns == 4


@pytest.mark.slow
def test_xnli_layout_per_language_tests_and_reference_template(shared_data, tmp_path):
    """XNLI's file layout (the reference's XnliProcessor) filled with real RTE sentences: train with
    ``contradictory`` spelled as XNLI spells it, dev combined, test split by its language column into
    the reference's ``test_{}`` files (one per supported language) and ``test_LANG_data_size`` keys."""
    rows = [line.split("\t") for line in _glue(shared_data, "RTE", "dev.tsv").read_text().splitlines()[1:61]]
    labels = ["entailment", "contradictory", "neutral"]
    data = tmp_path / "XNLI"
    (data / "multinli").mkdir(parents=True)
    (data / "multinli" / "multinli.train.en.tsv").write_text(
        "premise\thypo\tlabel\n" + "".join(f"{r[1]}\t{r[2]}\t{labels[i % 3]}\n" for i, r in enumerate(rows[:30])))
    header = "language\tgold_label\ts1_binary\ts2_binary\ts1_parse\ts2_parse\tsentence1\tsentence2\tpromptID\n"

    def evaluation(part: list[list[str]], langs: list[str]) -> str:
        return header + "".join(f"{langs[i % len(langs)]}\t{['entailment', 'contradiction', 'neutral'][i % 3]}"
                                f"\t-\t-\t-\t-\t{r[1]}\t{r[2]}\t{i}\n" for i, r in enumerate(part))

    (data / "xnli.dev.tsv").write_text(evaluation(rows[30:45], ["en"]))
    (data / "xnli.test.tsv").write_text(evaluation(rows[45:], ["de", "fr", "en", "xx"]))
    out = tmp_path / "out"
    code = finetune_data.main([
        "--classification_task_name=XNLI", f"--input_data_dir={data}", "--max_seq_length=64",
        f"--vocab_file={shared_data / 'vocab' / 'bert-base-multilingual-cased.vocab.txt'}", "--do_lower_case=false",
        f"--train_data_output_path={out / 'train.tf_record'}", f"--eval_data_output_path={out / 'eval.tf_record'}",
        f"--test_data_output_path={out / 'test_{}.tf_record'}", f"--meta_data_file_path={out / 'meta'}"])
    assert code == 0
    meta = json.loads((out / "meta").read_text())
    assert meta["train_data_size"] == 30 and meta["eval_data_size"] == 15 and meta["num_labels"] == 3
    assert {k: v for k, v in meta.items() if k.startswith("test_") and v} == {
        "test_de_data_size": 4, "test_fr_data_size": 4, "test_en_data_size": 4}
    assert sum(k.startswith("test_") for k in meta) == 15
    assert sorted(p.name for p in out.glob("test_*.tf_record")) == sorted(
        f"test_{lang}.tf_record" for lang in glue_task("XNLI").languages)
    train = sorted(_records([out / "train.tf_record"]), key=lambda r: int(r["example_id"]))
    assert [int(r["label_ids"]) for r in train] == [[1, 0, 2][i % 3] for i in range(30)]  # contradictory -> 0
    letters = _dead_letters(out / finetune_data.REFERENCE_RUN_DIR)
    assert sorted((d["reason"], d["line"]) for d in letters) == [("unknown_language", 5), ("unknown_language", 9),
                                                           ("unknown_language", 13)]
    german = _records([out / "test_de.tf_record"])
    assert sorted(int(r["example_id"]) for r in german) == [0, 4, 8, 12]


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as done:
        finetune_data.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--classification_task_name", "--train_data_output_path", "--meta_data_file_path", "--from_pairs",
                 "--text_a_field", "--header_row", "--output_dir", "--nodo_lower_case"):
        assert flag in text
