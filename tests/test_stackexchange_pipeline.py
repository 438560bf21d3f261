"""The StackExchange pipeline end to end on the six real sites in ../shared/data/stackexchange.

Expected counts come from an independent parse (xml.etree.ElementTree.iterparse over whole files),
not from our code.
"""

from __future__ import annotations

import collections
import gzip
import json
import pathlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import lxml.html
import py7zr
import pytest

from pipelines import stackexchange as pipeline
from specs import run_folder
from transforms import stackexchange as se
from transforms.core.runtime import main, run_pipeline

NO_FILTERS = ["--min_title_chars=0", "--max_title_chars=0", "--min_body_chars=0", "--max_body_chars=0",
              "--min_answer_chars=0", "--max_answer_chars=0", "--min_question_score=-1000000",
              "--min_answer_score=-1000000"]
SITES = ["quantumcomputing.stackexchange.com", "cardano.stackexchange.com", "french.meta.stackexchange.com",
         "bicycles.meta.stackexchange.com", "cstheory.meta.stackexchange.com", "conlang.meta.stackexchange.com"]


def run(argv: list[str]) -> dict:
    return run_pipeline("stackexchange", argv, pipeline.build)


def read_jsonl(folder: pathlib.Path) -> list:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(f, "rt")]


def independent_counts(site_dir: pathlib.Path) -> dict:
    posts = {}
    for _, el in ET.iterparse(site_dir / "Posts.xml"):
        if el.tag == "row":
            posts[int(el.get("Id"))] = dict(el.attrib)
        el.clear()
    questions = {i for i, p in posts.items() if p["PostTypeId"] == "1"}
    answers = [p for p in posts.values() if p["PostTypeId"] == "2"]
    answered = {int(a["ParentId"]) for a in answers} & questions
    dup = set()
    dup_rows = 0
    for _, el in ET.iterparse(site_dir / "PostLinks.xml"):
        if el.tag == "row" and el.get("LinkTypeId") == "3":
            dup_rows += 1
            a, b = int(el.get("PostId")), int(el.get("RelatedPostId"))
            if a in questions and b in questions:
                dup.add((min(a, b), max(a, b)))
    return {"posts": posts, "questions": len(questions), "answers": len(answers), "answered": len(answered),
            "dup_rows": dup_rows, "dup_pairs": len(dup),
            "other": collections.Counter(p["PostTypeId"] for p in posts.values() if p["PostTypeId"] not in "12")}


@pytest.fixture(scope="module")
def all_sites(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("se_all")
    summary = run([f"--input={shared_data / 'stackexchange'}", f"--output_dir={out}", "--include_meta",
                   "--with_metadata", *NO_FILTERS])
    return out, summary


@pytest.mark.slow
def test_counts_agree_with_an_independent_parse(all_sites, shared_data):
    out, summary = all_sites
    assert summary["balanced"]
    stages = summary["stages"]
    for site in SITES:
        exp = independent_counts(shared_data / "stackexchange" / site)
        posts_file = str(shared_data / "stackexchange" / site / "Posts.xml")
        parsed = stages["parse_rows"]["scopes"][posts_file]
        assert parsed["out"] == exp["questions"] + exp["answers"], site
        assert {k: v for k, v in parsed["filtered"].items() if k.startswith("post_type_")} == \
            {f"post_type_{k}": v for k, v in exp["other"].items()}
        assert parsed["dead_lettered"] == {}
        links = stages["parse_rows"]["scopes"][str(shared_data / "stackexchange" / site / "PostLinks.xml")]
        assert links["out"] == exp["dup_rows"]
        assert stages["threads"]["scopes"][site]["out"] == exp["questions"]
        assert stages["duplicate_links"]["scopes"][site]["out"] == exp["dup_pairs"]
        pairs = stages["pairs"]["scopes"]
        assert pairs[f"{site}/title_body"]["out"] == exp["questions"]
        assert pairs[f"{site}/title_answer"]["out"] == exp["answered"]
        assert pairs[f"{site}/duplicate_title_title"]["out"] == exp["dup_pairs"]
    for t in se.PAIR_TYPES:
        rows = read_jsonl(out / t / "jsonl")
        total = sum(v["out"] for k, v in stages["pairs"]["scopes"].items() if k.endswith("/" + t))
        assert len(rows) == total > 0
        assert {len(r["texts"]) for r in rows} == {se.NUM_TEXTS[t]}
        posts_per_pair = 1 if t == "title_body" else se.NUM_TEXTS[t]
        assert all(len(r["ids"]) == len(r["license"]) == len(r["url"]) == posts_per_pair for r in rows)


@pytest.mark.slow
def test_tfrecords_parse_with_the_written_spec(all_sites):
    import tensorflow as tf

    import specs

    out, _ = all_sites
    folder = out / "title_body_answer_negative" / "tfrecord"
    spec = specs.read_spec_text((folder / "schema.pbtxt").read_text(), (folder / "feature_spec.json").read_text())
    records = list(tf.data.TFRecordDataset([str(p) for p in sorted(folder.glob("*.tfrecord.gz"))], "GZIP"))
    parsed = [tf.io.parse_single_example(r, spec.tf_parsing_spec()) for r in records[:50]]
    jsonl = {tuple(r["texts"]) for r in read_jsonl(out / "title_body_answer_negative" / "jsonl")}
    assert len(records) == len(jsonl)
    for p in parsed:
        assert tuple(p[k].numpy().decode() for k in ("src_raw", "tgt_raw", "neg_raw")) in jsonl


@pytest.mark.slow
def test_no_markup_or_entities_survive_and_code_stays_on_its_own_lines(all_sites, shared_data):
    out, _ = all_sites
    bodies = {}
    for site in SITES:
        for pid, p in independent_counts(shared_data / "stackexchange" / site)["posts"].items():
            bodies[(site, pid)] = p.get("Body", "")
    entity = re.compile(r"&(lt|gt|amp|quot|apos|nbsp|#\d+|#x[0-9a-fA-F]+);")
    tag = re.compile(r"</?(p|div|pre|code|a|em|strong|ul|ol|li|br|img|blockquote|h\d)\b[^>]*>")
    checked_code = 0
    for r in read_jsonl(out / "title_body" / "jsonl"):
        html = bodies[(r["site"], r["ids"][0])]
        text = r["texts"][1]
        source_text = lxml.html.fromstring(html).text_content() if html.strip() else ""
        if not entity.search(source_text):
            assert not entity.search(text), (r["url"], text[:200])
        if not tag.search(source_text):
            assert not tag.search(text), (r["url"], text[:200])
        for block in lxml.html.fromstring(html).iter("pre") if html.strip() else []:
            for line in block.text_content().split("\n"):
                if line.strip():
                    assert line.rstrip() in text.split("\n")
                    checked_code += 1
    assert checked_code > 100


def _site_with_bad_rows(shared_data: pathlib.Path, tmp: pathlib.Path) -> pathlib.Path:
    site = tmp / "bad.stackexchange.com"
    site.mkdir()
    real = (shared_data / "stackexchange" / "conlang.meta.stackexchange.com" / "Posts.xml").read_bytes()
    lines = real.split(b"\r\n")
    bad = [
        b'  <row Id="900001" PostTypeId="1" Score="1" Body="&lt;p&gt;truncated',
        b'  <row Id="900002" PostTypeId="1" Score="1" Title="bell \x01" Body="x" />',
        b'  <!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>',
        b'  <row Id="900003" PostTypeId="1" Score="1" Title="bomb" Body="&lol2;" />',
        b'  <row Id="900004" PostTypeId="1" Title="xxe"><!ENTITY xxe SYSTEM "file:///etc/passwd"></row>',
        b'  <row Id="900005" PostTypeId="2" Score="1" Body="no parent" />',
    ]
    (site / "Posts.xml").write_bytes(b"\r\n".join(lines[:10] + bad + lines[10:]))
    shutil.copy(shared_data / "stackexchange" / "conlang.meta.stackexchange.com" / "PostLinks.xml", site)
    return site


def test_bad_rows_are_dead_lettered_with_file_line_and_reason(shared_data, tmp_path):
    site = _site_with_bad_rows(shared_data, tmp_path)
    out = tmp_path / "out"
    summary = run([f"--input={site}", f"--output_dir={out}", "--output_formats=jsonl", "--pair_types=title_body"])
    assert summary["balanced"]
    letters = [json.loads(line) for f in (out / "dead_letter").glob("*.gz") for line in gzip.open(f, "rt")]
    by_line = {d["line"]: d for d in letters}
    assert sorted(by_line) == [11, 12, 13, 14, 15, 16]
    assert [by_line[i]["reason"] for i in range(11, 17)] == [
        "xml_syntax", "xml_syntax", "not_a_row", "xml_syntax", "dtd_or_entity_declaration", "bad_field"]
    assert all(d["source"] == str(site / "Posts.xml") for d in letters)
    assert "passwd" not in json.dumps(read_jsonl(out / "title_body" / "jsonl"))
    real = independent_counts(shared_data / "stackexchange" / "conlang.meta.stackexchange.com")
    assert summary["stages"]["parse_rows"]["total"]["out"] == real["questions"] + real["answers"] + real["dup_rows"]


def test_posts_read_but_no_pair_written_leave_the_run_unfinished(shared_data, tmp_path, capsys):
    """A title filter no question passes: every pair filtered, exit 1 and no completion marker, although the
    dump's rows were read."""
    site = shared_data / "stackexchange" / "conlang.meta.stackexchange.com"
    out = tmp_path / "out"
    argv = [f"--input={site}", f"--output_dir={out}", "--include_meta", "--min_title_chars=100000"]
    assert main("stackexchange", pipeline.build, argv) == 1
    assert not (out / "_RUN_COMPLETE.json").exists()
    assert "warning: the pairs yielded no records" in capsys.readouterr().err


def _tree_bytes(root: pathlib.Path) -> dict[str, bytes]:
    """Every output file but the run markers (they record the times and the command line)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not run_folder.is_marker(p.name)}


@pytest.mark.slow
def test_byte_identical_across_runner_modes(shared_data, tmp_path):
    inputs = [f"--input={shared_data / 'stackexchange' / s}" for s in SITES[1:3]]
    a, b = tmp_path / "a", tmp_path / "b"
    run([*inputs, "--include_meta", f"--output_dir={a}", "--num_shards=3"])
    run([*inputs, "--include_meta", f"--output_dir={b}", "--num_shards=3", "--direct_num_workers=2",
         "--direct_running_mode=multi_processing"])
    ta, tb = _tree_bytes(a), _tree_bytes(b)
    assert len(ta) > 20 and ta == tb


@pytest.mark.slow
def test_7z_archives_and_gzip_give_the_same_pairs_as_plain_files(shared_data, tmp_path):
    src = shared_data / "stackexchange" / "conlang.meta.stackexchange.com"
    archive_dir = tmp_path / "dumps"
    archive_dir.mkdir()
    with py7zr.SevenZipFile(archive_dir / "conlang.meta.stackexchange.com.7z", "w") as z:
        for name in ("Posts.xml", "PostLinks.xml", "Comments.xml"):
            z.write(src / name, name)
    gz_site = tmp_path / "gz" / "conlang.meta.stackexchange.com"
    gz_site.mkdir(parents=True)
    for name in ("Posts.xml", "PostLinks.xml"):
        (gz_site / f"{name}.gz").write_bytes(gzip.compress((src / name).read_bytes()))
    outs = {}
    for label, inp in (("plain", src), ("7z", archive_dir / "conlang.meta.stackexchange.com.7z"), ("gz", gz_site)):
        outs[label] = tmp_path / f"out_{label}"
        s = run([f"--input={inp}", "--include_meta", f"--output_dir={outs[label]}", "--output_formats=jsonl",
                 "--pair_types=title_body_answer,duplicate_title_title"])
        assert s["balanced"]
    pairs = {k: {n: b for n, b in _tree_bytes(v).items() if n.startswith(se.PAIR_TYPES)} for k, v in outs.items()}
    assert len(pairs["plain"]) == 2 and pairs["plain"] == pairs["7z"] == pairs["gz"]
    assert list((outs["7z"] / "_transcoded" / "conlang.meta.stackexchange.com").iterdir())


def test_7z_shards_are_cut_at_line_ends(tmp_path):
    from transforms.stackexchange.sevenzip import _ShardWriter

    w = _ShardWriter(str(tmp_path / "Posts"), shard_bytes=10)
    data = b"".join(b"<row Id=\"%d\" />\n" % i for i in range(50))
    for i in range(0, len(data), 7):
        w.write(data[i:i + 7])
    w.close()
    shards = [pathlib.Path(p).read_bytes() for p in w.paths]
    assert len(shards) > 5 and b"".join(shards) == data
    assert all(s.endswith(b"\n") for s in shards)


@pytest.mark.slow
def test_meta_sites_are_skipped_unless_asked_and_config_errors_are_one_line(shared_data, tmp_path):
    cmd = [sys.executable, "-m", "pipelines.stackexchange", f"--output_dir={tmp_path}"]
    r = subprocess.run([*cmd, f"--input={shared_data / 'stackexchange' / 'conlang.meta.stackexchange.com'}"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "only meta sites found" in r.stderr and "--include_meta" in r.stderr
    r = subprocess.run([*cmd, f"--input={tmp_path / 'nowhere'}"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no Posts.xml" in r.stderr
    r = subprocess.run([*cmd, f"--input={shared_data / 'stackexchange'}", "--pair_types=title_bdy"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown ['title_bdy']" in r.stderr


@pytest.mark.slow
def test_bundled_sample_edge_cases(tmp_path):
    """Our own sample: a duplicate linked both ways is collapsed, a link to a missing post counted, the
    watermark row and the tag wiki filtered, scores compared as integers, code kept on its own lines."""
    sample = pathlib.Path(__file__).parent.parent / "samples" / "stackexchange" / "cycling.example.stackexchange.com"
    summary = run([f"--input={sample}", f"--output_dir={tmp_path}", "--with_metadata"])
    stages = summary["stages"]
    assert summary["balanced"]
    assert stages["parse_rows"]["total"]["filtered"] == {"link_type_1": 1, "post_type_5": 1, "watermark": 1,
                                                         "xml_envelope": 6}
    assert stages["duplicate_links_collapse"]["total"]["filtered"] == {"duplicate_link_collapsed": 1}
    assert stages["duplicate_links"]["total"]["filtered"] == {"links_missing_post": 1}
    (dup,) = read_jsonl(tmp_path / "duplicate_title_title" / "jsonl")
    assert dup["ids"] == [13, 1]  # the lower link id's direction: duplicate -> original
    (neg,) = read_jsonl(tmp_path / "title_body_answer_negative" / "jsonl")
    assert neg["ids"] == [1, 3, 22] and neg["scores"] == [12, 14, -4]
    answers = {r["ids"][0]: r for r in read_jsonl(tmp_path / "title_answer" / "jsonl")}
    assert "print(sum(int(r['cadence']) for r in rows) / len(rows))" in answers[11]["texts"][1].split("\n")
    assert all("Watermark" not in r["texts"][0] for r in answers.values())


@pytest.mark.slow
def test_dedup_and_decontamination_behind_flags(shared_data, tmp_path):
    """Two copies of a real site under two names: exact dedup keeps one pair of each copy pair; a pair
    whose body is in the evaluation file is dropped by --exclude."""
    src = shared_data / "stackexchange" / "conlang.meta.stackexchange.com"
    for name in ("a.stackexchange.com", "b.stackexchange.com"):
        (tmp_path / "in" / name).mkdir(parents=True)
        shutil.copy(src / "Posts.xml", tmp_path / "in" / name)
    base = run([f"--input={tmp_path / 'in'}", f"--output_dir={tmp_path / 'base'}", "--pair_types=title_body",
                "--output_formats=jsonl", "--with_metadata"])
    rows = read_jsonl(tmp_path / "base" / "title_body" / "jsonl")
    per_site = base["stages"]["pairs"]["scopes"]["a.stackexchange.com/title_body"]["out"]
    assert len(rows) == 2 * per_site
    held_out = next(r for r in rows if len(r["texts"][1]) > 200)
    (tmp_path / "eval.txt").write_text(max(held_out["texts"][1].split("\n"), key=len) + "\n")
    summary = run([f"--input={tmp_path / 'in'}", f"--output_dir={tmp_path / 'dd'}", "--pair_types=title_body",
                   "--output_formats=jsonl", "--dedup=exact", f"--exclude={tmp_path / 'eval.txt'}"])
    assert summary["balanced"]
    kept = read_jsonl(tmp_path / "dd" / "title_body" / "jsonl")
    assert summary["stages"]["decontaminate"]["total"]["filtered"]["eval_overlap"] >= 2
    assert summary["stages"]["dedup_exact"]["total"]["filtered"]["exact_duplicate"] == len(kept)
    assert len({tuple(r) for r in kept}) == len(kept) and held_out["texts"] not in kept
