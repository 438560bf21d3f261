"""The translation-pairs job end to end on the real Tatoeba and FLORES files (used in place), with
planted bad data: accounting, read-back, the script filter, --exclude, balancing and determinism."""

from __future__ import annotations

import collections
import functools
import gzip
import json
import pathlib

import pytest

from pipelines import translation_pairs
from transforms import translation as tr
from transforms.core import runtime
from transforms.text import textnorm
from transforms.text import writing_systems as scripts

# Each test here takes over ~30 s (a whole job or a training run): not in the fast lane.
pytestmark = pytest.mark.slow

TATOEBA_LANGS = ("deu", "jpn", "rus", "cmn", "ara", "hin", "tha")


def _lines(path: pathlib.Path) -> list[bytes]:
    data = path.read_bytes()
    return data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n")


def _run(argv: list[str]) -> dict:
    return runtime.run_pipeline("translation_pairs", argv, translation_pairs.build)


@functools.cache
def _read_split(directory: pathlib.Path) -> tuple[tuple[str, str, str, str], ...]:
    """The split's records, parsed with the spec the job wrote beside them: every record in one
    batched ``tf.io.parse_example``, and a sample one by one with ``tf.io.parse_single_example``,
    which must agree."""
    import tensorflow as tf

    from specs import SCHEMA_FILE, SPEC_FILE, TRANSLATION_PAIRS, read_spec_text

    spec = read_spec_text((directory / SCHEMA_FILE).read_text(), (directory / SPEC_FILE).read_text())
    spec.require(TRANSLATION_PAIRS, str(directory))
    parsing = spec.tf_parsing_spec()
    names = ("src_raw", "tgt_raw", "src_lang", "tgt_lang")
    paths = sorted(str(p) for p in directory.glob("pairs-*.tfrecord.gz"))
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]
    if not serialized:
        return ()
    batch = tf.io.parse_example(serialized, parsing)
    records = tuple(zip(*([v.decode("utf-8") for v in batch[k].numpy()] for k in names), strict=True))
    for i in range(0, len(serialized), max(1, len(serialized) // 50)):
        one = tf.io.parse_single_example(serialized[i], parsing)
        assert tuple(one[k].numpy().decode("utf-8") for k in names) == records[i]
    return records


@pytest.fixture(scope="module")
def job(shared_data, tmp_path_factory):
    """One run over 7 real Tatoeba pairs, planted files, and FLORES as the excluded eval set."""
    tmp = tmp_path_factory.mktemp("translation")
    tatoeba = shared_data / "translation" / "laser_tatoeba_v1"
    flores = shared_data / "translation" / "flores200_devtest"
    inputs = [str(tatoeba / f"tatoeba.{lang}-eng.{side}") for lang in TATOEBA_LANGS for side in (lang, "eng")]
    # German text declared as Japanese: the script filter must catch all of it.
    deu, deu_eng = _lines(tatoeba / "tatoeba.deu-eng.deu"), _lines(tatoeba / "tatoeba.deu-eng.eng")
    (tmp / "planted.jpn-eng.jpn").write_bytes(b"\n".join(deu[:300]) + b"\n")
    (tmp / "planted.jpn-eng.eng").write_bytes(b"\n".join(deu_eng[:300]) + b"\n")
    # FLORES sentences planted as training pairs (aligned, both directions via TSV), which --exclude
    # must remove, next to FLORES-like rows that differ from every FLORES sentence.
    eng, fra = _lines(flores / "eng_Latn.devtest"), _lines(flores / "fra_Latn.devtest")
    (tmp / "leak.eng-fra.eng").write_bytes(b"\n".join(eng[:60]) + b"\n")
    (tmp / "leak.eng-fra.fra").write_bytes(b"\n".join(fra[:60]) + b"\n")
    rows = [fra[i] + b"\tNot in FLORES: " + eng[i] + b"\tfra\teng" for i in range(60, 80)]
    rows += [b"Nicht in FLORES: " + fra[i] + b"\t" + eng[i] + b"\tdeu\teng" for i in range(80, 100)]
    rows += [b"Noch ein Satz " + str(i).encode() + b" hier.\tYet another sentence " + str(i).encode() + b" here."
             for i in range(30)]
    rows += [b"only one column", b"\xff\xfe broken utf8\tbroken", b"", b"Hallo Welt!\tHello world!\tdeu\teng"]
    (tmp / "mixed.deu-eng.tsv").write_bytes(b"\n".join(rows) + b"\n")
    # Aligned files of different lengths: the extra lines are dead-lettered with their line numbers.
    (tmp / "uneven.deu-eng.deu").write_bytes(b"Guten Morgen, Anna.\nWie geht es dir heute?\nDrei.\n")
    (tmp / "uneven.deu-eng.eng").write_bytes(b"Good morning, Anna.\nHow are you today?\n")
    jsonl = [{"translation": {"de": "Das Wetter ist heute schön.", "en": "The weather is nice today."}},
             {"translation": {"de": "Nur Deutsch."}}, "not an object"]
    (tmp / "hf.de-en.jsonl").write_text("\n".join(json.dumps(x) for x in jsonl) + "\n{broken\n")
    inputs += [str(p) for p in sorted(tmp.glob("*.*")) if p.is_file()]
    out = tmp / "out"
    # No --materialize_tokens here: a second tf.Transform job cost minutes; the token records are
    # checked on test_trainer_tft.py's run, which materialises them anyway.
    summary = _run([f"--input={','.join(inputs)}", f"--output_dir={out}", f"--exclude={flores}/*.devtest",
                    "--jsonl_fields=src=translation.de,tgt=translation.en", "--write_jsonl"])
    return {"tmp": tmp, "out": out, "summary": summary, "inputs": inputs, "flores": flores}


def _input_pairs(job) -> tuple[list[tuple[str, str, str, str]], int]:
    """Every readable pair of the inputs (plain Python), and the number of input records."""
    plan = tr.plan_inputs(job["inputs"])
    pairs, records = [], 0
    for a in plan.aligned:
        src, tgt = _lines(pathlib.Path(a.src_path)), _lines(pathlib.Path(a.tgt_path))
        records += max(len(src), len(tgt))
        pairs += [(s.decode(), t.decode(), a.src_lang, a.tgt_lang) for s, t in zip(src, tgt, strict=False)]
    for path, langs in plan.tsv.items():
        for raw in _lines(pathlib.Path(path)):
            records += 1
            try:
                pairs.append(tr.parse_tsv_line(raw, langs))
            except tr.BadRecordError:
                pass
    for path, langs in plan.jsonl.items():
        for raw in _lines(pathlib.Path(path)):
            records += 1
            try:
                pairs.append(tr.parse_json_line(raw, tr.JsonFields("translation.de", "translation.en"), langs))
            except tr.BadRecordError:
                pass
    return pairs, records


def _dedup_key(p: tuple[str, str, str, str]) -> tuple[str, ...]:
    texts = [t for _, t in sorted(((p[2], p[0]), (p[3], p[1])))]
    return tuple(textnorm.exact_key_text(t) for t in texts)


def test_every_input_record_is_accounted_for(job):
    s = job["summary"]
    assert s["balanced"]
    _, records = _input_pairs(job)
    # every line is first read_input's (which dead-letters the line that is not UTF-8), then read_pairs'
    checked = s["stages"]["read_input"]["total"]
    read = s["stages"]["read_pairs"]["total"]
    assert checked["dead_lettered"] == {"invalid_utf8": 1} and checked["filtered"] == {}
    assert read["in"] == records - 1  # the line that is not UTF-8 never reaches read_pairs
    assert read["dead_lettered"] == {"bad_columns": 1, "bad_json": 2, "line_count_mismatch": 1, "missing_field": 1}
    assert read["filtered"] == {"blank_line": 1}
    letters = [json.loads(line) for f in sorted((job["out"] / "dead_letter").glob("*.jsonl.gz"))
               for line in gzip.decompress(f.read_bytes()).splitlines()]
    uneven = [d for d in letters if d["reason"] == "line_count_mismatch"]
    assert [(pathlib.Path(d["source"]).name, d["line"], d["record"]) for d in uneven] == [
        ("uneven.deu-eng.deu", 3, "Drei.")]
    broken = [d for d in letters if d["reason"] == "invalid_utf8"]
    assert broken[0]["line"] == 72 and pathlib.Path(broken[0]["source"]).name == "mixed.deu-eng.tsv"
    written = sum(len(_read_split(job["out"] / split)) for split in tr.SPLITS)
    last = s["stages"]["exclude_eval"]["total"]
    assert written == last["out"]


def test_records_read_back_are_the_normalised_input_and_exactly_the_expected_set(job):
    pairs, _ = _input_pairs(job)
    table = scripts.LanguageScripts()
    normalised = {(tr.nfc_single_spaced(s), tr.nfc_single_spaced(t), sl, tl) for s, t, sl, tl in pairs}
    kept = {p for p in normalised if tr.filter_reason(*p, tr.CleanConfig(), table) is None}
    flores = {textnorm.near_key_text(line.decode()) for f in job["flores"].glob("*.devtest")
              for line in _lines(f)}
    expected_keys = {_dedup_key(p) for p in kept
                     if textnorm.near_key_text(p[0]) not in flores and textnorm.near_key_text(p[1]) not in flores}
    got = [r for split in tr.SPLITS for r in _read_split(job["out"] / split)]
    assert set(got) <= normalised  # exactly the input text after normalisation
    assert len({_dedup_key(r) for r in got}) == len(got)  # no duplicates left
    assert {_dedup_key(r) for r in got} == expected_keys  # nothing else removed, nothing kept that should go
    jsonl = [json.loads(line) for split in tr.SPLITS
             for f in sorted((job["out"] / split / "jsonl").glob("*.jsonl.gz"))
             for line in gzip.decompress(f.read_bytes()).splitlines()]
    assert sorted((d["src_raw"], d["tgt_raw"], d["src_lang"], d["tgt_lang"]) for d in jsonl) == sorted(got)


def test_script_filter_catches_the_planted_mislabelled_file(job):
    clean = job["summary"]["stages"]["clean_pairs"]["scopes"]["jpn-eng"]
    planted = 300
    real_jpn = 1000
    assert clean["in"] == real_jpn + planted
    assert clean["filtered"]["script_mismatch"] >= planted - 10  # a few fail an earlier rule first
    got = [r for split in tr.SPLITS for r in _read_split(job["out"] / split) if r[2] == "jpn"]
    deu = {tr.nfc_single_spaced(line.decode()) for line in _lines(job["tmp"] / "planted.jpn-eng.jpn")}
    assert got and not any(r[0] in deu for r in got)


def test_exclude_removes_the_planted_flores_pairs(job):
    stage = job["summary"]["stages"]["exclude_eval"]["scopes"]
    assert stage["eng-fra"]["filtered"] == {"eval_overlap": stage["eng-fra"]["in"]}
    assert stage["eng-fra"]["in"] >= 55  # the planted FLORES lines that pass cleaning
    assert stage["fra-eng"]["filtered"] == {"eval_overlap": 20}
    assert stage["deu-eng"]["filtered"]["eval_overlap"] >= 20


def test_statistics_cover_every_language_pair(job):
    stats = json.loads((job["out"] / tr.STATS_JSON).read_text())
    assert (job["out"] / tr.STATS_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lp = stats["language_pairs"]["jpn-eng"]
    assert lp["clean_pairs"]["filtered"]["script_mismatch"] >= 300
    written = sum(stats["written"][s].get("deu-eng", {}).get("pairs", 0) for s in stats["written"])
    assert written == job["summary"]["stages"]["exclude_eval"]["scopes"]["deu-eng"]["out"]
    hist = stats["written"]["train"]["deu-eng"]["src_tokens"]
    assert sum(hist.values()) == stats["written"]["train"]["deu-eng"]["pairs"]
    uneven = stats["inputs"][str(job["tmp"] / "uneven.deu-eng")]
    assert uneven == {"in": 3, "out": 2, "dead_lettered": {"line_count_mismatch": 1}}


def _data_files(out: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".gz" or p.name == tr.STATS_JSON) and "dead_letter" not in p.parts}


def test_output_is_byte_identical_across_runs_and_worker_counts(shared_data, tmp_path):
    tatoeba = shared_data / "translation" / "laser_tatoeba_v1"
    inputs = ",".join(str(tatoeba / f"tatoeba.{lang}-eng.{side}") for lang in ("tzl", "swg", "amh", "awa")
                      for side in (lang, "eng"))
    base = [f"--input={inputs}", "--sampling_alpha=0.3", "--max_upsample=3", "--num_shards=3", "--write_jsonl",
            "--seed=7", "--no_stats_chart"]
    # Two runs, one in-process and one over two worker processes: equal bytes show both that a rerun
    # repeats itself and that the worker count does not matter (a third, repeated in-process run was
    # dropped for time: it asserts nothing these two do not).
    outs = []
    for i, extra in enumerate([[], ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]]):
        out = tmp_path / f"run{i}"
        assert _run([*base, f"--output_dir={out}", *extra])["balanced"]
        outs.append(_data_files(out))
    assert outs[0] == outs[1]
    assert len([k for k in outs[0] if k.startswith("train/pairs-")]) == 3
    stats = json.loads(outs[0][tr.STATS_JSON])
    bal = stats["balance_train"]
    # Smoothing (alpha 0.3) lifts the smaller pairs by repetition and lowers the largest.
    assert bal["awa-eng"]["rate"] < 1 < bal["eng-tzl"]["rate"]  # keys are unordered: sorted languages
    for entry in bal.values():
        assert abs(entry["realised"] - entry["target"]) <= max(10, 0.15 * entry["target"])
    train = _read_split(tmp_path / "run0" / "train")
    counts = collections.Counter(r for r in train)
    assert max(counts.values()) == 2  # upsampled copies are written


def test_pairs_read_but_none_written_leave_the_run_unfinished(tmp_path, capsys):
    """Every pair removed by cleaning (here: identical sides) writes no pair: exit 1, no completion
    marker, as a run whose inputs hold no record."""
    (tmp_path / "p.deu-eng.tsv").write_text("Hallo\tHallo\nJa\tJa\n", encoding="utf-8")
    out = tmp_path / "out"
    code = runtime.main("translation_pairs", translation_pairs.build,
                        [f"--input={tmp_path / 'p.deu-eng.tsv'}", f"--output_dir={out}"])
    assert code == 1 and not (out / "_RUN_COMPLETE.json").exists()
    assert "warning: the pairs yielded no records" in capsys.readouterr().err
