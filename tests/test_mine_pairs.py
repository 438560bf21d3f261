"""Mining bitext out of monolingual text (``transforms.encoders.mining``, ``pipelines.mine_pairs``): blocked
k nearest neighbours against brute force, the merge's determinism, the margin against the whole-matrix
one, the start-up refusals, and the job on shuffled FLORES sides with the real all-MiniLM-L6-v2."""

from __future__ import annotations

import gzip
import json
import pathlib
import random

import numpy as np
import pytest
from test_score_pairs import minilm_embedder  # noqa: F401  the module-scoped real export, shared

import specs
from pipelines import mine_pairs
from transforms import encoders
from transforms import translation as tr
from transforms.core import runtime
from transforms.encoders import mining
from transforms.encoders.scoring import SOURCE, TARGET

# --- the pure steps ----------------------------------------------------------------------------


def _vectors(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"s{seed}-{i:03d}" for i in range(n)], rng.normal(size=(n, 8)).astype(np.float32)


def _brute_force(texts_a: list[str], a: np.ndarray, texts_b: list[str], b: np.ndarray, k: int,
                 a_is_source: bool) -> dict[str, mining.Neighbours]:
    out = {}
    for i, text in enumerate(texts_a):
        rows = np.repeat(a[i:i + 1], len(b), axis=0)
        scores = encoders.cosine(rows, b) if a_is_source else encoders.cosine(b, rows)
        out[text] = mining.top_k(zip(map(float, scores), texts_b, strict=True), k)
    return out


def _blocked(src: tuple[list[str], np.ndarray], tgt: tuple[list[str], np.ndarray], k: int, block_size: int
             ) -> tuple[dict[str, mining.Neighbours], dict[str, mining.Neighbours]]:
    """The job's steps 3 and 4 without Beam: hash blocks, every block pair, the merge."""
    def blocks(side: str, texts: list[str], vectors: np.ndarray) -> list[tuple[list[str], np.ndarray]]:
        n = mining.block_count(len(texts), block_size)
        found: list[list[int]] = [[] for _ in range(n)]
        for i, t in enumerate(texts):
            found[mining.block_of(side, t, n)].append(i)
        return [([texts[i] for i in idx], vectors[idx]) for idx in found if idx]

    merge = mining.MergeNeighbours(k)
    fwd: dict[str, list] = {}
    bwd: dict[str, list] = {}
    for s_texts, x in blocks(SOURCE, *src):
        for t_texts, y in blocks(TARGET, *tgt):
            sources, targets = mining.block_neighbours(s_texts, x, t_texts, y, k)
            for t, n in zip(s_texts, sources, strict=True):
                fwd[t] = merge.add_input(fwd.get(t, []), n)
            for t, n in zip(t_texts, targets, strict=True):
                bwd[t] = merge.add_input(bwd.get(t, []), n)
    return fwd, bwd


@pytest.mark.parametrize("block_size", [7, 16, 1000])
def test_blocked_neighbours_are_the_brute_force_ones_bit_for_bit(block_size):
    src, tgt = _vectors(40, 1), _vectors(33, 2)
    fwd, bwd = _blocked(src, tgt, 3, block_size)
    assert fwd == _brute_force(*src, *tgt, 3, a_is_source=True)
    assert bwd == _brute_force(*tgt, *src, 3, a_is_source=False)
    assert all(len(n) == 3 for n in [*fwd.values(), *bwd.values()])


def test_the_merge_is_the_same_in_any_order_and_ties_go_by_sentence():
    lists = [[(0.9, "b"), (0.5, "x")], [(0.9, "a"), (0.1, "y")], [(0.7, "c")], []]
    merge = mining.MergeNeighbours(3)
    results = set()
    for seed in range(6):
        order = lists[:]
        random.Random(seed).shuffle(order)
        halves = [merge.add_input(merge.add_input(merge.create_accumulator(), order[0]), order[1]),
                  merge.add_input(merge.add_input(merge.create_accumulator(), order[2]), order[3])]
        results.add(tuple(merge.extract_output(merge.merge_accumulators(halves))))
    assert results == {((0.9, "a"), (0.9, "b"), (0.7, "c"))}


def test_the_best_candidate_by_margin_is_the_whole_matrix_ones():
    """Margins from merged neighbour lists equal ``ratio_margins`` over the whole cosine matrix, and the
    best target by margin is its row's argmax."""
    (s_texts, x), (t_texts, y), k = _vectors(30, 3), _vectors(30, 4), 4
    fwd, bwd = _blocked((s_texts, x), (t_texts, y), k, 8)
    means = {(SOURCE, t): mining.knn_mean(n, k) for t, n in fwd.items()}
    means |= {(TARGET, t): mining.knn_mean(n, k) for t, n in bwd.items()}
    full = encoders.ratio_margins(encoders.cosine_matrix(x, y), k)
    for i, text in enumerate(s_texts):
        best = mining.best_by_margin(SOURCE, means[SOURCE, text], [(o, s, means[TARGET, o]) for s, o in fwd[text]])
        j = t_texts.index(best.other)
        assert best.margin == pytest.approx(full[i, j], rel=1e-12)
        in_neighbours = [t_texts.index(o) for _, o in fwd[text]]
        assert j == in_neighbours[int(np.argmax(full[i, in_neighbours]))]


def test_a_sources_fate():
    best = mining.Best("t", 0.8, 1.1)
    assert mining.decide(None, False, 1.06, "intersect") == mining.NO_CANDIDATES
    assert mining.decide(best, True, 1.2, "intersect") == mining.BELOW_THRESHOLD
    assert mining.decide(best, False, 1.06, "intersect") == mining.NOT_MUTUAL
    assert mining.decide(best, False, 1.06, "forward") is None
    assert mining.decide(best, True, 1.06, "intersect") is None


# --- start-up refusals -------------------------------------------------------------------------

def _refusal(argv: list[str], capsys) -> str:
    assert runtime.main("mine_pairs", mine_pairs.build, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_mining_flags_stop_at_start_up_with_one_line(fake_text_embedder, minilm, tmp_path, capsys):
    (tmp_path / "de.txt").write_text("Hallo Welt\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("Hello world\n", encoding="utf-8")
    sides = [f"--source={tmp_path / 'de.txt'}", "--source_language=deu", f"--target={tmp_path / 'en.txt'}"]
    base = [*sides, f"--output_dir={tmp_path / 'out'}"]
    good = f"--score_with={fake_text_embedder}"
    assert "--score_with is required" in _refusal(base, capsys)
    assert f"{minilm} is not a SavedModel" in _refusal([*base, f"--score_with={minilm}"], capsys)
    assert "--margin_k: 0 must be >= 1" in _refusal([*base, good, "--margin_k=0"], capsys)
    assert "--block_size: 4 must be larger than --margin_k (4)" in _refusal([*base, good, "--block_size=4"], capsys)
    assert "--threshold: nan is not a number" in _refusal([*base, good, "--threshold=nan"], capsys)
    assert "--threshold" in _refusal([*base, good, "--threshold=high"], capsys)
    assert "--mode" in _refusal([*base, good, "--mode=max"], capsys)
    assert "--source: no file matches" in _refusal([*base, good, f"--source={tmp_path / 'none*.txt'}"], capsys)
    assert "--source_language is required" in _refusal(
        [f"--source={tmp_path / 'de.txt'}", f"--target={tmp_path / 'en.txt'}", f"--output_dir={tmp_path / 'o'}",
         good], capsys)
    assert "share files" in _refusal([*base, good, f"--target={tmp_path / 'de.txt'}"], capsys)
    assert not list(tmp_path.glob("out/pairs/*.tfrecord.gz"))


def test_help_lists_every_mining_flag(capsys):
    with pytest.raises(SystemExit):
        runtime.main("mine_pairs", mine_pairs.build, ["--help"])
    text = capsys.readouterr().out
    for flag in ("--source", "--source_language", "--target", "--target_language", "--score_with", "--margin_k",
                 "--threshold", "--mode", "--block_size", "--num_shards", "--write_jsonl", "--output_dir"):
        assert flag in text


# --- the job on shuffled FLORES sides with all-MiniLM-L6-v2 ------------------------------------

LINES = 60


@pytest.fixture(scope="module")
def shuffled_flores(shared_data, tmp_path_factory) -> pathlib.Path:
    """FLORES devtest lines 1-60, French and English, each side shuffled (seeded) into its own file, plus
    an empty line and a duplicate on the French side."""
    flores = shared_data / "translation" / "flores200_devtest"
    folder = tmp_path_factory.mktemp("mono")
    for lang, seed in (("fra", 1), ("eng", 2)):
        lines = (flores / f"{lang}_Latn.devtest").read_text(encoding="utf-8").splitlines()[:LINES]
        random.Random(seed).shuffle(lines)
        if lang == "fra":
            lines = [*lines[:10], "  ", *lines[10:], lines[3]]
        (folder / f"mono.{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _mine(inputs: pathlib.Path, out: pathlib.Path, export: pathlib.Path, *extra: str) -> dict:
    return runtime.run_pipeline("mine_pairs", [
        f"--source={inputs / 'mono.fra.txt'}", "--source_language=fra", f"--target={inputs / 'mono.eng.txt'}",
        "--target_language=eng", f"--score_with={export}", f"--output_dir={out}", "--write_jsonl", *extra],
        mine_pairs.build)


def _mined(out: pathlib.Path) -> list[dict]:
    return [json.loads(line) for f in sorted((out / "pairs" / "jsonl").glob("*.jsonl.gz"))
            for line in gzip.decompress(f.read_bytes()).splitlines()]


def _files(out: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "pairs").rglob("*.gz"))}


@pytest.fixture(scope="module")
def mined_job(minilm_embedder, shuffled_flores, tmp_path_factory) -> dict:  # noqa: F811
    out = tmp_path_factory.mktemp("mined") / "out"
    return {"out": out, "summary": _mine(shuffled_flores, out, minilm_embedder, "--block_size=25")}


@pytest.mark.slow
def test_mining_shuffled_flores_finds_the_true_alignment_and_accounts_for_every_line(mined_job, shared_data):
    summary, out = mined_job["summary"], mined_job["out"]
    assert summary["balanced"]
    flores = shared_data / "translation" / "flores200_devtest"
    fra, eng = ([tr.nfc_single_spaced(t) for t in (flores / f"{lang}_Latn.devtest").read_text(
        encoding="utf-8").splitlines()[:LINES]] for lang in ("fra", "eng"))
    truth = dict(zip(fra, eng, strict=True))  # the job writes sentences normalised
    rows = _mined(out)
    correct = sum(truth[r["src_raw"]] == r["tgt_raw"] for r in rows)
    assert correct / len(rows) >= 0.9 and correct >= 0.5 * LINES, (correct, len(rows))
    assert all(r["margin"] >= 1.06 and r["src_lang"] == "fra" and r["tgt_lang"] == "eng" for r in rows)
    stages = summary["stages"]
    sentences = stages[mining.SENTENCES_STAGE]["scopes"]
    assert sentences["source fra"]["in"] == LINES + 2 and sentences["source fra"]["out"] == LINES
    assert sentences["source fra"]["filtered"] == {mining.EMPTY: 1, mining.DUPLICATE: 1}
    assert sentences["target eng"] == {**sentences["target eng"], "in": LINES, "out": LINES, "filtered": {}}
    mined = stages[mining.MINE_STAGE]["total"]
    assert mined["in"] == LINES and mined["out"] == len(rows)
    assert set(mined["filtered"]) <= {mining.BELOW_THRESHOLD, mining.NOT_MUTUAL}
    targets = stages[mining.TARGETS_STAGE]["total"]
    assert targets["in"] == LINES and targets["out"] == len({r["tgt_raw"] for r in rows}) == len(rows)
    found = specs.read_spec_text((out / "pairs" / specs.SCHEMA_FILE).read_text(),
                                 (out / "pairs" / specs.SPEC_FILE).read_text())
    assert found.name == specs.SCORED_TRANSLATION_PAIRS.name


@pytest.mark.slow
def test_mining_again_with_other_blocks_and_threads_writes_the_same_bytes(mined_job, minilm_embedder,  # noqa: F811
                                                                         shuffled_flores, tmp_path):
    """Blocks of 25 sentences (3 x 3 block pairs) in the first run, one block of all of them and two worker
    threads here: exact neighbours are exact, so the mined pairs and their bytes are the same."""
    again = tmp_path / "again"
    assert _mine(shuffled_flores, again, minilm_embedder, "--block_size=1000", "--direct_num_workers=2",
                 "--direct_running_mode=multi_threading")["balanced"]
    first = _files(mined_job["out"])
    assert first == _files(again) and any(k.endswith(".tfrecord.gz") for k in first)


def test_with_an_empty_target_side_every_source_is_accounted_as_without_candidates(fake_text_embedder, tmp_path):
    (tmp_path / "de.txt").write_text("Hallo Welt\nGuten Tag\n\nHallo Welt\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("\n", encoding="utf-8")
    summary = runtime.run_pipeline("mine_pairs", [
        f"--source={tmp_path / 'de.txt'}", "--source_language=deu", f"--target={tmp_path / 'en.txt'}",
        f"--score_with={fake_text_embedder}", f"--output_dir={tmp_path / 'out'}", "--allow_empty"], mine_pairs.build)
    assert summary["balanced"]
    stages = summary["stages"]
    assert stages[mining.SENTENCES_STAGE]["scopes"]["source deu"]["filtered"] == {mining.EMPTY: 1,
                                                                                 mining.DUPLICATE: 1}
    assert stages[mining.MINE_STAGE]["total"] == {**stages[mining.MINE_STAGE]["total"], "in": 2, "out": 0,
                                                  "filtered": {mining.NO_CANDIDATES: 2}}
    assert stages[mining.SENTENCES_STAGE]["scopes"]["target eng"]["filtered"] == {mining.EMPTY: 1}


def test_a_run_that_mines_nothing_is_left_unfinished(fake_text_embedder, tmp_path, capsys):
    """Lines read but no pair mined (here: no target sentence at all) is not a finished run: exit 1, no
    completion marker, the warning naming the mined pairs; ``--allow_empty`` accepts it (the test above)."""
    (tmp_path / "de.txt").write_text("Hallo Welt\nGuten Tag\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("\n", encoding="utf-8")
    out = tmp_path / "out"
    code = runtime.main("mine_pairs", mine_pairs.build, [
        f"--source={tmp_path / 'de.txt'}", "--source_language=deu", f"--target={tmp_path / 'en.txt'}",
        f"--score_with={fake_text_embedder}", f"--output_dir={out}"])
    assert code == 1 and not (out / "_RUN_COMPLETE.json").exists()
    assert "warning: mined pairs yielded no records" in capsys.readouterr().err
