"""Throughput and memory of the StackExchange pipeline against the floor of parsing its rows.

    python bench/stackexchange.py [--site DIR] [--scale 10] [--runs 1]

Builds a Posts.xml ``--scale`` times larger than the site's (its rows repeated with new ids, so
threads and links stay consistent), then measures:

- the floor: ``lxml.etree.fromstring`` over the same row lines in one Python loop;
- the text floor: the same plus ``html_to_text`` of every Body, the per-row work no converter that
  produces clean text can skip (shown so the ratio can be read against what is avoidable);
- the pipeline on the DirectRunner (in-process FnApiRunner) as the marginal cost between the 1x and
  the ``--scale``x input (start-up cancels out), in rows/s and input MB/s per core (CPU seconds of the
  process), and its peak RSS on the larger input: once with its defaults (all seven pair types, jsonl
  and TFRecords, gzip level 1) and once with ``--pair_types=title_body --output_formats=jsonl``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_SITE = REPO.parent / "shared" / "data" / "stackexchange" / "quantumcomputing.stackexchange.com"
_ID_ATTRS = re.compile(rb'\b(Id|ParentId|AcceptedAnswerId|PostId|RelatedPostId)="(\d+)"')


def scaled_site(site: pathlib.Path, out: pathlib.Path, scale: int) -> pathlib.Path:
    """Writes SITE's Posts.xml and PostLinks.xml with their rows repeated ``scale`` times, ids shifted."""
    dest = out / site.name
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Posts.xml", "PostLinks.xml"):
        lines = (site / name).read_bytes().split(b"\n")
        head = [ln for ln in lines if b"<row" not in ln and ln.strip()][:2]
        rows = [ln.rstrip(b"\r") for ln in lines if b"<row" in ln]
        shift = 10 ** (len(str(max(int(m.group(2)) for r in rows for m in _ID_ATTRS.finditer(r)))) + 1)
        with open(dest / name, "wb") as f:
            f.write(b"\n".join(head) + b"\n")
            for k in range(scale):
                for r in rows:
                    delta = k * shift
                    f.write(_ID_ATTRS.sub(lambda m, d=delta: b'%s="%d"' % (m.group(1), int(m.group(2)) + d), r)
                            + b"\n")
            f.write(lines[-1] if lines[-1].strip() else b"</posts>")
    return dest


def row_lines(path: pathlib.Path) -> list[bytes]:
    """The ``<row .../>`` lines of a dump file."""
    return [ln for ln in path.read_bytes().split(b"\n") if b"<row" in ln]


def floor(lines: list[bytes]) -> tuple[float, float]:
    """(seconds, MB) for lxml.etree.fromstring over every row line."""
    from lxml import etree

    mb = sum(len(ln) for ln in lines) / 1e6
    t = time.process_time()
    for ln in lines:
        etree.fromstring(ln)
    return time.process_time() - t, mb


def text_floor(lines: list[bytes]) -> float:
    """Seconds for lxml.etree.fromstring over every row line plus html_to_text of each Body."""
    from lxml import etree

    from transforms.stackexchange.html_text import html_to_text

    t = time.process_time()
    for ln in lines:
        html_to_text(etree.fromstring(ln).get("Body", ""))
    return time.process_time() - t


def run_pipeline(site: pathlib.Path, out: pathlib.Path, *flags: str) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, peak RSS KiB) of one pipeline run in a child process."""
    cmd = [sys.executable, "-m", "pipelines.stackexchange", f"--input={site}", f"--output_dir={out}", *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return cpu, wall, after.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", type=pathlib.Path, default=DEFAULT_SITE)
    ap.add_argument("--scale", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        small = scaled_site(args.site, tmp / "x1", 1)
        big = scaled_site(args.site, tmp / f"x{args.scale}", args.scale)
        rows_small = len(row_lines(small / "Posts.xml"))
        big_rows = row_lines(big / "Posts.xml")
        rows_big = len(big_rows)
        floor_s, floor_mb = floor(big_rows)
        text_s = text_floor(big_rows)
        links = len(row_lines(big / "PostLinks.xml"))
        runs = {}
        for name, flags in (("defaults", ()), ("title_body, jsonl", ("--pair_types=title_body",
                                                                      "--output_formats=jsonl"))):
            cpu1, wall1, _ = run_pipeline(small, tmp / "out1", *flags)
            cpu2, wall2, rss = run_pipeline(big, tmp / "out2", *flags)
            runs[name] = (cpu2 - cpu1, wall1, cpu1, wall2, cpu2, rss)
            shutil.rmtree(tmp / "out1")
            shutil.rmtree(tmp / "out2")
    rows = rows_big - rows_small
    mb = floor_mb * (rows / rows_big)
    floor_rate = rows_big / floor_s
    text_rate = rows_big / text_s
    print(f"input: {args.site.name} x{args.scale}: {rows_big} Posts rows ({floor_mb:.1f} MB), {links} PostLinks rows")
    print(f"{'':<46}{'rows/s/core':>12}{'MB/s/core':>11}{'/floor':>8}{'/text floor':>12}")
    print(f"{'floor: lxml.etree.fromstring':<46}{floor_rate:>12,.0f}{floor_mb / floor_s:>11.2f}{1:>8.2f}"
          f"{floor_rate / text_rate:>12.2f}")
    print(f"{'text floor: + html_to_text(Body)':<46}{text_rate:>12,.0f}{floor_mb / text_s:>11.2f}"
          f"{text_rate / floor_rate:>8.2f}{1:>12.2f}")
    for name, (cpu, *_rest) in runs.items():
        label = f"pipeline ({name}), marginal x1 -> x{args.scale}"
        print(f"{label:<46}{rows / cpu:>12,.0f}{mb / cpu:>11.2f}{rows / cpu / floor_rate:>8.2f}"
              f"{rows / cpu / text_rate:>12.2f}")
    for name, (_, wall1, cpu1, wall2, cpu2, _) in runs.items():
        print(f"pipeline ({name}): x1 {wall1:.1f} s wall / {cpu1:.1f} s CPU; x{args.scale} {wall2:.1f} s wall / "
              f"{cpu2:.1f} s CPU")
    # ru_maxrss of children is the largest so far, so only the first configuration's is its own.
    print(f"peak RSS of the x{args.scale} run with defaults: {runs['defaults'][5] / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
