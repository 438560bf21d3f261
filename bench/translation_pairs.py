"""Throughput and peak memory of the translation-pairs job, next to a plain-Python floor.

    .venv/bin/python bench/translation_pairs.py [--pairs=1000000] [--workdir=bench_out/translation_pairs]

Input: ``--pairs`` pairs made by resampling the real Tatoeba files (``../shared/data``): each pair
is one or two randomly drawn pairs of the same language pair joined by a space (the concatenation
of two translations is a translation), so lengths and scripts are real, and the one-sentence draws
repeat real pairs and give the dedup stage real work. Written as 8 four-column TSV files (plain, so
the reader splits them), seeded, outside the measurement.

Measured, each in its own process (wall, user+system CPU and peak RSS from ``os.wait4``):

- ``beam``: ``python -m pipelines.translation_pairs`` on the FnApiRunner in one process, as
  configured by default (cleaning, exact dedup, split, shuffled TFRecord shards, stats).
- ``floor``: a plain-Python loop doing the same work on one core with the same functions: parse,
  normalise, the same rules, exact dedup in a dict, split, encode, write one GZIP TFRecord file per
  split (unshuffled). It holds the dedup dict in memory, so it is a floor for speed, not a design.

Prints pairs/s per core (pairs / CPU seconds), pairs/s wall, MB/s of input per core, and peak RSS,
with the Beam/floor ratios.
"""

from __future__ import annotations

import argparse
import gzip
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = pathlib.Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"
FILES = 8


def make_input(pairs: int, directory: pathlib.Path, seed: int = 1) -> list[pathlib.Path]:
    """Writes the resampled pairs (see the module docstring); returns the TSV paths."""
    from transforms.core.seeding import element_rng

    tatoeba = SHARED / "translation" / "laser_tatoeba_v1"
    corpus = []
    for src_path in sorted(tatoeba.glob("tatoeba.*-eng.*")):
        lang = src_path.suffix[1:]
        if lang == "eng":
            continue
        tgt_path = src_path.with_suffix(".eng")
        src = src_path.read_text(encoding="utf-8").splitlines()
        tgt = tgt_path.read_text(encoding="utf-8").splitlines()
        corpus.append((lang, list(zip(src, tgt, strict=True))))
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"resampled-{i:02d}.tsv" for i in range(FILES)]
    outs = [p.open("w", encoding="utf-8") for p in paths]
    for i in range(pairs):
        rng = element_rng(seed, "bench", i)
        lang, lines = corpus[rng.randrange(len(corpus))]
        picked = [lines[rng.randrange(len(lines))] for _ in range(1 + (rng.random() < 0.5))]
        src, tgt = " ".join(p[0] for p in picked), " ".join(p[1] for p in picked)
        outs[i % FILES].write(f"{src}\t{tgt}\t{lang}\teng\n")
    for f in outs:
        f.close()
    return paths


def floor(paths: list[str], out_dir: str) -> None:
    """The plain-Python loop (see the module docstring)."""
    from transforms import translation as tr
    from transforms.core.tfrecords import tfrecord_frame
    from transforms.text import textnorm
    from transforms.text import writing_systems as scripts

    config, table = tr.CleanConfig(), scripts.LanguageScripts()
    fractions = tr.parse_split_fractions("train=0.98,validation=0.01,test=0.01")
    seen: set[tuple[str, ...]] = set()
    os.makedirs(out_dir, exist_ok=True)
    outs = {s: gzip.open(os.path.join(out_dir, f"{s}.tfrecord.gz"), "wb") for s in fractions}
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    src, tgt, sl, tl = tr.parse_tsv_line(raw.rstrip(b"\n"), ("", ""))
                except tr.BadRecordError:
                    continue
                src, tgt = tr.normalize_text(src), tr.normalize_text(tgt)
                if tr.filter_reason(src, tgt, sl, tl, config, table):
                    continue
                key = tuple(textnorm.exact_key_text(t) for _, t in sorted(((sl, src), (tl, tgt))))
                if key in seen:
                    continue
                seen.add(key)
                pair = tr.Pair(src, tgt, sl, tl, path, -1, -1)
                split = tr.split_of(tr.pair_key(pair), fractions, 0)
                outs[split].write(tfrecord_frame(tr.encode_pair(pair)))
    for f in outs.values():
        f.close()


def measure(cmd: list[str]) -> dict[str, float]:
    """Runs ``cmd``; returns wall seconds, CPU seconds (user+system, with its children) and peak RSS."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if status:
        sys.exit(f"failed ({status}): {' '.join(cmd)}\n{err[-3000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=str(REPO / "bench_out" / "translation_pairs"))
    parser.add_argument("--floor_only", nargs=2, metavar=("INPUT_GLOB_DIR", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_only:
        floor(sorted(str(p) for p in pathlib.Path(args.floor_only[0]).glob("*.tsv")), args.floor_only[1])
        return
    work = pathlib.Path(args.workdir)
    inputs = work / "input"
    t = time.perf_counter()
    paths = make_input(args.pairs, inputs)
    size_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"input: {args.pairs} pairs, {size_mb:.1f} MB in {len(paths)} TSV files "
          f"(made in {time.perf_counter() - t:.0f} s)")
    runs = {
        "floor": measure([sys.executable, __file__, "--floor_only", str(inputs), str(work / "floor")]),
        "beam": measure([sys.executable, "-m", "pipelines.translation_pairs", f"--input={inputs}/*.tsv",
                         f"--output_dir={work / 'beam'}", "--no_stats_chart"]),
    }
    print(f"{'':<6} {'wall s':>8} {'cpu s':>8} {'pairs/s/core':>13} {'pairs/s wall':>13} {'MB/s/core':>10} "
          f"{'peak MiB':>9}")
    for name, r in runs.items():
        print(f"{name:<6} {r['wall']:>8.1f} {r['cpu']:>8.1f} {args.pairs / r['cpu']:>13.0f} "
              f"{args.pairs / r['wall']:>13.0f} {size_mb / r['cpu']:>10.2f} {r['rss_mib']:>9.0f}")
    b, f = runs["beam"], runs["floor"]
    print(f"beam/floor: {f['cpu'] / b['cpu']:.2f}x the floor's pairs/s per core, "
          f"{b['rss_mib'] / f['rss_mib']:.2f}x its peak memory")


if __name__ == "__main__":
    main()
