"""Translation pairs: the per-element functions (no Beam) and the script table."""

from __future__ import annotations

import json

import pytest

from specs.errors import ConfigError
from transforms import translation as tr
from transforms.text import writing_systems as scripts

TABLE = scripts.LanguageScripts()
CFG = tr.CleanConfig()


def test_normalize_text_composes_strips_controls_and_keeps_joiners():
    decomposed = "Cafe\u0301\u00a0au\tlait\r\n"
    assert tr.nfc_single_spaced(decomposed) == "Café au lait"
    assert tr.nfc_single_spaced("a\x00b\u200bc\ufeff d\u00ad e\x1b") == "abc d e"
    # ZWNJ is orthographic in Persian: kept. Bidi marks carry no text: deleted.
    assert tr.nfc_single_spaced("می\u200cخواهم\u200f") == "می\u200cخواهم"
    assert tr.nfc_single_spaced("  ideographic\u3000space  ") == "ideographic space"
    assert tr.nfc_single_spaced("plain ascii stays") == "plain ascii stays"


def test_count_tokens_across_scripts():
    assert tr.count_tokens("He writes a letter.") == 4
    assert tr.count_tokens("彼は手紙を書く。") == 5  # 7 CJK characters, two per token, plus "。"
    assert tr.count_tokens("ฉันชอบแมว") == 3  # 9 Thai characters, three per token
    assert tr.count_tokens("Tom이 노래를 불렀다.") == 3


FILTER_CASES = [
    ("", "Hello.", "deu", "eng", tr.EMPTY),
    ("x" * 1001, "y", "deu", "eng", tr.TOO_LONG_CHARS),
    ("a " * 201, "b", "deu", "eng", tr.TOO_LONG_TOKENS),
    ("12:30 - 14:45 !!", "Half past twelve.", "deu", "eng", tr.NON_TEXT),
    ("see https://example.com/a/b/c/d/e", "siehe https://example.com/a/b/c/d/e", "eng", "deu", tr.NON_TEXT),
    ("I live in Tashkent.", "i live in tashkent.", "uzb", "eng", tr.IDENTICAL),
    ("Ja.", "Yes, I think that this is exactly what we wanted all along.", "deu", "eng", tr.LENGTH_RATIO),
    ("He writes a letter.", "He writes a letter, I think.", "jpn", "eng", tr.SCRIPT),
    ("Он пишет письмо.", "He writes a letter.", "ell", "eng", tr.SCRIPT),
    ("彼は手紙を書く。", "He writes a letter.", "jpn", "eng", None),
    ("我叫Jack。", "My name is Jack.", "cmn", "eng", None),
    ("Ich wohne in Berlin.", "I live in Berlin.", "deu", "eng", None),
]


@pytest.mark.parametrize(("src", "tgt", "sl", "tl", "reason"), FILTER_CASES)
def test_filter_reasons(src, tgt, sl, tl, reason):
    assert tr.filter_reason(src, tgt, sl, tl, CFG, TABLE) == reason


def test_every_filter_reason_has_a_case():
    assert {case[-1] for case in FILTER_CASES} == {*tr.FILTER_REASONS, None}


def test_each_rule_can_be_switched_off():
    off = tr.CleanConfig(max_chars=0, max_tokens=0, min_letter_fraction=0, drop_identical=False,
                         max_length_ratio=0, min_script_fraction=0)
    for src, tgt, sl in [("x" * 5000, "y", "deu"), ("12:30", "12:30", "deu"), ("Ja.", "a b c d e f g h i j", "deu"),
                         ("Hello there.", "Hello there", "jpn")]:
        assert tr.filter_reason(src, tgt, sl, "eng", off, TABLE) is None
    with pytest.raises(ConfigError, match="--min_script_fraction"):
        tr.CleanConfig(min_script_fraction=2).validate()


def test_script_counts_and_expected_scripts():
    assert scripts.script_counts("Tom이 노래") == {"Latn": 3, "Hang": 3}
    assert scripts.script_counts("スミスは残念") == {"Kana": 3, "Hira": 1, "Hani": 2}
    assert scripts.script_counts("नमस्ते 123") == {"Deva": 6}  # vowel signs count with their letters
    assert scripts.script_counts("12, 34!") == {}
    assert TABLE.expected("jpn") == {"Hani", "Hira", "Kana"}
    assert TABLE.expected("ja") == TABLE.expected("jpn")
    assert TABLE.expected("eng_Latn") == {"Latn"}
    assert TABLE.expected("zho_Hant") == {"Hani"}
    assert TABLE.expected("sr-Latn") == {"Latn"}
    assert TABLE.expected("pt-BR") == {"Latn"}
    assert TABLE.expected("xyz") is None
    assert scripts.fits_language({}, frozenset({"Latn"}), 0.9)
    assert scripts.fits_language({"Latn": 99}, None, 0.9)


def test_script_table_is_extendable_from_json(tmp_path):
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"xyz": ["Cyrl"], "eng": ["Latn", "Grek"]}))
    table = scripts.LanguageScripts.from_json_file(str(path))
    assert table.expected("xyz") == {"Cyrl"}
    assert table.expected("eng") == {"Latn", "Grek"}
    assert tr.filter_reason("Привет, мир.", "Hello, world.", "xyz", "eng", CFG, table) is None
    path.write_text(json.dumps({"xyz": ["Klingon"]}))
    with pytest.raises(ConfigError, match=r"--script_table: .*'xyz' must map"):
        scripts.LanguageScripts.from_json_file(str(path))
    with pytest.raises(ConfigError, match="--script_table: cannot read"):
        scripts.LanguageScripts.from_json_file(str(tmp_path / "missing.json"))


def test_plan_inputs_pairs_aligned_files_and_takes_languages_from_names():
    plan = tr.plan_inputs(["d/tatoeba.deu-eng.eng", "d/tatoeba.deu-eng.deu", "d/corpus.de-en.de.gz",
                           "d/corpus.de-en.en.gz", "d/opus.fr-en.tsv.gz", "d/misc.tsv", "d/x.jsonl"],
                          src_lang="aa", tgt_lang="bb")
    assert [(a.name, a.src_path, a.tgt_path, a.src_lang, a.tgt_lang) for a in plan.aligned] == [
        ("d/corpus.de-en", "d/corpus.de-en.de.gz", "d/corpus.de-en.en.gz", "de", "en"),
        ("d/tatoeba.deu-eng", "d/tatoeba.deu-eng.deu", "d/tatoeba.deu-eng.eng", "deu", "eng")]
    assert plan.tsv == {"d/opus.fr-en.tsv.gz": ("fr", "en"), "d/misc.tsv": ("aa", "bb")}
    assert plan.jsonl == {"d/x.jsonl": ("aa", "bb")}


def test_plan_inputs_fails_at_start_up_with_one_line():
    with pytest.raises(ConfigError, match=r"has no partner d/c\.de-en\.en"):
        tr.plan_inputs(["d/c.de-en.de"])
    with pytest.raises(ConfigError, match=r"cannot tell the format of 'd/readme\.txt'"):
        tr.plan_inputs(["d/readme.txt"])
    with pytest.raises(ConfigError, match="--input_format"):
        tr.plan_inputs(["d/a.tsv"], input_format="csv")


def test_parse_tsv_and_json_lines():
    assert tr.parse_tsv_line(b"Hallo\tHello\r", ("deu", "eng")) == ("Hallo", "Hello", "deu", "eng")
    assert tr.parse_tsv_line(b"Hallo\tHello\tde\ten", ("", "")) == ("Hallo", "Hello", "de", "en")
    for raw, reason in [(b"a\tb\tc", "bad_columns"), (b"a\tb", "missing_language"), (b"\xff\tb", "invalid_utf8")]:
        with pytest.raises(tr.BadRecordError) as e:
            tr.parse_tsv_line(raw, ("", ""))
        assert e.value.reason == reason
    fields = tr.JsonFields.parse("src=translation.de,tgt=translation.en")
    line = json.dumps({"translation": {"de": "Hallo", "en": "Hello"}}).encode()
    assert tr.parse_json_line(line, fields, ("de", "en")) == ("Hallo", "Hello", "de", "en")
    for raw, reason in [(b"{not json", "bad_json"), (b"[1]", "bad_json"),
                        (b'{"translation": {"de": "x"}}', "missing_field"),
                        (b'{"translation": {"de": "x", "en": 3}}', "missing_field")]:
        with pytest.raises(tr.BadRecordError) as e:
            tr.parse_json_line(raw, fields, ("de", "en"))
        assert e.value.reason == reason
    with pytest.raises(ConfigError, match="--jsonl_fields"):
        tr.JsonFields.parse("source=x")


def _pair(src="Hallo Welt.", tgt="Hello world.", sl="deu", tl="eng", source="a", line=1):
    return tr.TranslationPair(src, tgt, sl, tl, source, line, -1)


def test_pair_key_ignores_direction_and_provenance():
    assert tr.pair_key(_pair()) == tr.pair_key(_pair("Hello world.", "Hallo Welt.", "eng", "deu", "b", 9))
    assert tr.pair_key(_pair()) != tr.pair_key(_pair(tgt="Hello, world."))
    assert tr.unordered_lang_pair("eng", "deu") == "deu-eng"


def test_split_is_stable_and_follows_fractions():
    fractions = tr.parse_split_fractions("train=0.8,validation=0.1,test=0.1")
    keys = [tr.pair_key(_pair(src=f"Satz {i}.")) for i in range(20000)]
    got = [tr.split_of(k, fractions, 0) for k in keys]
    assert got == [tr.split_of(k, fractions, 0) for k in keys]
    share = got.count("train") / len(got)
    assert 0.78 < share < 0.82
    assert got != [tr.split_of(k, fractions, 1) for k in keys]
    for bad in ("train=0.5", "train=0.5,dev=0.5", "train=x,test=1", ""):
        with pytest.raises(ConfigError, match="--split"):
            tr.parse_split_fractions(bad)


def test_sampling_rates_smooth_towards_small_pairs():
    counts = {"deu-eng": 10000, "tzl-eng": 100}
    assert tr.sampling_rates(counts, 1.0) == {"deu-eng": (10000, 1.0), "tzl-eng": (100, 1.0)}
    flat = tr.sampling_rates(counts, 0.0, max_upsample=100)
    assert flat["deu-eng"][0] == flat["tzl-eng"][0] == 5050
    smooth = tr.sampling_rates(counts, 0.5)  # no upsampling: the small pair keeps all it has
    assert smooth["tzl-eng"] == (100, 1.0)
    assert smooth["deu-eng"][0] == round(10100 * 100 / 110)
    assert tr.sampling_rates(counts, 1.0, cap=500)["deu-eng"] == (500, 0.05)


def test_batch_starts_and_blocks_index_lines_across_batches():
    from transforms.core.line_numbers import batch_starts
    from transforms.core.lines import LineBatch
    from transforms.translation.reading import _lines_to_blocks

    numbered = list(batch_starts(("f", [(100, 3), (0, 5), (250, 2)])))
    assert {o.value[0]: o.value[1] for o in numbered[:-1]} == {("f", 0): 0, ("f", 100): 5, ("f", 250): 8}
    assert numbered[-1] == ("f", 10)
    lines = [(i * 10, b"l%d" % i) for i in range(tr.ALIGN_BLOCK + 3)]
    pieces = list(_lines_to_blocks((LineBatch("f", lines), tr.ALIGN_BLOCK - 2), {"f": ("pair", 1)}))
    assert [(k, side, first, len(ls)) for k, (side, first, ls) in pieces] == [
        (("pair", 0), 1, tr.ALIGN_BLOCK - 2, 2),
        (("pair", 1), 1, tr.ALIGN_BLOCK, tr.ALIGN_BLOCK),
        (("pair", 2), 1, 2 * tr.ALIGN_BLOCK, 1)]


def test_encoded_pair_parses_back_with_tensorflow():
    import tensorflow as tf

    from specs import TRANSLATION_PAIRS

    p = _pair("Grüße, 世界", "Greetings, world")
    parsed = tf.io.parse_single_example(tr.encode_pair(p), TRANSLATION_PAIRS.tf_parsing_spec())
    assert parsed["src_raw"].numpy().decode() == p.src
    assert parsed["tgt_lang"].numpy() == b"eng"


@pytest.mark.parametrize(("args", "message"), [
    ([], "--input is required"),
    (["--input=/nonexistent/*.tsv"], "--input: no file matches"),
    (["--input={tatoeba}.deu"], "has no partner"),
    (["--input={tatoeba}.*", "--split=train=0.9"], "--split"),
    (["--input={tatoeba}.*", "--materialize_tokens"], "--materialize_tokens needs --vocab_file"),
    (["--input={tatoeba}.*", "--materialize_tokens", "--vocab_file=/nonexistent/vocab.txt"], "--vocab_file: no file"),
    (["--input={tatoeba}.*", "--exclude=/nonexistent/eval.txt"], "--exclude: no file matches"),
    (["--input={tatoeba}.*", "--sampling_alpha=2"], "--sampling_alpha"),
    (["--input={tatoeba}.*", "--max_length_ratio=0.5"], "--max_length_ratio"),
])
def test_bad_configuration_fails_at_start_up_with_one_line(args, message, shared_data, tmp_path, capsys):
    from pipelines import translation_pairs
    from transforms.core import runtime

    tatoeba = shared_data / "translation" / "laser_tatoeba_v1" / "tatoeba.deu-eng"
    argv = [a.format(tatoeba=tatoeba) for a in args] + [f"--output_dir={tmp_path}"]
    assert runtime.main("translation_pairs", translation_pairs.build, argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_aligned_files_split_into_many_ranges_are_joined_by_line_index(shared_data, tmp_path):
    """3 MB files read as three 1 MiB byte ranges (and a gzip pair read whole) still pair line i with
    line i; the extra line of the longer file is dead-lettered with its number."""
    import gzip

    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from transforms.core.runners import local_runner

    tatoeba = shared_data / "translation" / "laser_tatoeba_v1"
    deu = (tatoeba / "tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()
    eng = (tatoeba / "tatoeba.deu-eng.eng").read_text(encoding="utf-8").splitlines()
    n, small = 50_000, 50
    src = [f"{i} {deu[i % len(deu)]}\n" for i in range(n + 1)]
    tgt = [f"{i} {eng[i % len(eng)]}\n" for i in range(n)]
    (tmp_path / "big.de-en.de").write_text("".join(src), encoding="utf-8")
    (tmp_path / "big.de-en.en").write_text("".join(tgt), encoding="utf-8")
    (tmp_path / "small.de-en.de.gz").write_bytes(gzip.compress("".join(src[:small]).encode()))
    (tmp_path / "small.de-en.en.gz").write_bytes(gzip.compress("".join(tgt[:small]).encode()))
    plan = tr.plan_inputs(sorted(str(p) for p in tmp_path.iterdir()))
    assert len(plan.aligned) == 2 and (tmp_path / "big.de-en.de").stat().st_size > 3_000_000

    def misaligned(p: tr.TranslationPair) -> bool:
        i = p.src.split(" ", 1)[0]
        return p.tgt.split(" ", 1)[0] != i or p.line != int(i) + 1

    with beam.Pipeline(runner=local_runner()) as pipeline:
        res = pipeline | tr.ReadAlignedFiles(plan.aligned, desired_bundle_size=1 << 20)
        assert_that(res.out | "Count" >> beam.combiners.Count.Globally(), equal_to([n + small]), label="Count")
        assert_that(res.out | "Misaligned" >> beam.Filter(misaligned), equal_to([]), label="Aligned")
        assert_that(res.dead_letter | beam.Map(lambda d: (d.reason, d.line, d.record.split(" ", 1)[0])),
                    equal_to([("line_count_mismatch", n + 1, str(n))]), label="Letters")
