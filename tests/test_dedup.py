"""Exact deduplication, connected components and decontamination: pure functions, then pipelines."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import pathlib
import pickle
import random
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import pytest

from specs.errors import ConfigError
from transforms import dedup
from transforms.core import accounting
from transforms.core.runners import local_runner
from transforms.text import textnorm

# --- helpers shared with test_dedup_near.py ------------------------------------------------------

def run_stage(tmp: pathlib.Path, records: list[Any], transform: beam.PTransform, *, options: Any = None,
              extra: Sequence[str] = ()) -> dict[str, Any]:
    """Runs ``records | transform`` and returns its outputs read back, each sorted by pickle:
    ``out``, ``dead`` (DeadLetters), the fields of the result named in ``extra``, and ``summary``."""
    tmp.mkdir(parents=True, exist_ok=True)
    summary_path = str(tmp / "summary.json")

    def save(pcoll: beam.PCollection, name: str) -> None:
        _ = (pcoll | f"Pickle{name}" >> beam.Map(lambda x: base64.b64encode(pickle.dumps(x, protocol=4)).decode())
             | f"Write{name}" >> beam.io.WriteToText(str(tmp / name)))

    with beam.Pipeline(runner=local_runner(), options=options) as p:
        res = p | beam.Create(records, reshuffle=False) | transform
        save(res.out, "out")
        save(res.dead_letter, "dead")
        _ = res.tally | accounting.WriteRunSummary(summary_path)
        for name in extra:
            save(getattr(res, name), name)
    got: dict[str, Any] = {"summary": accounting.read_summary(summary_path)}
    for name in ["out", "dead", *extra]:
        items = [pickle.loads(base64.b64decode(line)) for f in sorted(tmp.glob(f"{name}-*"))
                 for line in f.read_text().splitlines()]
        got[name] = sorted(items, key=lambda x: pickle.dumps(x, protocol=4))
    return got


def totals(summary: dict[str, Any], stage: str) -> dict[str, Any]:
    return summary["stages"][stage]["total"]


# --- normalisation ------------------------------------------------------------------------------------

def test_exact_key_folds_punctuation_space_and_composition_but_case_only_on_request():
    assert textnorm.exact_key_text("Hello,  world!") == textnorm.exact_key_text(" Hello world ") == "Hello world"
    assert textnorm.exact_key_text("caf\u0065\u0301") == textnorm.exact_key_text("caf\u00e9")  # NFC
    assert textnorm.exact_key_text("zero\u200bwidth") == "zerowidth"  # format characters deleted
    assert textnorm.exact_key_text("a\u00a0\u3000b\u2014c") == "a b c"  # unicode spaces and dashes
    assert textnorm.exact_key_text("Hello") != textnorm.exact_key_text("hello")
    assert textnorm.exact_key_text("Straße", case_fold=True) == textnorm.exact_key_text("STRASSE", case_fold=True)
    assert textnorm.exact_key_text("3.5") != textnorm.exact_key_text("35")
    assert textnorm.exact_key_text("1+1=2") == "1+1=2"  # symbols are not punctuation


def test_ascii_fast_path_agrees_with_the_unicode_table():
    import string

    text = string.printable + "word" + string.punctuation
    assert textnorm.fold(text) == " ".join(text.translate(textnorm._fold_table()).split())


def test_near_key_text_units_for_spaced_and_spaceless_scripts():
    assert textnorm.units("ＡＢＣ, abc!") == ["abc", "abc"]  # NFKC, case fold
    assert textnorm.units("吾輩は猫である。名前はまだ無い") == list("吾輩は猫である名前はまだ無い")
    assert textnorm.units("ภาษาไทย test") == [*"ภาษาไทย", "test"]
    assert textnorm.units("  ...  ") == []


def test_split_sentences():
    text = "First one. Second one? Third!\nFourth line 吾輩は猫である。名前はまだ無い"
    assert textnorm.split_sentences(text) == ["First one.", "Second one?", "Third!", "Fourth line 吾輩は猫である。",
                                              "名前はまだ無い"]


def test_record_texts_accepts_str_bytes_sequences_and_rejects_bad_data():
    assert dedup.record_texts(lambda r: r, "x", "one") == ["x"]
    assert dedup.record_texts(lambda r: r, b"caf\xc3\xa9 \xff", "one") == ["café \ufffd"]
    assert dedup.record_texts(lambda r: (r["a"], r["b"]), {"a": "1", "b": b"2"}, "pair") == ["1", "2"]
    with pytest.raises(ValueError, match="exactly one"):
        dedup.record_texts(lambda r: r, ["a", "b"], "one")
    with pytest.raises(TypeError):
        dedup.record_texts(lambda r: [r], 5, "pair")
    with pytest.raises(KeyError):
        dedup.record_texts(lambda r: r["missing"], {}, "pair")


def test_exact_nodes_by_mode():
    a, b = dedup.exact_nodes(["Hello!", "World"], "pair"), dedup.exact_nodes(["hello", "World"], "pair")
    assert len(a) == 1 and a != b and a == dedup.exact_nodes(["Hello", "World."], "pair")
    assert dedup.exact_nodes(["hello", "world"], "pair", case_fold=True) == dedup.exact_nodes(
        ["HELLO!", "World"], "pair", case_fold=True) != a
    assert dedup.exact_nodes(["a", "b"], "pair") != dedup.exact_nodes(["b", "a"], "pair")
    either = dedup.exact_nodes(["x", "y", "x!", ""], "either")
    assert len(either) == 2 and either[0] == dedup.exact_nodes(["y", "x"], "either")[1]
    assert dedup.exact_nodes(["", "..."], "either") == dedup.exact_nodes([""], "either")


def test_better_prefers_rank_then_smaller_fingerprint():
    m = dedup.Member
    assert dedup.better(m(5, b"\xff", "s", None), m(4, b"\x00", "s", None))
    assert dedup.better(m(5, b"\x00", "s", None), m(5, b"\x01", "s", None))
    assert not dedup.better(m(5, b"\x01", "s", None), m(5, b"\x00", "s", None))
    assert dedup.fingerprint({"a": 1, "b": [2.5, None]}) == dedup.fingerprint({"b": [2.5, None], "a": 1})
    assert dedup.fingerprint({"a": 1}) != dedup.fingerprint({"a": 2})
    assert dedup.fingerprint(("1",)) != dedup.fingerprint((1,)) != dedup.fingerprint((True,))  # typed
    assert dedup.fingerprint(("ab", "c")) != dedup.fingerprint(("a", "bc"))  # length-prefixed
    with pytest.raises(TypeError, match="no content encoding"):
        dedup.fingerprint(object())
    # Ranks that do not compare (None from a rank_fn) still give one answer, whichever is first.
    a, b = m(None, b"\x00", "s", None), m(3, b"\x01", "s", None)
    assert dedup.better(a, b) != dedup.better(b, a)


# --- connected components, by hand and in Beam ---------------------------------------------------------

def _components_by_hand(edges: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    parent: dict[bytes, bytes] = {}

    def find(x: bytes) -> bytes:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for u, v in edges:
        a, b = find(u), find(v)
        parent[max(a, b)] = min(a, b)
    return {n: find(n) for n in parent}


def test_star_steps_preserve_connectivity_and_converge_on_a_path():
    nodes = [b"%03d" % i for i in random.Random(3).sample(range(300), 64)]
    edges = set(itertools.pairwise(nodes))  # a path in random label order: the hard case
    for _ in range(12):
        adj: dict[bytes, set[bytes]] = {}
        for u, v in edges:
            adj.setdefault(u, set()).add(v)
            adj.setdefault(v, set()).add(u)
        large = {e for u, ns in adj.items() for e in dedup.large_star((u, list(ns)))}
        smaller: dict[bytes, list[bytes]] = {}
        for lo, hi in large:
            smaller.setdefault(hi, []).append(lo)
        edges = {e for item in smaller.items() for e in dedup.small_star(item)}
    assert edges == {(min(nodes), n) for n in nodes if n != min(nodes)}


def _run_components(tmp: pathlib.Path, edges: list[tuple[bytes, bytes]], rounds: int) -> tuple[dict, int]:
    with beam.Pipeline(runner=local_runner()) as p:
        res = p | beam.Create(edges) | dedup.ConnectedComponents(rounds)
        _ = res.labels | "L" >> beam.Map(lambda kv: f"{kv[0].hex()} {kv[1].hex()}") | "WL" >> beam.io.WriteToText(
            str(tmp / "labels"))
        _ = res.unconverged | "U" >> beam.Map(str) | "WU" >> beam.io.WriteToText(str(tmp / "unconverged"))
    labels = dict(tuple(bytes.fromhex(x) for x in line.split()) for f in tmp.glob("labels-*")
                  for line in f.read_text().splitlines())
    (unconverged,) = [int(line) for f in tmp.glob("unconverged-*") for line in f.read_text().splitlines()]
    return labels, unconverged


@pytest.mark.slow
def test_connected_components_in_beam_match_union_find_and_report_non_convergence(tmp_path):
    rng = random.Random(7)
    nodes = [rng.randbytes(4) for _ in range(120)]
    edges = list(itertools.pairwise(nodes[:40]))  # a 40-node path
    edges += [(rng.choice(nodes[40:]), rng.choice(nodes[40:])) for _ in range(60)]  # random sparse part
    edges += [(nodes[5], nodes[5])]  # a self loop changes nothing
    labels, unconverged = _run_components(tmp_path / "a", edges, rounds=8)
    assert unconverged == 0
    assert labels == {n: r for n, r in _components_by_hand(edges).items()}
    _, unconverged = _run_components(tmp_path / "b", edges, rounds=1)
    assert unconverged > 0  # one round cannot resolve a 40-node path: reported, not silent


# --- ExactDedup in Beam ----------------------------------------------------------------------------------

PAIRS = [
    {"id": 0, "f": "a.jsonl", "src": "Hello world", "tgt": "Bonjour le monde"},
    {"id": 1, "f": "a.jsonl", "src": "Hello world", "tgt": "Bonjour, le monde!"},  # same pair, other punctuation
    {"id": 2, "f": "b.jsonl", "src": "Hello world", "tgt": "Bonjour le monde, mes amis"},  # same src, longer tgt
    {"id": 3, "f": "b.jsonl", "src": "hello world", "tgt": "bonjour le monde"},  # case differs
    {"id": 4, "f": "b.jsonl", "src": "Good night", "tgt": "Bonne nuit"},
    {"id": 5, "f": "b.jsonl", "src": "Sleep well", "tgt": "Bonne nuit"},  # shares tgt with 4
    {"id": 6, "f": "a.jsonl", "src": "Sleep well", "tgt": "Dors bien, mon petit"},  # shares src with 5: 4-5-6
    {"id": 7, "f": "a.jsonl", "src": None, "tgt": "bad record"},  # not a text: dead letter
]


def _pair(r: dict[str, Any]) -> tuple[Any, Any]:
    return r["src"], r["tgt"]


def _file(r: dict[str, Any]) -> str:
    return r["f"]


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "case_fold", "kept"), [
    ("pair", False, {1, 2, 3, 4, 5, 6}),  # 0 and 1 are one group; 1 is longer (its comma and !)
    ("pair", True, {1, 2, 4, 5, 6}),
    ("either", False, {2, 3, 6}),  # {0,1,2} share "Hello world"; {4,5,6} chain through shared texts
    ("either", True, {2, 6}),
])
def test_exact_dedup_keeps_one_per_group_whatever_the_input_order(tmp_path, mode, case_fold, kept):
    orders = [PAIRS[::-1]] if case_fold else [PAIRS, random.Random(1).sample(PAIRS, len(PAIRS))]
    if mode == "pair" and not case_fold:
        orders = orders[1:]
    runs = [run_stage(tmp_path / str(i), order, dedup.ExactDedup(
        _pair, mode=mode, case_fold=case_fold, scope_fn=_file, with_clusters=True, cc_rounds=3),
        extra=("clusters", "stats")) for i, order in enumerate(orders)]
    assert all(run["out"] == runs[0]["out"] and run["clusters"] == runs[0]["clusters"] for run in runs)
    got = runs[0]
    assert {r["id"] for r in got["out"]} == kept
    assert [(d.reason, d.stage) for d in got["dead"]] == [("bad_texts", "exact_dedup")]
    s = got["summary"]
    assert s["balanced"]
    t = totals(s, "exact_dedup")
    assert (t["in"], t["out"], t["filtered"], t["dead_lettered"]) == (
        8, len(kept), {"exact_duplicate": 7 - len(kept)}, {"bad_texts": 1})
    assert set(s["stages"]["exact_dedup"]["scopes"]) == {"a.jsonl", "b.jsonl"}
    clusters = got["clusters"]
    assert len(clusters) == 7 and {c.record["id"] for c in clusters if not c.is_duplicate} == kept
    by_cluster: dict[str, list[int]] = {}
    for c in clusters:
        by_cluster.setdefault(c.cluster_id, []).append(c.record["id"])
        assert c.cluster_size == len([x for x in clusters if x.cluster_id == c.cluster_id])
    (stats,) = got["stats"]
    assert stats["clusters"] == len(kept) and stats["duplicates"] == 7 - len(kept)


@pytest.mark.slow
def test_exact_dedup_rank_fn_decides_and_one_mode(tmp_path):
    records = [("the same text", 0.2, "x"), ("The same text!", 0.9, "y"), ("the same text", 0.5, "z"),
               ("other", 0, "w")]
    got = run_stage(tmp_path / "rank", records, dedup.ExactDedup(
        lambda r: r[0], mode="one", case_fold=True, rank_fn=lambda r: r[1]))
    assert sorted(r[2] for r in got["out"]) == ["w", "y"]
    got = run_stage(tmp_path / "default", records, dedup.ExactDedup(lambda r: r[0], mode="one"))
    # Case is kept, so y is alone; x and z tie on length and the smaller fingerprint wins.
    tie = min(records[0], records[2], key=dedup.fingerprint)
    assert sorted(r[2] for r in got["out"]) == sorted(["w", "y", tie[2]])


@pytest.mark.slow
def test_group_fn_dedups_each_group_apart_in_one_transform(tmp_path):
    text = "Shifting gears on a long climb wears the chain faster than on the flat."
    records = [("g1", text, 1), ("g1", text, 2), ("g2", text, 3), ("g2", "Something else entirely, about brakes.", 4)]
    for name, make in (("exact", dedup.ExactDedup), ("near", dedup.NearDedup)):
        grouped = run_stage(tmp_path / name, records, make(
            lambda r: r[1], mode="one", rank_fn=lambda r: r[2], group_fn=lambda r: r[0]))
        assert sorted(r[2] for r in grouped["out"]) == [2, 3, 4]  # the best of g1; g2's copy is not g1's
        together = run_stage(tmp_path / f"{name}_all", records, make(lambda r: r[1], mode="one",
                                                                     rank_fn=lambda r: r[2]))
        assert sorted(r[2] for r in together["out"]) == [3, 4]


@pytest.mark.slow
def test_exact_dedup_on_real_tatoeba_english_sides(tmp_path, shared_data):
    """The LASER Tatoeba English sides repeat sentences across language pairs (PROVENANCE.md)."""
    files = sorted((shared_data / "translation" / "laser_tatoeba_v1").glob("tatoeba.*-eng.eng"))[:12]
    records = [(f.name, i, line) for f in files for i, line in enumerate(f.read_text("utf-8").splitlines())]
    got = run_stage(tmp_path, records, dedup.ExactDedup(lambda r: r[2], mode="one", scope_fn=lambda r: r[0]))
    raw_distinct = len({r[2] for r in records})
    expected = len({textnorm.exact_key_text(r[2]) for r in records})
    assert expected < raw_distinct < len(records)  # the sample has both kinds of duplicate
    assert len(got["out"]) == expected
    assert len({textnorm.exact_key_text(r[2]) for r in got["out"]}) == expected
    assert totals(got["summary"], "exact_dedup")["filtered"] == {"exact_duplicate": len(records) - expected}
    assert got["summary"]["balanced"] and len(got["summary"]["stages"]["exact_dedup"]["scopes"]) == len(files)


def test_bad_configuration_fails_at_construction(tmp_path):
    with pytest.raises(ConfigError, match="mode"):
        dedup.ExactDedup(_pair, mode="both")
    with pytest.raises(ConfigError, match="--exclude: no file matches"):
        dedup.Decontaminate(_pair, [str(tmp_path / "nothing*.txt")])
    with pytest.raises(ConfigError, match="bands x rows"):
        dedup.NearDedup(_pair, bands=20, rows=10)


# --- decontamination ----------------------------------------------------------------------------------------

def test_overlap_fingerprints_match_sentences_ngrams_and_short_whole_texts():
    def hits(train: str, evaluation: str) -> bool:
        e = set(dedup.overlap_fingerprints(evaluation, 13, 20).tolist())
        return bool(e & set(dedup.overlap_fingerprints(train, 13, 20).tolist()))

    sentence = "The committee approved the proposal after a long debate."
    assert hits(f"Intro text here. {sentence.upper()} More text follows.", f"Other. {sentence}")
    long_eval = " ".join(f"w{i}" for i in range(30))
    assert hits("prefix " + " ".join(f"w{i}" for i in range(10, 23)) + " suffix", long_eval)  # one 13-gram
    assert not hits("prefix " + " ".join(f"w{i}" for i in range(10, 22)) + " suffix", long_eval)  # 12 words
    assert hits("Tom needs water!", "tom needs water")  # a short eval text matched whole
    assert not hits("Yes. Tom needs water. No.", "Tom needs water.")  # but not as a short sentence inside


def test_decontaminate_drops_records_overlapping_eval_files(tmp_path, shared_data):
    flores = shared_data / "translation" / "flores200_devtest"
    eng = (flores / "eng_Latn.devtest").read_text("utf-8").splitlines()
    zho = (flores / "zho_Hans.devtest").read_text("utf-8").splitlines()
    (tmp_path / "extra.jsonl").write_text(json.dumps({"q": "What is the capital of Freedonia?", "a": ["Fredville"]})
                                          + "\nnot json at all\n", encoding="utf-8")
    with gzip.open(tmp_path / "more.txt.gz", "wt", encoding="utf-8") as f:
        f.write("A gzipped evaluation sentence that is long enough.\n")
    wiki = [line.strip() for line in (shared_data / "text" / "wikitext-2" / "wiki.test.tokens.txt").read_text(
        "utf-8").splitlines() if len(line.split()) > 30][:40]
    records = [("clean", t) for t in wiki]
    records += [
        ("sentence", f"Some preamble we wrote. {eng[3]} And an ending."),
        ("ngram", "lead in " + " ".join(eng[10].split()[2:16]) + " and out"),
        ("zh", "前言。" + zho[7][:20] + "后记"),
        ("json", "what is the capital of freedonia"),
        ("gz", "Intro. A gzipped evaluation sentence that is long enough! Outro."),
        ("short", "Fredville"),  # a JSON answer: the whole text equals an eval text
        ("bad", None),
    ]
    got = run_stage(tmp_path / "run", records, dedup.Decontaminate(
        lambda r: r[1], [str(flores / "eng_Latn.devtest"), str(flores / "zho_Hans.devtest"),
                         str(tmp_path / "extra.jsonl"), str(tmp_path / "more.*")], scope_fn=lambda r: r[0]))
    assert [r[0] for r in got["out"]] == ["clean"] * len(wiki)
    t = totals(got["summary"], "decontaminate")
    assert (t["in"], t["out"], t["filtered"], t["dead_lettered"]) == (
        len(records), len(wiki), {"eval_overlap": 6}, {"bad_texts": 1})
    assert got["summary"]["balanced"]
