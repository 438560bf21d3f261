"""The inspect tool: decoding, statistics and structural checks on pretraining records built here from
real text and Google's uncased vocabulary (v1/v2 names, dynamic masking, GZIP and plain shards),
broken records, bad arguments, and the real output of pipelines.pretrain_data."""

from __future__ import annotations

import gzip
import io
import json
import os
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest

import specs
from pipelines import inspect as insp
from specs import run_folder
from transforms import vocab as wp
from transforms.core.spec_files import write_spec_files
from transforms.core.tfrecords import tfrecord_frame
from transforms.pretraining import inspection
from transforms.pretraining.layout import Layout, Specials
from transforms.pretraining.statistics import Stats

L, P = 64, 10
REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def vocab(shared_data) -> list[str]:
    return (shared_data / "vocab/bert-base-uncased.vocab.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def sentences(shared_data, vocab) -> list[list[int]]:
    """Lines of a real novel as uncased WordPiece ids."""
    index = {t: i for i, t in enumerate(vocab)}
    known = frozenset(vocab)
    out = []
    for line in (shared_data / "text/gutenberg_novels/botchan.en.txt").read_text(encoding="utf-8-sig").splitlines():
        ids = [index[p] for w in wp.pre_tokenize(line, True) for p in (wp.wordpiece_split(w, known) or ["[UNK]"])]
        if ids:
            out.append(ids)
    return out


def make_records(sents: list[list[int]], n: int, *, v2: bool = False, dynamic: bool = False,
                 seed: int = 3) -> tuple[list[dict], dict]:
    """Reference-style instances from real sentences, masked 80/10/10, and the truth about them."""
    rng = random.Random(seed)
    ids_name, seg_name = ("input_word_ids", "input_type_ids") if v2 else ("input_ids", "segment_ids")
    truth = {"mask": 0, "random": 0, "kept": 0, "nsp": 0, "length": 0}
    records = []
    for _ in range(n):
        i = rng.randrange(len(sents) - 3)
        a = sents[i][: rng.randint(1, 25)]
        nsp = rng.random() < 0.5
        b = sents[rng.randrange(len(sents))] if nsp else sents[i + 1]
        b = b[: L - 3 - len(a)]
        tokens = [101, *a, 102, *b, 102]
        segs = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        truth["length"] += len(tokens)
        truth["nsp"] += nsp
        rec = {ids_name: tokens + [0] * (L - len(tokens)), seg_name: segs + [0] * (L - len(segs))}
        if not dynamic:
            cands = [j for j, t in enumerate(tokens) if t not in (101, 102)]
            k = min(P, max(1, round(len(tokens) * 0.15)))
            pos = sorted(rng.sample(cands, min(k, len(cands))))
            orig = [tokens[j] for j in pos]
            shown = list(tokens)
            for j in pos:
                r = rng.random()
                if r < 0.8:
                    shown[j] = 103
                    truth["mask"] += 1
                elif r < 0.9:
                    shown[j] = rng.choice([t for t in range(1000, 1050) if t != tokens[j]])
                    truth["random"] += 1
                else:
                    truth["kept"] += 1
            rec.update({
                ids_name: shown + [0] * (L - len(shown)),
                "input_mask": [1] * len(tokens) + [0] * (L - len(tokens)),
                "masked_lm_positions": pos + [0] * (P - len(pos)),
                "masked_lm_ids": orig + [0] * (P - len(orig)),
                "masked_lm_weights": [1.0] * len(pos) + [0.0] * (P - len(pos)),
                "next_sentence_labels": [int(nsp)],
            })
        records.append(rec)
    return records, truth


def write_dataset(directory: pathlib.Path, records: list[dict], spec: specs.FeatureSpec, params: dict | None = None,
                  shards: int = 2) -> None:
    """Shards alternate GZIP and plain, both named .tfrecord: the tool must tell them apart by content."""
    write_spec_files(spec, str(directory))
    for s in range(shards):
        data = b"".join(tfrecord_frame(spec.encode(r)) for r in records[s::shards])
        (directory / f"pretrain-{s:05d}-of-{shards:05d}.tfrecord").write_bytes(gzip.compress(data) if s % 2 == 0
                                                                               else data)
    if params is not None:
        (directory / "params.json").write_text(json.dumps(params))
    run_folder.write_complete(str(directory), "pretrain_data", {}, {})  # what a finished run leaves


def test_statistics_and_decoding_match_what_was_written(shared_data, vocab, sentences, tmp_path):
    records, truth = make_records(sentences, 1500)
    vocab_file = shared_data / "vocab/bert-base-uncased.vocab.txt"
    write_dataset(tmp_path, records, specs.pretraining_spec(L, P),
                  {"vocab_file": str(vocab_file), "masked_lm_prob": 0.15, "vocab_size": len(vocab)})
    png, stats_json = tmp_path / "h.png", tmp_path / "stats.json"
    assert insp.main([str(tmp_path), "--num_examples=2", f"--histogram={png}", f"--stats_json={stats_json}"]) == 0
    res = json.loads(stats_json.read_text())
    assert res["records"] == 1500 and res["files"] == 2 and res["problems"] == {}
    p = res["predictions"]
    assert (p["replaced_by_mask"]["count"], p["replaced_by_random"]["count"], p["kept"]["count"]) == (
        truth["mask"], truth["random"], truth["kept"])
    assert p["count_matches_reference_formula"] == 1.0
    assert abs(p["replaced_by_mask"]["fraction"] - 0.8) < 3 * p["replaced_by_mask"]["ci95"]
    assert res["next_sentence"]["random_next"] == truth["nsp"]
    assert res["length"]["mean"] == pytest.approx(truth["length"] / 1500)
    assert p["mask_rate"] == pytest.approx(p["total"] / truth["length"])
    assert res["special_ids"] == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(str(png)).shape[:2] == (675, 990)


def test_decoded_example_shows_masks_with_originals(shared_data, vocab, sentences, tmp_path):
    records, _ = make_records(sentences, 4)
    write_dataset(tmp_path, records, specs.pretraining_spec(L, P), shards=1)
    out = io.StringIO()
    inspection.inspect(str(tmp_path), vocab_file=str(shared_data / "vocab/bert-base-uncased.vocab.txt"),
                 num_examples=1, out=out)
    text = out.getvalue()
    r = records[0]
    first = r["masked_lm_positions"][0]
    shown, orig = vocab[r["input_ids"][first]], vocab[r["masked_lm_ids"][0]]
    assert f"[{shown}→{orig}]" in text
    assert "segment A: [CLS] " in text and "segment B: " in text and text.count("example ") == 1
    assert f"{first}:{orig} " in text
    assert "checks: all records passed" in text


def test_v2_names_and_dynamic_masking_records(shared_data, vocab, sentences, tmp_path):
    v2, _ = make_records(sentences, 50, v2=True)
    write_dataset(tmp_path / "v2", v2, specs.pretraining_spec(L, P, v2_names=True))
    res = inspection.inspect(str(tmp_path / "v2" / "*.tfrecord"), num_examples=0, out=io.StringIO())
    assert res["layout"]["v2_names"] and res["records"] == 50 and res["problems"] == {}
    dyn, _ = make_records(sentences, 80, dynamic=True)
    write_dataset(tmp_path / "dyn", dyn, specs.pretraining_spec(L, P, dynamic_masking=True))
    out = io.StringIO()
    res = inspection.inspect(str(tmp_path / "dyn"), vocab_file=str(shared_data / "vocab/bert-base-uncased.vocab.txt"),
                       num_examples=1, out=out, max_records=60)
    assert res["layout"]["dynamic"] and "predictions" not in res and res["problems"] == {}
    assert res["records"] == 60
    assert "dynamic masking" in out.getvalue() and "[CLS]" in out.getvalue()


def test_broken_records_are_reported_and_exit_nonzero(shared_data, vocab, sentences, tmp_path, capsys):
    records, _ = make_records(sentences, 40)
    spec = specs.pretraining_spec(L, P)
    bad = [dict(r) for r in records[:6]]
    bad[0]["masked_lm_positions"] = [bad[0]["masked_lm_positions"][1], bad[0]["masked_lm_positions"][0],
                                     *bad[0]["masked_lm_positions"][2:]]
    bad[1]["masked_lm_positions"] = [0, *bad[1]["masked_lm_positions"][1:]]
    bad[2]["segment_ids"] = [0] * L
    bad[3]["input_ids"] = [7, *bad[3]["input_ids"][1:]]
    bad[4]["masked_lm_ids"] = [102, *bad[4]["masked_lm_ids"][1:]]
    bad[5]["input_mask"] = [1] * L
    write_dataset(tmp_path, bad + records[6:], spec, shards=1)
    stats = tmp_path / "s.json"
    assert insp.main([str(tmp_path), "--num_examples=0", "--histogram=", f"--stats_json={stats}"]) == 1
    res = json.loads(stats.read_text())
    # Each broken record is caught by its own check (a break can trip further checks too).
    assert {k: res["first_bad_record"][k] for k in (
        "positions_unsorted_or_duplicate", "position_outside_sequence", "bad_segment_ids", "not_cls_first",
        "special_token_masked", "bad_padding")} == {
        "positions_unsorted_or_duplicate": 0, "position_outside_sequence": 1, "bad_segment_ids": 2,
        "not_cls_first": 1, "special_token_masked": 4, "bad_padding": 5}  # record 1 put a token over [CLS]
    assert res["problems"]["not_cls_first"] == 2  # records 1 and 3
    assert max(res["first_bad_record"].values()) < 6 and res["records"] == 40  # the intact records pass
    assert all(n <= 6 for n in res["problems"].values())
    assert "PROBLEMS:" in capsys.readouterr().out


def test_stats_work_on_plain_arrays_without_tensorflow():
    layout = Layout("input_ids", "segment_ids", 8, 2, False, False, True)
    stats = Stats(layout, Specials(0, 100, 101, 102, 103), 30522, 0.15)
    stats.add({
        "input_ids": np.array([[101, 103, 7, 102, 9, 102, 0, 0]]), "segment_ids": np.array([[0, 0, 0, 0, 1, 1, 0, 0]]),
        "input_mask": np.array([[1, 1, 1, 1, 1, 1, 0, 0]]), "masked_lm_positions": np.array([[1, 2]]),
        "masked_lm_ids": np.array([[5, 7]]), "masked_lm_weights": np.array([[1.0, 1.0]]),
        "next_sentence_labels": np.array([[1]])})
    # Random replacements may be any id, [SEP] and [PAD] included: structure is judged on the original.
    stats.add({
        "input_ids": np.array([[101, 102, 0, 102, 9, 102, 0, 0]]), "segment_ids": np.array([[0, 0, 0, 0, 1, 1, 0, 0]]),
        "input_mask": np.array([[1, 1, 1, 1, 1, 1, 0, 0]]), "masked_lm_positions": np.array([[1, 2]]),
        "masked_lm_ids": np.array([[5, 7]]), "masked_lm_weights": np.array([[1.0, 1.0]]),
        "next_sentence_labels": np.array([[0]])})
    res = stats.result()
    assert res["problems"] == {} and res["records"] == 2
    assert res["predictions"]["replaced_by_random"]["count"] == 2
    assert res["predictions"]["replaced_by_mask"]["count"] == 1 and res["predictions"]["kept"]["count"] == 1
    assert res["segment_a_length"]["mean"] == 4 and res["segment_b_length"]["mean"] == 2
    assert res["predictions"]["count_matches_reference_formula"] == 0.0  # round(6 * 0.15) = 1, not 2
    stats.add({"input_ids": np.array([[101, 103, 7, 102, 103, 102, 0, 0]]),
               "segment_ids": np.array([[0, 0, 0, 0, 1, 1, 0, 0]]), "input_mask": np.array([[1, 1, 1, 1, 1, 1, 0, 0]]),
               "masked_lm_positions": np.array([[1, 0]]), "masked_lm_ids": np.array([[5, 0]]),
               "masked_lm_weights": np.array([[1.0, 0.0]]), "next_sentence_labels": np.array([[0]])})
    assert stats.result()["problems"] == {"mask_outside_predictions": 1}


def test_bad_arguments_fail_with_one_line(tmp_path, capsys, shared_data):
    (tmp_path / "x.tfrecord").write_bytes(b"")
    assert insp.main([str(tmp_path)]) == 2
    assert "no _RUN_COMPLETE.json" in capsys.readouterr().err
    assert insp.main([str(tmp_path), "--allow_incomplete"]) == 2
    assert "no schema.pbtxt" in capsys.readouterr().err
    write_spec_files(specs.TRANSLATION_PAIRS, str(tmp_path))
    assert insp.main([str(tmp_path), "--allow_incomplete"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not pretraining records" in err and "\n" not in err
    assert insp.main([str(tmp_path / "nothing" / "*.tfrecord")]) == 2
    assert "no record files" in capsys.readouterr().err


@pytest.mark.slow
def test_chain_vocab_then_pretrain_data_then_inspect(shared_data, tmp_path):
    """What `make demo` runs, as commands: learn a vocabulary, build pretraining records with it,
    inspect them. (Separate processes also keep the two jobs' Beam options apart.)"""
    text = f"{shared_data}/text/bert_sample_text.txt,{shared_data}/text/gutenberg_novels/botchan.en.txt"
    vocab_file = tmp_path / "vocab" / "vocab.txt"
    out = tmp_path / "pretrain"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for args in (["pipelines.vocab", f"--input_patterns={text}", f"--output_dir={tmp_path / 'vocab'}",
                  "--vocab_size=1200", "--do_lower_case", "--max_words=500"],
                 ["pipelines.pretrain_data", f"--input_patterns={text}", f"--output_dir={out}",
                  f"--vocab_file={vocab_file}", "--do_lower_case", "--max_seq_length=128",
                  "--max_predictions_per_seq=20", "--dupe_factor=1", "--use_v2_feature_names", "--gzip_compress"]):
        done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "holds for every stage and scope" in done.stdout
    report = io.StringIO()
    res = inspection.inspect(str(out), num_examples=2, histogram=str(tmp_path / "h.png"), out=report)
    # A small vocabulary makes random replacements hit [SEP]/[PAD] now and then: still no problem.
    assert res["problems"] == {} and res["records"] > 500 and res["layout"]["v2_names"]
    assert "vocabulary: " + str(vocab_file) in report.getvalue()  # found through params.json
    p = res["predictions"]
    assert p["count_matches_reference_formula"] == 1.0
    for key, expected in (("replaced_by_mask", 0.8), ("replaced_by_random", 0.1), ("kept", 0.1)):
        assert abs(p[key]["fraction"] - expected) < 4 * p[key]["ci95"], (key, p[key])
    assert abs(res["next_sentence"]["random_next_fraction"]["fraction"] - 0.5) < 0.1
    # Every character of the text is in the learned vocabulary, so nothing is [UNK].
    assert res["unk_rate"] < 1e-4 and res["length"]["max"] == 128
