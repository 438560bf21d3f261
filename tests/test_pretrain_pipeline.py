"""End to end: ``pipelines.pretrain_data`` on real text, read back with the written spec and with the
parsing code of Model Garden's BERT pretraining loader; statistics, determinism, TLM, sampling."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest

import specs
from pipelines import pretrain_data
from specs.vocabulary import Vocabulary
from transforms.core import runtime
from transforms.core.tfrecords import tfrecord_frame
from transforms.pretraining import PARAMS_FILE
from transforms.text import bert_tokenization as bt
from transforms.text.sentences import split_sentences

_HEADING = re.compile(r"^ = [^=].* = $")


def wikitext_as_bert_text(path: pathlib.Path) -> str:
    """WikiText (a paragraph per line, `` = Title = `` lines) in the BERT format: a sentence per line,
    a blank line between articles; section headings are dropped."""
    out: list[str] = []
    for line in path.read_text("utf-8").splitlines():
        if _HEADING.match(line):
            if out and out[-1]:
                out.append("")
        elif line.strip() and not line.strip().startswith("= ="):
            out.extend(split_sentences(line))
    return "\n".join(out) + "\n"


def _run(tmp: pathlib.Path, *flags: str) -> dict:
    summary = runtime.run_pipeline("pretrain_data", [f"--output_dir={tmp}", *flags], pretrain_data.build)
    assert summary["balanced"]
    return summary


def _read(out: pathlib.Path) -> tuple[specs.FeatureSpec, dict, dict[str, np.ndarray]]:
    """Parses every record with the spec found next to the data, as the trainer would."""
    import tensorflow as tf

    spec = specs.read_spec_text((out / specs.SCHEMA_FILE).read_text(), (out / specs.SPEC_FILE).read_text())
    params = json.loads((out / PARAMS_FILE).read_text())
    files = sorted(str(p) for p in out.glob("pretrain-*"))
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP" if params["gzip_compress"] else "")
    parsed = ds.batch(100_000).map(lambda r: tf.io.parse_example(r, spec.tf_parsing_spec()))
    (batch,) = list(parsed)
    return spec, params, {k: v.numpy() for k, v in batch.items()}


def _restore(ex: dict[str, np.ndarray]) -> np.ndarray:
    ids = ex["input_ids"].copy()
    rows = np.repeat(np.arange(len(ids)), ex["masked_lm_positions"].shape[1])
    w = ex["masked_lm_weights"].reshape(-1) > 0
    ids[rows[w], ex["masked_lm_positions"].reshape(-1)[w]] = ex["masked_lm_ids"].reshape(-1)[w]
    return ids


@pytest.fixture(scope="module")
def english(shared_data, tmp_path_factory):
    """Sentence-per-line WikiText (validation split, 60 articles) plus BERT's sample text."""
    tmp = tmp_path_factory.mktemp("english")
    corpus = tmp / "wiki.txt"
    corpus.write_text(wikitext_as_bert_text(shared_data / "text" / "wikitext-2" / "wiki.valid.tokens.txt"))
    sample = shared_data / "text" / "bert_sample_text.txt"
    (tmp / "sample.txt").write_text(sample.read_bytes().decode("utf-8", "ignore"))  # for the haystack only
    vocab = shared_data / "vocab" / "bert-base-uncased.vocab.txt"
    out = tmp / "out"
    summary = _run(out, f"--input_file={corpus},{sample}",
                   f"--vocab_file={vocab}", "--dupe_factor=2", "--max_seq_length=128",
                   "--max_predictions_per_seq=20", "--masked_lm_prob=0.15", "--records_per_shard=3000")
    return corpus, vocab, out, summary


@pytest.mark.slow
def test_records_parse_with_the_written_spec_and_hold_the_reference_layout(english):
    _, vocab, out, summary = english
    spec, params, ex = _read(out)
    # The spec records the vocabulary the ids came from (fingerprint, casing, special ids).
    expected = specs.pretraining_spec(128, 20, tokenization=Vocabulary.load(str(vocab), True).params())
    assert spec == specs.read_spec_text(expected.to_schema_text(), expected.to_json())
    n = len(ex["input_ids"])
    assert n == params["records_written"] > 1000
    assert len(list(out.glob("pretrain-*-of-*.tfrecord"))) == -(-n // 3000)
    lengths = ex["input_mask"].sum(1)
    assert (ex["input_mask"] == (np.arange(128) < lengths[:, None])).all()
    assert (ex["input_ids"][:, 0] == 101).all()
    assert (ex["input_ids"][np.arange(n), lengths - 1] == 102).all()
    restored = _restore(ex)  # a random replacement id may itself be [SEP] (1 in 30522)
    assert ((restored == 102).sum(1) == 2).all()
    assert (ex["input_ids"][ex["input_mask"] == 0] == 0).all()
    seg = ex["segment_ids"]
    assert (np.diff(seg, axis=1)[ex["input_mask"][:, 1:] == 1] >= 0).all()  # 0...0 1...1 then padding
    first_sep = (restored == 102).argmax(1)
    assert (seg[np.arange(n), first_sep] == 0).all() and (seg[np.arange(n), first_sep + 1] == 1).all()
    stages = summary["stages"]
    assert stages["read_text"]["total"]["filtered"] == {"blank_line": stages["read_text"]["total"]["in"]
                                                        - stages["read_text"]["total"]["out"]}


@pytest.mark.slow
def test_masks_sorted_unique_never_special_and_sized_like_the_reference(english):
    _, _, out, _ = english
    _, _, ex = _read(out)
    w = ex["masked_lm_weights"]
    pos = ex["masked_lm_positions"]
    k = w.sum(1).astype(int)
    lengths = ex["input_mask"].sum(1)
    expected = np.minimum(20, np.maximum(1, np.round(lengths * 0.15))).astype(int)  # numpy rounds half to even
    assert (k == expected).all()
    for r in range(len(pos)):
        p = pos[r, :k[r]]
        assert (np.diff(p) > 0).all() and (pos[r, k[r]:] == 0).all() and (w[r, k[r]:] == 0).all()
        originals = ex["masked_lm_ids"][r, :k[r]]
        assert not np.isin(originals, [0, 101, 102]).any()
    restored = _restore(ex)
    masked = ex["input_ids"][np.repeat(np.arange(len(k)), 20).reshape(-1, 20), pos][w > 0]
    truth = ex["masked_lm_ids"][w > 0]
    n = len(truth)
    frac_mask = (masked == 103).mean()
    frac_kept = (masked == truth).mean()
    assert abs(frac_mask - 0.8) < 4 * np.sqrt(0.16 / n)
    assert abs(frac_kept - 0.1) < 4 * np.sqrt(0.09 / n) + 0.001
    assert abs(1 - frac_mask - frac_kept - 0.1) < 4 * np.sqrt(0.09 / n)
    assert (restored[ex["input_mask"] == 1] != 103).all()
    rate = k.sum() / lengths.sum()
    assert 0.14 < rate < 0.155


@pytest.mark.slow
def test_next_sentence_balance_and_short_sequences(english):
    _, _, out, _ = english
    _, _, ex = _read(out)
    nsp = ex["next_sentence_labels"][:, 0]
    assert set(np.unique(nsp)) == {0, 1}
    assert 0.5 < nsp.mean() < 0.62  # the reference measures 54-58% on sentence-per-line wikitext
    lengths = ex["input_mask"].sum(1)
    assert 0.6 < (lengths >= 120).mean() < 0.97


@pytest.mark.slow
def test_unmasking_gives_back_the_tokenised_input(english):
    """A and B of every sampled example are contiguous runs of one tokenised document."""
    corpus, vocab, out, _ = english
    _, _, ex = _read(out)
    tok = bt.BertTokenizer(Vocabulary.load(str(vocab), True))
    text = corpus.read_text() + "\n\n" + (corpus.parent / "sample.txt").read_text()
    docs = [d.split("\n") for d in text.split("\n\n") if d.strip()]
    streams = []
    for doc in docs:
        ids = tok.tokenize_batch([s for s in doc if s.strip()])
        streams.append(np.concatenate(ids).astype("<i4").tobytes())
    haystack = b"\xff\xff\xff\xff".join(streams)
    restored = _restore(ex)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(restored), size=min(400, len(restored)), replace=False)

    def occurs(tokens: np.ndarray) -> bool:
        needle = tokens.astype("<i4").tobytes()
        at = haystack.find(needle)
        while at >= 0 and at % 4:
            at = haystack.find(needle, at + 1)
        return at >= 0

    checked = 0
    for r in rows:
        n = int(ex["input_mask"][r].sum())
        ids, seg = restored[r, :n], ex["segment_ids"][r, :n]
        a, b = ids[1:int((seg == 0).sum()) - 1], ids[int((seg == 0).sum()):n - 1]
        assert occurs(a) and occurs(b), r
        checked += 1
    assert checked == len(rows) > 300


@pytest.mark.slow
def test_model_garden_loader_parses_the_records(english):
    """The feature map of Model Garden's ``BertPretrainDataLoader._decode`` (official/nlp/data/
    pretrain_dataloader.py): names, dtypes and shapes, then int64 cast to int32 for the TPU."""
    import tensorflow as tf

    _, _, out, _ = english
    seq_length, max_predictions = 128, 20
    name_to_features = {
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions], tf.float32),
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }

    def decode(record):
        example = tf.io.parse_single_example(record, name_to_features)
        return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in example.items()}

    files = sorted(str(p) for p in out.glob("pretrain-*"))
    batch = next(iter(tf.data.TFRecordDataset(files).map(decode).batch(64)))
    assert batch["input_ids"].shape == (64, 128) and batch["input_ids"].dtype == tf.int32
    assert batch["masked_lm_weights"].dtype == tf.float32 and batch["next_sentence_labels"].shape == (64, 1)


@pytest.fixture(scope="module")
def small_corpus(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("small")
    corpus = tmp / "small.txt"
    text = wikitext_as_bert_text(shared_data / "text" / "wikitext-2" / "wiki.test.tokens.txt")
    corpus.write_text("\n\n".join(text.split("\n\n")[:12]) + "\n")
    return corpus, shared_data / "vocab" / "bert-base-cased.vocab.txt", tmp


def _data(out: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("pretrain-*"))}


@pytest.mark.slow
def test_byte_identical_across_runner_modes_and_a_new_seed_changes_masks(small_corpus):
    corpus, vocab, tmp = small_corpus
    flags = [f"--input_file={corpus}", f"--vocab_file={vocab}", "--do_lower_case=false", "--dupe_factor=3",
             "--records_per_shard=200", "--do_whole_word_mask=true", "--max_ngram_size=3", "--docs_per_bucket=4"]
    _run(tmp / "a", *flags)
    _run(tmp / "b", *flags, "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    _run(tmp / "c", *flags, "--random_seed=7")
    a, b, c = _data(tmp / "a"), _data(tmp / "b"), _data(tmp / "c")
    assert len(a) > 1 and a == b
    _, _, ea = _read(tmp / "a")
    _, _, ec = _read(tmp / "c")
    assert a != c
    same_count = len(ea["input_ids"]) == len(ec["input_ids"])
    assert not same_count or not (np.sort(ea["masked_lm_positions"], 0) == np.sort(ec["masked_lm_positions"], 0)).all()
    assert (json.loads((tmp / "a" / "summary.json").read_text())
            == json.loads((tmp / "b" / "summary.json").read_text()))


@pytest.mark.slow
def test_dynamic_masking_with_v2_names_and_gzip(small_corpus):
    corpus, vocab, tmp = small_corpus
    out = tmp / "dynamic"
    _run(out, f"--input_patterns={corpus}", f"--vocab_file={vocab}", "--do_lower_case=false", "--dupe_factor=1",
         "--dynamic_masking", "--use_v2_feature_names=true", "--gzip_compress")
    spec, _, ex = _read(out)
    assert set(spec.names) == {"input_word_ids", "input_type_ids"}
    assert list(out.glob("pretrain-*.tfrecord.gz"))
    ids = ex["input_word_ids"]
    assert (ids[:, 0] == 101).all() and not (ids == 103).any()


def _write_pairs(path: pathlib.Path, pairs: list[tuple[str, str, str, str]]) -> None:
    with open(path, "wb") as f:
        for src, tgt, sl, tl in pairs:
            f.write(tfrecord_frame(specs.TRANSLATION_PAIRS.encode(
                {"src_raw": src, "tgt_raw": tgt, "src_lang": sl, "tgt_lang": tl})))


@pytest.mark.slow
def test_multilingual_jsonl_with_language_smoothing_and_tlm(shared_data, tmp_path):
    flores = shared_data / "translation" / "flores200_devtest"
    take = {"eng_Latn": 600, "fra_Latn": 200, "jpn_Jpan": 60, "hin_Deva": 40, "tha_Thai": 30}
    lines = {lang: (flores / f"{lang}.devtest").read_text("utf-8").splitlines() for lang in take}
    with open(tmp_path / "docs.jsonl", "w", encoding="utf-8") as f:
        for lang, n in take.items():
            for i in range(0, n, 5):
                f.write(json.dumps({"text": " ".join(lines[lang][i:i + 5]), "lang": lang}, ensure_ascii=False) + "\n")
        f.write("{not json\n\n" + json.dumps({"title": "no text"}) + "\n")
    pairs = [(e, fr, "eng_Latn", "fra_Latn") for e, fr in zip(lines["eng_Latn"][:150], lines["fra_Latn"][:150],
                                                                 strict=True)]
    pairs.append(("", "vide", "eng_Latn", "fra_Latn"))
    _write_pairs(tmp_path / "pairs.tfrecord", pairs)
    _write_pairs(tmp_path / "pairs_cut.tfrecord", pairs[:1])  # then cut inside its one frame
    (tmp_path / "pairs_cut.tfrecord").write_bytes((tmp_path / "pairs_cut.tfrecord").read_bytes()[:30])
    vocab = shared_data / "vocab" / "bert-base-multilingual-cased.vocab.txt"
    out = tmp_path / "out"
    summary = _run(out, f"--input_patterns={tmp_path / 'docs.jsonl'}", f"--vocab_file={vocab}",
                   "--do_lower_case=false", "--dupe_factor=4", "--language_alpha=0.3",
                   f"--tlm_input={tmp_path / 'pairs*.tfrecord'}", "--allow_incomplete", "--docs_per_bucket=10")
    _, params, ex = _read(out)
    langs = params["languages"]
    assert {k: v["documents"] for k, v in langs.items()} == {k: n // 5 for k, n in take.items()}
    rates = [langs[k]["passes_per_document"] for k in take]
    assert rates == sorted(rates) and rates[0] < 4 < rates[-1]
    per_doc = [langs[k]["examples"] / langs[k]["documents"] for k in take]
    assert all(x > 0 for x in per_doc) and per_doc[-1] > 2 * per_doc[0]
    stages = summary["stages"]
    assert stages["read_jsonl"]["total"]["dead_lettered"] == {"invalid_json": 1, "missing_text_field": 1}
    assert stages["read_jsonl"]["total"]["filtered"] == {"blank_line": 1}
    assert set(stages["sample_languages"]["scopes"]) == set(take)
    assert stages["read_tfrecord_frames"]["total"] == {"in": 152, "out": 151, "filtered": {},
                                                       "dead_lettered": {"truncated_record": 1}}
    assert stages["read_pairs"]["total"] == {"in": 151, "out": 150, "filtered": {"empty_side": 1}, "dead_lettered": {}}
    assert params["tlm_examples"] == {"tlm:eng_Latn-fra_Latn": 600}
    assert len(ex["input_ids"]) == params["records_written"] == 600 + sum(v["examples"] for v in langs.values())
    tok = bt.BertTokenizer(Vocabulary.load(str(vocab), False))
    expected = set()
    for src, tgt, _, _ in pairs[:150]:
        s, t = tok.tokenize(src).tolist(), tok.tokenize(tgt).tolist()
        if len(s) + len(t) <= 125:
            expected.add(tuple([101, *s, 102, *t, 102]))
    restored = _restore(ex)
    found = [r for r in range(len(restored)) if tuple(restored[r, :ex["input_mask"][r].sum()]) in expected]
    assert len(found) == 4 * len(expected) > 400
    assert (ex["next_sentence_labels"][found] == 0).all()
    dead = list((out / "dead_letter").glob("*.jsonl.gz"))
    assert dead


@pytest.mark.parametrize("flags,message", [
    (["--vocab_file=/nonexistent/vocab.txt"], "--vocab_file: cannot read"),
    (["--max_ngram_size=3"], "--max_ngram_size needs --do_whole_word_mask"),
    (["--masked_lm_prob=1.5"], "--masked_lm_prob must be in (0, 1]"),
    (["--max_seq_length=4"], "--max_seq_length must be at least 5"),
    (["--language_pattern=("], "--language_pattern"),
    (["--language_pattern=abc"], "needs a group"),  # one meaning in every job: group 1 is the language
])
def test_bad_configuration_fails_at_start_with_one_line(shared_data, tmp_path, capsys, flags, message):
    vocab = shared_data / "vocab" / "bert-base-uncased.vocab.txt"
    argv = [f"--output_dir={tmp_path}", f"--input_file={shared_data / 'text' / 'bert_sample_text.txt'}",
            f"--vocab_file={vocab}", *flags]
    assert runtime.main("pretrain_data", pretrain_data.build, argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("output_file", [False, True])
def test_a_run_that_writes_no_example_is_left_unfinished(shared_data, tmp_path, output_file):
    """The job's after-run check (``Built.empty``) looks where the examples end up, the reference's
    ``--output_file`` names included: nothing there is an empty output, and the run would end unfinished."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    out = tmp_path / "out"
    flags = [f"--output_dir={out}", f"--input_file={shared_data / 'text' / 'bert_sample_text.txt'}",
             f"--vocab_file={shared_data / 'vocab' / 'bert-base-uncased.vocab.txt'}"]
    flags += [f"--output_file={tmp_path / 'examples.tfrecord'}"] if output_file else []
    built = pretrain_data.build(beam.Pipeline(options=PipelineOptions(flags)), PipelineOptions(flags))
    assert built.empty() == ["the examples"]
    written = tmp_path / "examples.tfrecord" if output_file else out / "pretrain-00000-of-00001.tfrecord"
    written.parent.mkdir(exist_ok=True)
    written.write_bytes(b"")  # what WriteShards leaves for no record
    assert built.empty() == ["the examples"]
    written.write_bytes(b"\0")
    assert built.empty() == []


def test_missing_input_is_a_configuration_error(tmp_path, capsys):
    assert runtime.main("pretrain_data", pretrain_data.build,
                        [f"--output_dir={tmp_path}", f"--input_file={tmp_path}/none*.txt", "--vocab_file=x"]) == 2
    assert "no file matches" in capsys.readouterr().err
