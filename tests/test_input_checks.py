"""Every input reader checks what it reads (issue 12): a compressed stream cut short is a
``truncated_input`` dead letter and never a record made of its partial last line; LF, CRLF and
lone-CR line ends all read as lines; a line that is not UTF-8 is an ``invalid_utf8`` dead letter and
a file that is not text one ``not_text`` dead letter, the same in every pipeline.

The inputs are real samples from ``shared/data`` (StackExchange XML, Tatoeba, WikiText), cut,
re-encoded and compressed into ``tmp_path`` at test time. Unit tests read through the reading
functions without Beam; one small run per pipeline checks the dead letters and the summary.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import json
import lzma
import pathlib
import random
import re
import zlib
from typing import Any

import pytest
import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.range_trackers import OffsetRangeTracker

from pipelines import dedup as dedup_pipeline
from pipelines import pretrain_data, stackexchange, translation_pairs
from pipelines import vocab as vocab_pipeline
from transforms.core import input_checks, runtime
from transforms.core.accounting import DEAD_LETTER
from transforms.core.lines import UTF8_BOM, LineBatch, _CheckLines, _LineBatchSource
from transforms.core.tfrecords import _ReadTFRecordFile, tfrecord_frame
from transforms.pretraining import RawDocument, bert_text, reading, tlm

LINE_END = re.compile(rb"\r\n|\r|\n")
# every compression Beam detects by extension (bz2 with 100 kB blocks, so a cut leaves whole blocks)
COMPRESSORS = {"gz": lambda d: gzip.compress(d, mtime=0), "bz2": lambda d: bz2.compress(d, 1), "xz": lzma.compress,
               "deflate": zlib.compress, "zst": lambda d: zstandard.ZstdCompressor().compress(d)}


def _lines(path: pathlib.Path, n: int) -> list[bytes]:
    return LINE_END.split(path.read_bytes())[:n]


def _posts(shared: pathlib.Path, n: int) -> list[bytes]:
    return _lines(shared / "stackexchange" / "cardano.stackexchange.com" / "Posts.xml", n)


def _tsv(shared: pathlib.Path, n: int) -> list[bytes]:
    tatoeba = shared / "translation" / "laser_tatoeba_v1"
    deu, eng = _lines(tatoeba / "tatoeba.deu-eng.deu", n), _lines(tatoeba / "tatoeba.deu-eng.eng", n)
    return [d + b"\t" + e for d, e in zip(deu, eng, strict=True)]


def _text(shared: pathlib.Path, n: int) -> list[bytes]:
    return _lines(shared / "text" / "wikitext-2" / "wiki.valid.tokens.txt", n)


def _jsonl(shared: pathlib.Path, n: int) -> list[bytes]:
    return [json.dumps({"text": t.decode()}, ensure_ascii=False).encode() for t in _text(shared, n) if t.strip()]


KINDS = {"xml": _posts, "tsv": _tsv, "text": _text}


def _cut(data: bytes, fmt: str) -> bytes:
    whole = COMPRESSORS[fmt](data)
    return whole[: len(whole) // 2]


def _offsets(lines: list[bytes], end: bytes) -> list[tuple[int, bytes]]:
    """``(offset, line)`` as the reader cuts them: the Posts.xml sample's byte-order mark is dropped
    from its first line (``lines.lines_from``), whose offset stays 0."""
    out, pos = [], 0
    for line in lines:
        out.append((pos, line.removeprefix(UTF8_BOM) if pos == 0 else line))
        pos += len(line) + len(end)
    return out


def _read(path: pathlib.Path) -> tuple[list[tuple[int, bytes]], list[input_checks.InputProblem]]:
    """All lines and problems of a file through the splittable source, without Beam."""
    src = _LineBatchSource(str(path), 50, compression_type=CompressionTypes.AUTO, validate=False)
    lines, problems = [], []
    (bundle,) = list(src.split(1 << 40))
    for item in bundle.source.read(bundle.source.get_range_tracker(bundle.start_position, bundle.stop_position)):
        if isinstance(item, input_checks.InputProblem):
            problems.append(item)
        else:
            lines.extend(item.lines)
    return lines, problems


def _binary() -> bytes:
    return random.Random(12).randbytes(200_000)


# --- reading functions, without Beam ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(COMPRESSORS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_cut_stream_is_truncated_input_and_its_partial_line_is_no_record(shared_data, tmp_path, kind, fmt):
    lines = KINDS[kind](shared_data, 6000 if kind != "tsv" else 1000)
    path = tmp_path / f"cut.{kind}.{fmt}"
    path.write_bytes(_cut(b"\n".join(lines) + b"\n", fmt))
    got, problems = _read(path)
    expected = _offsets(lines, b"\n")
    assert got == expected[: len(got)], "lines before the cut are read whole and in place"
    assert len(got) > 0 or fmt in ("bz2", "zst")  # block formats: a cut in the only block leaves no line
    (problem,) = problems
    k = len(got)
    assert problem.reason == "truncated_input" and problem.path == str(path) and "truncated" in problem.detail
    assert problem.offset == expected[k][0] and expected[k][1].startswith(problem.record)
    assert k < len(lines) - 1, "the cut is in the middle of the file"


def test_bz2_cut_after_several_blocks_gives_the_blocks_before(shared_data, tmp_path):
    lines = _posts(shared_data, 2632)
    path = tmp_path / "Posts.xml.bz2"
    path.write_bytes(_cut(b"\r\n".join(lines) + b"\r\n", "bz2"))
    got, (problem,) = _read(path)
    assert len(got) > 100 and got == _offsets(lines, b"\r\n")[: len(got)]
    assert problem.reason == "truncated_input"


def test_a_corrupt_gzip_stream_is_truncated_input_too(shared_data, tmp_path):
    data = bytearray(COMPRESSORS["gz"](b"\n".join(_text(shared_data, 3000))))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "corrupt.txt.gz"
    path.write_bytes(bytes(data))
    got, (problem,) = _read(path)
    assert problem.reason == "truncated_input" and "corrupt" in problem.detail
    # deflate finds some corruption only at the checksum after the last block: lines before that
    # are read, but none is ever made of the bytes after the break
    assert all(b"\n" not in line for _, line in got)


def test_an_intact_compressed_file_has_no_problem(shared_data, tmp_path):
    lines = _tsv(shared_data, 300)
    for fmt, compress in COMPRESSORS.items():
        path = tmp_path / f"ok.tsv.{fmt}"
        path.write_bytes(compress(b"\n".join(lines)))
        assert _read(path) == (_offsets(lines, b"\n"), [])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cr_crlf_and_lf_files_give_the_same_lines_whatever_the_split(shared_data, tmp_path, kind):
    lines = KINDS[kind](shared_data, 400)
    for end in (b"\n", b"\r\n", b"\r"):
        path = tmp_path / f"x{len(end)}{end[-1]}.{kind}"
        data = end.join(lines) + end
        path.write_bytes(data)
        src = _LineBatchSource(str(path), 7, compression_type=CompressionTypes.AUTO, validate=False)
        bounds = [0, *range(1, len(data), max(1, len(data) // 9)), len(data)]
        got = [line for a, b in itertools.pairwise(bounds) if a < b
               for batch in src.read_records(str(path), OffsetRangeTracker(a, b)) for line in batch.lines]
        assert got == _offsets(lines, end), end


def test_a_stray_cr_in_an_lf_file_stays_in_its_line_so_aligned_files_stay_aligned(shared_data, tmp_path):
    lines = _tsv(shared_data, 300)
    lines[5] = lines[5].replace(b" ", b"\r", 1)
    path = tmp_path / "stray.tsv"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    assert _read(path) == (_offsets(lines, b"\r\n"), [])


def test_not_text_by_nul_bytes_or_undecodable_share(shared_data):
    assert input_checks.text_problem(_binary()[:65536], complete=False).startswith("NUL byte")
    utf16 = "Grüße aus Köln\n".encode("utf-16")
    assert "UTF-16" in input_checks.text_problem(utf16, complete=True)
    no_nul = bytes(b or 1 for b in _binary()[:65536])
    assert "not UTF-8" in input_checks.text_problem(no_nul, complete=False)
    # Latin-1 prose is text with bad lines (dead-lettered one by one), not a binary file
    latin1 = b"\n".join(_tsv(shared_data, 300)).decode().encode("latin-1", "replace")
    assert latin1.count(b"\xfc") > 5 and input_checks.text_problem(latin1, complete=True) is None
    assert input_checks.text_problem(b"\n".join(_text(shared_data, 300))[:65536], complete=False) is None


def test_a_binary_file_is_one_not_text_problem_from_the_first_range_only(tmp_path):
    path = tmp_path / "random.txt"
    path.write_bytes(_binary())
    src = _LineBatchSource(str(path), 50, compression_type=CompressionTypes.AUTO, validate=False)
    first = list(src.read_records(str(path), OffsetRangeTracker(0, 100_000)))
    rest = list(src.read_records(str(path), OffsetRangeTracker(100_000, 200_000)))
    assert [(p.reason, p.offset) for p in first] == [("not_text", 0)] and rest == []


def _run_dofn(dofn: Any, items: list[Any]) -> tuple[list[Any], list[Any]]:
    dofn.start_bundle()
    out, letters = [], []
    for item in items:
        for x in dofn.process(item):
            (letters if getattr(x, "tag", None) == DEAD_LETTER else out).append(getattr(x, "value", x))
    return out, letters


def test_check_lines_dead_letters_invalid_utf8_and_keeps_places_when_asked():
    batch = LineBatch("f.tsv", [(0, b"ok\tfine"), (8, b"Gr\xfc\xdfe\tHi"), (18, "Grüße\tHi".encode())])
    out, letters = _run_dofn(_CheckLines(keep_places=False), [batch])
    assert out == [LineBatch("f.tsv", [(0, b"ok\tfine"), (18, "Grüße\tHi".encode())])]
    (letter,) = letters
    assert (letter.stage, letter.reason, letter.source, letter.offset, letter.record) == (
        "read_input", "invalid_utf8", "f.tsv", 8, "Gr\\xfc\\xdfe\tHi")
    out, _ = _run_dofn(_CheckLines(keep_places=True), [batch])
    assert [raw for _, raw in out[0].lines] == [b"ok\tfine", None, "Grüße\tHi".encode()]


def test_a_cut_or_corrupt_7z_archive_is_truncated_input(shared_data, tmp_path):
    import py7zr

    from transforms.stackexchange import TranscodeArchives

    whole = tmp_path / "whole.7z"
    with py7zr.SevenZipFile(whole, "w") as z:
        z.write(shared_data / "stackexchange" / "cardano.stackexchange.com" / "PostLinks.xml", "PostLinks.xml")
    data = whole.read_bytes()
    (tmp_path / "cut.7z").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "corrupt.7z").write_bytes(bytes(flipped))
    (tmp_path / "junk.7z").write_bytes(b"not an archive at all\n" * 10)
    dofn = TranscodeArchives(str(tmp_path / "shards"), 1 << 20)
    items = [(str(tmp_path / f"{n}.7z"), "cardano.stackexchange.com", None)
             for n in ("cut", "corrupt", "junk", "whole")]
    shards, letters = _run_dofn(dofn, items)
    assert [(d.stage, d.reason, pathlib.Path(d.source).name) for d in letters] == [
        ("read_input", "truncated_input", "cut.7z"), ("read_input", "truncated_input", "corrupt.7z"),
        ("transcode_7z", "bad_archive", "junk.7z")]
    assert "truncated" in letters[0].detail and "corrupt" in letters[1].detail
    assert b"".join(pathlib.Path(s).read_bytes() for s in shards) == (
        shared_data / "stackexchange" / "cardano.stackexchange.com" / "PostLinks.xml").read_bytes()


@pytest.mark.parametrize("fmt", ["bz2", "zst", "gz"])
def test_a_cut_compressed_tfrecord_file_is_truncated_input_after_its_whole_records(shared_data, tmp_path, fmt):
    records = [b"record %d " % i + line for i, line in enumerate(_text(shared_data, 3000))]
    path = tmp_path / f"docs.tfrecord.{fmt}"
    path.write_bytes(_cut(b"".join(tfrecord_frame(r) for r in records), fmt))
    out, (letter,) = _run_dofn(_ReadTFRecordFile(), [str(path)])
    assert [r for _, r in out] == records[: len(out)] and len(out) < len(records)
    offset = sum(len(r) + 16 for r in records[: len(out)])
    assert (letter.stage, letter.reason, letter.source) == ("read_tfrecord_frames", "truncated_input", str(path))
    assert letter.detail.startswith(f"record {len(out)} at byte {offset}: the compressed stream ends")


def test_a_tfrecord_text_feature_that_is_not_utf8_is_invalid_utf8_in_every_reader():
    import specs
    from transforms import dedup
    from transforms.core.records import BadRecordError

    raw = specs.TRANSLATION_PAIRS.encode({"src_raw": "GrXXe", "tgt_raw": "Greetings", "src_lang": "de",
                                          "tgt_lang": "en"}).replace(b"GrXXe", "Grüße".encode("latin-1"))
    with pytest.raises(BadRecordError) as e:
        dedup.record_from_example("p.tfrecord", raw, ["src_raw", "tgt_raw"], None)
    assert e.value.reason == "invalid_utf8"
    for dofn in (tlm._ParsePairs(), reading._ParseExampleDocuments("src_raw", "src_lang", None)):
        out, (letter,) = _run_dofn(dofn, [("p.tfrecord", raw)])
        assert out == [] and (letter.reason, letter.source, letter.detail) == (
            "invalid_utf8", "p.tfrecord", "invalid UTF-8 at byte 2 of feature 'src_raw': invalid start byte")
    assert str(e.value) == letter.detail


def _documents(path: pathlib.Path) -> tuple[list[list[str]], list[input_checks.InputProblem]]:
    src = bert_text._BertTextSource(str(path), 100, "en", compression_type=CompressionTypes.AUTO, validate=False)
    (bundle,) = list(src.split(1 << 40))
    items = list(bundle.source.read(bundle.source.get_range_tracker(bundle.start_position, bundle.stop_position)))
    return ([d.sentences for d in items if isinstance(d, RawDocument) and d.sentences],
            [p for p in items if isinstance(p, input_checks.InputProblem)])


def test_bert_text_reader_makes_the_same_checks(shared_data, tmp_path):
    lines = _text(shared_data, 3000)
    (tmp_path / "lf.txt").write_bytes(b"\n".join(lines))
    (tmp_path / "cr.txt").write_bytes(b"\r".join(lines))
    docs, problems = _documents(tmp_path / "lf.txt")
    assert problems == [] and len(docs) > 100
    assert _documents(tmp_path / "cr.txt") == (docs, [])
    (tmp_path / "cut.txt.gz").write_bytes(_cut(b"\n".join(lines), "gz"))
    cut_docs, (problem,) = _documents(tmp_path / "cut.txt.gz")
    assert problem.reason == "truncated_input" and 0 < len(cut_docs) < len(docs)
    assert cut_docs[:-1] == docs[: len(cut_docs) - 1] and docs[len(cut_docs) - 1][: len(cut_docs[-1])] == cut_docs[-1]
    latin = [*lines[:50], "Grüße aus Köln".encode("latin-1"), *lines[50:100]]
    (tmp_path / "latin.txt").write_bytes(b"\n".join(latin))
    _, (problem,) = _documents(tmp_path / "latin.txt")
    assert (problem.reason, problem.offset) == ("invalid_utf8", sum(len(x) + 1 for x in lines[:50]))
    (tmp_path / "random.txt").write_bytes(_binary())
    assert [(p.reason, p.offset) for p in _documents(tmp_path / "random.txt")[1]] == [("not_text", 0)]


# --- one small run per pipeline ----------------------------------------------------------------------

def _plant(folder: pathlib.Path, name: str, lines: list[bytes], latin1_line: bytes) -> dict:
    """The four inputs every pipeline gets: a cut .gz, a CR-only file, a file with one Latin-1 line,
    and random bytes. Returns their paths and the facts to check."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / f"{k}{name}" for k in ("cut", "cr", "latin", "binary")}
    paths["cut"] = paths["cut"].with_name(paths["cut"].name + ".gz")
    paths["cut"].write_bytes(_cut(b"\n".join(lines) + b"\n", "gz"))
    paths["cr"].write_bytes(b"\r".join(lines[:200]) + b"\r")
    latin = [*lines[:30], latin1_line, *lines[30:60]]
    paths["latin"].write_bytes(b"\n".join(latin) + b"\n")
    paths["binary"].write_bytes(_binary())
    return {"paths": {k: str(v) for k, v in paths.items()}, "cr_lines": 200,
            "latin_offset": sum(len(x) + 1 for x in lines[:30]), "lines": lines}


def _letters(out: pathlib.Path) -> list[dict]:
    return [json.loads(x) for f in sorted((out / "dead_letter").glob("*.jsonl.gz"))
            for x in gzip.decompress(f.read_bytes()).splitlines()]


def _check(summary: dict, out: pathlib.Path, planted: dict) -> dict[str, dict]:
    """The checks every pipeline's run must pass; returns the read_input letters by reason."""
    assert summary["balanced"]
    paths = planted["paths"]
    read = summary["stages"]["read_input"]
    assert read["total"]["dead_lettered"] == {"invalid_utf8": 1, "not_text": 1, "truncated_input": 1}
    assert read["scopes"][paths["cr"]]["out"] == planted["cr_lines"]
    assert read["scopes"][paths["binary"]] == {"in": 1, "out": 0, "filtered": {}, "balanced": True,
                                              "dead_lettered": {"not_text": 1}}
    letters = {d["reason"]: d for d in _letters(out) if d["stage"] == "read_input"}
    assert set(letters) == {"invalid_utf8", "not_text", "truncated_input"}
    cut = letters["truncated_input"]
    lines = planted["lines"]
    k = read["scopes"][paths["cut"]]["out"]
    assert 0 < k < len(lines) - 1 and cut["source"] == paths["cut"] and cut["line"] == k + 1
    partial = re.sub(r"\.\.\. \[\d+ chars\]$", "", cut["record"])  # long records are shortened
    assert cut["offset"] == sum(len(x) + 1 for x in lines[:k]) and lines[k].decode().startswith(partial)
    assert (letters["not_text"]["source"], letters["not_text"]["offset"], letters["not_text"]["line"]) == (
        paths["binary"], 0, 1)
    bad = letters["invalid_utf8"]
    assert (bad["source"], bad["offset"], bad["line"]) == (paths["latin"], planted["latin_offset"], 31)
    return letters


def _comparable(letters: dict[str, dict]) -> dict[str, dict]:
    """The letters with what differs between pipelines (the file's path, its content) left out."""
    return {r: {k: re.sub(r"\d+", "N", v) if k == "detail" else v for k, v in d.items()
                if k not in ("source", "record", "offset", "line")} | {"fields": sorted(d)}
            for r, d in letters.items()}


@pytest.fixture(scope="module")
def vocab_file(shared_data) -> str:
    return str(shared_data / "vocab" / "bert-base-uncased.vocab.txt")


RESULTS: dict[str, dict[str, dict]] = {}


@pytest.mark.slow
def test_translation_pairs(shared_data, tmp_path):
    planted = _plant(tmp_path / "in", ".deu-eng.tsv", _tsv(shared_data, 1000), "Grüße\tGreetings".encode("latin-1"))
    out = tmp_path / "out"
    summary = runtime.run_pipeline("translation_pairs", [
        f"--input={','.join(planted['paths'].values())}", f"--output_dir={out}", "--write_jsonl", "--no_stats_chart"],
        translation_pairs.build)
    RESULTS["translation_pairs"] = _comparable(_check(summary, out, planted))
    parsed = summary["stages"]["read_pairs"]["scopes"]
    assert parsed[planted["paths"]["cr"]]["out"] == 200
    # the partial line is no pair: every pair read from the cut file is a whole line of the input
    assert parsed[planted["paths"]["cut"]]["in"] == summary["stages"]["read_input"]["scopes"][
        planted["paths"]["cut"]]["out"]


@pytest.mark.slow
def test_stackexchange(shared_data, tmp_path):
    lines = _posts(shared_data, 1200)
    planted = _plant(tmp_path / "planted", ".xml", lines,
                     "  <row Id=\"9\" PostTypeId=\"1\" Title=\"Grüße\" Body=\"x\" />".encode("latin-1"))
    # each file as a dump names it, one site each
    names = {}
    for kind, path in planted["paths"].items():
        folder = tmp_path / "in" / f"{kind}.stackexchange.com"
        folder.mkdir(parents=True)
        target = folder / ("Posts.xml.gz" if kind == "cut" else "Posts.xml")
        pathlib.Path(path).rename(target)
        names[kind] = str(target)
    planted["paths"] = names
    out = tmp_path / "out"
    summary = runtime.run_pipeline("stackexchange", [f"--input={tmp_path / 'in'}", f"--output_dir={out}",
                                                     "--output_formats=jsonl"], stackexchange.build)
    RESULTS["stackexchange"] = _comparable(_check(summary, out, planted))
    rows = summary["stages"]["parse_rows"]["scopes"]
    assert rows[names["cr"]]["in"] == 200 and rows[names["cr"]]["dead_lettered"] == {}


@pytest.mark.slow
def test_dedup(shared_data, tmp_path):
    planted = _plant(tmp_path / "in", ".jsonl", _jsonl(shared_data, 3000), '{"text": "Grüße"}'.encode("latin-1"))
    out = tmp_path / "out"
    summary = runtime.run_pipeline("dedup", [f"--input={tmp_path / 'in'}/*", f"--output_dir={out}", "--format=jsonl",
                                             "--text_fields=text", "--no_near"], dedup_pipeline.build)
    RESULTS["dedup"] = _comparable(_check(summary, out, planted))
    assert summary["stages"]["read"]["scopes"][planted["paths"]["cr"]]["out"] == 200


@pytest.mark.slow
def test_vocab(shared_data, tmp_path):
    planted = _plant(tmp_path / "in", ".txt", _text(shared_data, 3000), "Grüße aus Köln".encode("latin-1"))
    out = tmp_path / "out"
    summary = runtime.run_pipeline("vocab", [f"--input_patterns={tmp_path / 'in'}/*", f"--output_dir={out}",
                                             "--vocab_size=500", "--max_words=500", "--min_token_count=2"],
                                   vocab_pipeline.build)
    RESULTS["vocab"] = _comparable(_check(summary, out, planted))
    assert summary["stages"]["count_words"]["scopes"][planted["paths"]["cr"]]["in"] == 200


@pytest.mark.slow
def test_pretrain_data(shared_data, tmp_path, vocab_file):
    planted = _plant(tmp_path / "in", ".txt", _text(shared_data, 3000), "Grüße aus Köln".encode("latin-1"))
    out = tmp_path / "out"
    summary = runtime.run_pipeline("pretrain_data", [f"--input_patterns={tmp_path / 'in'}/*", f"--output_dir={out}",
                                                     f"--vocab_file={vocab_file}", "--max_seq_length=32",
                                                     "--max_predictions_per_seq=5", "--dupe_factor=1"],
                                   pretrain_data.build)
    RESULTS["pretrain_data"] = _comparable(_check(summary, out, planted))
    assert summary["stages"]["read_text"]["scopes"][planted["paths"]["cr"]]["in"] == 200


@pytest.mark.slow
def test_the_letters_are_the_same_in_every_pipeline():
    if len(RESULTS) < 2:
        pytest.skip("needs the pipeline runs above")
    first, *rest = RESULTS.values()
    assert all(r == first for r in rest), RESULTS
    assert first["not_text"]["stage"] == "read_input"
