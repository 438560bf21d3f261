"""The inputs the filtering and mining benches build from held-out test corpora (``--corpus``): FLORES devtest,
whose English file every language shares, and LASER's Tatoeba, whose sets each have their own English side and
differ in length."""

from __future__ import annotations

from bench.mine_pairs import make_input as mining_input
from bench.score_pairs import FAULTS, TRUE, corpus_lines
from bench.score_pairs import make_input as filtering_input


def test_tatoeba_lines_are_each_sets_own_english_and_stop_at_its_end(shared_data):
    tatoeba = shared_data / "translation" / "laser_tatoeba_v1"
    swh = corpus_lines("tatoeba", "swh", 1000)
    eng = corpus_lines("tatoeba", "eng", 1000, "swh")
    assert len(swh) == len(eng) == 390  # the whole set, shorter than asked
    assert eng == tuple((tatoeba / "tatoeba.swh-eng.eng").read_text(encoding="utf-8").splitlines())
    assert corpus_lines("tatoeba", "eng", 5, "fra") != eng[:5]
    flores = corpus_lines("flores", "eng", 3)
    assert flores == tuple((shared_data / "translation" / "flores200_devtest" / "eng_Latn.devtest")
                           .read_text(encoding="utf-8").splitlines()[:3])


def test_planted_faults_on_tatoeba_keep_true_pairs_aligned_and_reach_a_shorter_set(tmp_path):
    labels = filtering_input(["fra", "swh"], 500, tmp_path, corpus="tatoeba")
    assert {kind for kind in labels.values()} == {TRUE, *(name for name, _ in FAULTS)}
    for lang, n in (("fra", 500), ("swh", 390)):
        src = (tmp_path / f"flores.{lang}-eng.{lang}").read_text(encoding="utf-8").splitlines()
        tgt = (tmp_path / f"flores.{lang}-eng.eng").read_text(encoding="utf-8").splitlines()
        eng = corpus_lines("tatoeba", "eng", 500, lang)
        assert len(src) == len(tgt) == n
        for i in range(n):
            kind = labels[(lang, i + 1)]
            assert (tgt[i] == eng[i]) == (kind == TRUE) or eng.count(tgt[i]) > 1  # Tatoeba repeats some lines
            assert kind != "copy" or tgt[i] == src[i]


def test_mining_input_on_tatoeba_shuffles_both_sides_and_knows_the_alignment(tmp_path):
    truth, lines = mining_input("swh", 1000, tmp_path, corpus="tatoeba")
    src = (tmp_path / "mono.swh.txt").read_text(encoding="utf-8").splitlines()
    eng = (tmp_path / "mono.eng.txt").read_text(encoding="utf-8").splitlines()
    assert lines == len(src) + len(eng) == 780
    whole = corpus_lines("tatoeba", "swh", 1000)
    assert src != list(whole) and sorted(src) == sorted(whole)
    assert 0 < len(truth) <= 390 and all(s in src and t in eng for s, t in truth)
