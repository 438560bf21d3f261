"""Scoring and filtering translation pairs with a sentence encoder (``transforms.encoders``,
``pipelines.translation_pairs --score_with``): the margin arithmetic against its definition, the
bucketing and chunking rules, the start-up refusals, and the job on real FLORES pairs with the real
all-MiniLM-L6-v2 (exported once per module), with planted wrong pairs."""

from __future__ import annotations

import gzip
import json
import pathlib

import numpy as np
import pytest

import specs
from pipelines import translation_pairs
from transforms import encoders
from transforms import translation as tr
from transforms.core import runtime

# --- the margin, against its definition --------------------------------------------------------


def _margin_by_definition(x: np.ndarray, y: np.ndarray, i: int, j: int, k: int) -> float:
    """Artetxe & Schwenk's ratio margin of (x_i, y_j), written out with loops."""
    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    nn_x = sorted((cos(x[i], z) for z in y), reverse=True)[:k]
    nn_y = sorted((cos(y[j], z) for z in x), reverse=True)[:k]
    return cos(x[i], y[j]) / (sum(nn_x) / (2 * k) + sum(nn_y) / (2 * k))


def test_ratio_margin_is_artetxe_and_schwenks_definition():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    scores, margins = encoders.aligned_margins(x, y, 3)
    full = encoders.ratio_margins(encoders.cosine_matrix(x, y), 3)
    for i in range(7):
        assert margins[i] == pytest.approx(_margin_by_definition(x, y, i, i, 3), rel=1e-12)
        assert scores[i] == pytest.approx(float(encoders.cosine(x[i], y[i])), rel=1e-12)
        for j in range(7):
            assert full[i, j] == pytest.approx(_margin_by_definition(x, y, i, j, 3), rel=1e-12)
    # k beyond the candidates takes them all; k < 1 is refused
    assert encoders.aligned_margins(x[:2], y[:2], 10)[1] == pytest.approx(
        [_margin_by_definition(x[:2], y[:2], i, i, 2) for i in range(2)], rel=1e-12)
    with pytest.raises(ValueError, match="k must be >= 1"):
        encoders.neighbour_means(encoders.cosine_matrix(x, y), 0)


def test_a_swapped_target_gets_a_low_margin_and_true_pairs_a_high_one():
    """Noisy copies as translations: the two pairs whose targets are swapped fall below 1, the rest above."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 16))
    y = x + 0.3 * rng.normal(size=x.shape)
    y[[3, 11]] = y[[11, 3]]
    _, margins = encoders.aligned_margins(x, y, 4)
    assert set(np.flatnonzero(margins < 1)) == {3, 11}


# --- buckets and chunks ------------------------------------------------------------------------

def _pair(i: int, lang: str = "fra") -> tr.TranslationPair:
    return tr.TranslationPair(f"phrase {i}", f"sentence {i}", lang, "eng", "f", i + 1, -1)


def test_buckets_come_from_the_pair_and_the_language_pair_size_not_the_arrival():
    pairs = [_pair(i) for i in range(1000)]
    counts = {"fra-eng": 1000}
    buckets = [encoders.bucket_of(p, counts, 100) for p in pairs]
    assert buckets == [encoders.bucket_of(p, counts, 100) for p in reversed(pairs)][::-1]
    assert {b for _, b in buckets} == set(range(10))
    assert all(60 <= sum(1 for _, b in buckets if b == n) <= 140 for n in range(10))
    assert encoders.bucket_count(40, 1000) == 1 and encoders.bucket_count(1600, 1000) == 2
    # the same content in another file is the same pair, in the same bucket
    assert encoders.bucket_of(pairs[5]._replace(source="g", line=9), counts, 100) == buckets[5]


def test_a_buckets_texts_are_embedded_in_fixed_sorted_chunks():
    pairs = [_pair(i) for i in (3, 1, 2, 1)]
    chunks = list(encoders.text_chunks(("fra-eng", 0), pairs, 2))
    assert chunks == [((("fra-eng", 0), "src"), ("phrase 1", "phrase 2")), ((("fra-eng", 0), "src"), ("phrase 3",)),
                      ((("fra-eng", 0), "tgt"), ("sentence 1", "sentence 2")),
                      ((("fra-eng", 0), "tgt"), ("sentence 3",))]
    assert chunks == list(encoders.text_chunks(("fra-eng", 0), reversed(pairs), 2))


def test_score_bucket_sets_the_margins_of_the_pairs_in_content_order():
    rng = np.random.default_rng(2)
    pairs = [_pair(i) for i in range(6)]
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    embedded = [("src", tuple(p.src for p in pairs[:4]), x[:4]), ("tgt", tuple(p.tgt for p in pairs), y),
                ("src", tuple(p.src for p in pairs[4:]), x[4:])]
    scored = encoders.score_bucket(reversed(pairs), embedded, 2)
    scores, margins = encoders.aligned_margins(x, y, 2)
    assert [p._replace(score=None, margin=None) for p in scored] == pairs
    assert [p.score for p in scored] == scores.tolist() and [p.margin for p in scored] == margins.tolist()


# --- the spec ----------------------------------------------------------------------------------

def test_scored_records_declare_their_floats_and_still_satisfy_the_trainers_check():
    scored = specs.SCORED_TRANSLATION_PAIRS
    assert scored.names[:4] == specs.TRANSLATION_PAIRS.names
    assert [(f.name, f.dtype) for f in scored.features[4:]] == [("score", specs.FLOAT32), ("margin", specs.FLOAT32)]
    scored.require(specs.text_pair_spec(2))  # what labse/train requires of its input: extra features are fine
    record = tr.encode_pair(_pair(1)._replace(score=0.5, margin=1.25), scored)
    import tensorflow as tf

    parsed = tf.io.parse_single_example(record, scored.tf_parsing_spec())
    assert float(parsed["margin"]) == 1.25 and parsed["tgt_raw"].numpy() == b"sentence 1"


# --- start-up refusals --------------------------------------------------------------------------

def _refusal(argv: list[str], capsys) -> str:
    assert runtime.main("translation_pairs", translation_pairs.build, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_scoring_flags_stop_at_start_up_with_one_line(fake_text_embedder, minilm, tmp_path, capsys):
    base = [f"--input={pathlib.Path(__file__).parent.parent / 'samples' / 'translation'}/*.tsv",
            f"--output_dir={tmp_path / 'out'}"]
    assert "--min_margin needs --score_with" in _refusal([*base, "--min_margin=1.05"], capsys)
    assert f"{minilm} is not a SavedModel" in _refusal([*base, f"--score_with={minilm}"], capsys)
    other = tmp_path / "not_an_embedder"
    from conftest import save_fake_text_embedder

    save_fake_text_embedder(other, signature=("input_word_ids", "logits"))
    err = _refusal([*base, f"--score_with={other}"], capsys)
    assert "is a SavedModel but not a text_embedder export (serving_default(input_word_ids) -> logits)" in err
    good = f"--score_with={fake_text_embedder}"
    assert "--margin_k: 0 must be >= 1" in _refusal([*base, good, "--margin_k=0"], capsys)
    assert "--margin_bucket_size: 4 must be larger" in _refusal([*base, good, "--margin_bucket_size=4"], capsys)
    assert f"--teacher: {minilm} is not a SavedModel" in _refusal([*base, f"--teacher={minilm}"], capsys)
    assert not list((tmp_path / "out").glob("**/*.tfrecord.gz"))


# --- the job on real pairs with all-MiniLM-L6-v2 -----------------------------------------------

# French, Portuguese and Spanish: the languages where the English-only all-MiniLM-L6-v2 separates FLORES
# translations from wrong pairs best (see bench/score_pairs.py for the eleven).
LANGS = ("fra", "por", "spa")
PAIRS = 40
PLANTED = tuple(range(0, PAIRS, 5))  # lines whose English side is another planted line's (rotated)
MIN_MARGIN = 0.55


@pytest.fixture(scope="module")
def minilm_embedder(minilm, tmp_path_factory) -> pathlib.Path:
    from trainer import export_tfhub

    path = tmp_path_factory.mktemp("minilm") / "text_embedder"
    assert export_tfhub.main(["--experiment=labse/train", f"--checkpoint_path={minilm}", "--export_type=text_embedder",
                              "--params_override=task.train_data.seq_length=128", f"--export_path={path}"]) == 0
    return path


@pytest.fixture(scope="module")
def flores_with_faults(shared_data, tmp_path_factory) -> pathlib.Path:
    """FLORES devtest lines 1-40 of LANGS against English, aligned files; the lines in PLANTED get the
    English of the next planted line."""
    flores = shared_data / "translation" / "flores200_devtest"
    eng = (flores / "eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:PAIRS]
    wrong = dict(zip(PLANTED, PLANTED[1:] + PLANTED[:1], strict=True))
    tgt = [eng[wrong.get(i, i)] for i in range(PAIRS)]
    folder = tmp_path_factory.mktemp("flores_faults")
    for lang in LANGS:
        src = (flores / f"{lang}_Latn.devtest").read_text(encoding="utf-8").splitlines()[:PAIRS]
        (folder / f"flores.{lang}-eng.{lang}").write_text("\n".join(src) + "\n", encoding="utf-8")
        (folder / f"flores.{lang}-eng.eng").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return folder


def _run(inputs: pathlib.Path, out: pathlib.Path, export: pathlib.Path, *extra: str) -> dict:
    return runtime.run_pipeline("translation_pairs", [
        f"--input={inputs}/*", f"--output_dir={out}", f"--score_with={export}", f"--min_margin={MIN_MARGIN}",
        "--write_jsonl", "--no_stats_chart", *extra], translation_pairs.build)


@pytest.fixture(scope="module")
def scored_job(minilm_embedder, flores_with_faults, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("scored") / "out"
    return {"out": out, "summary": _run(flores_with_faults, out, minilm_embedder)}


def _written(out: pathlib.Path) -> list[dict]:
    return [json.loads(line) for split in tr.SPLITS for f in sorted((out / split / "jsonl").glob("*.jsonl.gz"))
            for line in gzip.decompress(f.read_bytes()).splitlines()]


def _passing_cleaning(inputs: pathlib.Path) -> set[tuple[str, int]]:
    """(language, line) of the input pairs that the cleaning rules let through (plain Python)."""
    from transforms.text import writing_systems as scripts

    config, table, passing = tr.CleanConfig(), scripts.LanguageScripts(), set()
    eng = (inputs / f"flores.{LANGS[0]}-eng.eng").read_text(encoding="utf-8").splitlines()
    for lang in LANGS:
        src = (inputs / f"flores.{lang}-eng.{lang}").read_text(encoding="utf-8").splitlines()
        for line, (s, t) in enumerate(zip(src, eng, strict=True), 1):
            if tr.filter_reason(tr.nfc_single_spaced(s), tr.nfc_single_spaced(t), lang, "eng", config, table) is None:
                passing.add((lang, line))
    return passing


@pytest.mark.slow
def test_planted_wrong_pairs_are_filtered_by_margin_and_true_pairs_kept(scored_job, flores_with_faults):
    summary, out = scored_job["summary"], scored_job["out"]
    assert summary["balanced"]
    stage = summary["stages"][encoders.SCORE_STAGE]["total"]
    scored = _passing_cleaning(flores_with_faults)
    assert stage["in"] == len(scored) == summary["stages"]["exact_dedup"]["total"]["out"]
    written = _written(out)
    kept = {(r["src_lang"], r["line"]) for r in written}
    assert len(written) == len(kept) == stage["out"] and kept <= scored
    filtered = scored - kept
    assert stage["filtered"] == {encoders.LOW_MARGIN: len(filtered)}
    planted = {k for k in scored if k[1] - 1 in PLANTED}
    assert len(planted) >= 20 and planted <= filtered  # every planted wrong pair that reached scoring
    # all-MiniLM-L6-v2 is an English model: 2 of the 95 true pairs here fall under the threshold too
    assert len(filtered - planted) <= 2
    assert all(r["margin"] >= MIN_MARGIN and -1 <= r["score"] <= 1 for r in written)
    assert np.median([r["margin"] for r in written]) > 1.2


@pytest.mark.slow
def test_scored_records_carry_their_spec_and_the_trainer_reads_them(scored_job, minilm):
    from trainer import plan
    from trainer.experiments import labse

    train = scored_job["out"] / "train"
    found = specs.read_spec_text((train / specs.SCHEMA_FILE).read_text(), (train / specs.SPEC_FILE).read_text())
    found.require(specs.SCORED_TRANSLATION_PAIRS, str(train))
    assert found.name == "scored_translation_pairs" and set(found.names) == set(specs.SCORED_TRANSLATION_PAIRS.names)
    records = f"{train}/pairs-*.tfrecord.gz"
    override = (f"task.train_data.input_path={records},task.validation_data.input_path={records},"
                f"task.train_data.vocab_file={minilm / 'vocab.txt'},"
                f"task.validation_data.vocab_file={minilm / 'vocab.txt'},task.model.encoder.vocab_size=30522,"
                "task.train_data.seq_length=16,task.validation_data.seq_length=16,task.train_data.global_batch_size=4")
    task = labse.Task(plan.load_config("labse/train", ["trainer/configs/labse_tiny.yaml"], override))
    batch = next(iter(task.dataset("train_data")))
    assert batch["src_input_word_ids"].shape == (4, 16) and batch["tgt_input_word_ids"].shape == (4, 16)


def _data_files(out: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix == ".gz" and "dead_letter" not in p.parts}


@pytest.mark.slow
def test_a_second_run_over_other_bundles_writes_the_same_bytes(scored_job, minilm_embedder, flores_with_faults,
                                                              tmp_path):
    """Two worker threads and buckets of about 20 pairs: other bundles, other batches for BatchElements;
    the embeddings come from the same chunks, so the bytes are the same. The smaller buckets change the
    margins (other neighbours), so the comparison is against a first run with the same buckets."""
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(flores_with_faults, first, minilm_embedder, "--margin_bucket_size=20")["balanced"]
    assert _run(flores_with_faults, second, minilm_embedder, "--margin_bucket_size=20", "--direct_num_workers=2",
                "--direct_running_mode=multi_threading")["balanced"]
    a, b = _data_files(first), _data_files(second)
    assert a == b and any(k.startswith("train/pairs-") for k in a)
    assert _data_files(scored_job["out"]) != a  # other buckets, other margins: the comparison can fail


@pytest.mark.slow
def test_teacher_embeddings_are_the_exports_of_the_english_side_and_labse_distill_reads_them(
        minilm_embedder, flores_with_faults, minilm, tmp_path):
    """``--teacher`` beside ``--score_with``: every pair that passes the margin gets the teacher's embedding of
    its English side, the records declare both (``distillation_pairs_spec(scored=True)``), and
    ``labse/distill`` starting from the same model reads them."""
    import tensorflow as tf

    from trainer import experiments, plan

    out = tmp_path / "out"
    summary = _run(flores_with_faults, out, minilm_embedder, f"--teacher={minilm_embedder}")
    assert summary["balanced"]
    teacher = summary["stages"][encoders.TEACHER_STAGE]["total"]
    assert teacher["in"] == teacher["out"] == summary["stages"][encoders.SCORE_STAGE]["total"]["out"] > 0
    assert teacher["filtered"] == {}  # every FLORES pair here has an English side
    written = _written(out)
    model = tf.saved_model.load(str(minilm_embedder))
    direct = model(tf.constant([r["tgt_raw"] for r in written[:16]])).numpy()
    np.testing.assert_allclose(np.array([r[specs.TEACHER_EMBEDDING] for r in written[:16]]), direct, atol=1e-6)
    train = out / "train"
    found = specs.read_spec_text((train / specs.SCHEMA_FILE).read_text(), (train / specs.SPEC_FILE).read_text())
    assert found.name == "distillation_pairs" and found.params["teacher_dim"] == 384
    found.require(specs.distillation_pairs_spec(384, scored=True), str(train))
    cfg, _ = plan.resolve_init_source(plan.load_config("labse/distill", [], (
        f"task.init_checkpoint={minilm},task.train_data.input_path={train}/pairs-*,"
        "task.train_data.global_batch_size=4,runtime.distribution_strategy=one_device")))
    batch = next(iter(experiments.make_task(cfg).dataset("train_data")))
    assert batch[specs.TEACHER_EMBEDDING].shape == (4, 384)
