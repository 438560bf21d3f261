"""Throughput, memory and quality of near-duplicate detection, against datasketch as the baseline.

    python bench/dedup.py [--families 400] [--runs 3] [--skip_pipeline]

Corpus: real paragraphs (WikiText-2 valid+test, English; Sōseki's *Wagahai wa neko de aru*,
Japanese, shingled by characters) from ``../shared/data/text``; ``--families`` of them get copies
edited at known rates (word or character substitutions, deletions, insertions), the rest stay single.
Every phase runs in its own forked process, which reports its CPU time and peak RSS; rates are per
core (documents / CPU seconds).

- signatures: ``textnorm.near_key_text`` + ``MinHasher.signature`` (128 permutations, 5-grams);
- baseline: datasketch ``MinHash(num_perm=128)`` over the same normalised 5-gram shingles,
  ``update_batch`` (its fastest path);
- pipeline: ``python -m pipelines.dedup --no_exact --with_clusters`` (read JSONL, NearDedup, write
  kept records and clusters) on the DirectRunner (in-process FnApiRunner), as the marginal cost
  between a quarter of the corpus and all of it, so that start-up cancels out;
- quality: ``NearDedup`` at thresholds 0.7, 0.8, 0.9 (bands x rows from ``lsh_params``), every pair
  of documents in one cluster counted as flagged, scored against exact Jaccard of the shingle sets.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import multiprocessing
import pathlib
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from transforms.dedup import minhash  # noqa: E402
from transforms.dedup.planted import edit_units  # noqa: E402
from transforms.text import textnorm  # noqa: E402

TEXT = REPO.parent / "shared" / "data" / "text"
EDIT_RATES = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15)
NGRAM, NUM_PERM = 5, 128


def corpus(families: int) -> list[dict[str, Any]]:
    en = [x.strip() for name in ("wiki.valid.tokens.txt", "wiki.test.tokens.txt")
          for x in (TEXT / "wikitext-2" / name).read_text("utf-8").splitlines() if len(x.split()) >= 20]
    ja = [x.strip() for x in (TEXT / "gutenberg_novels" / "wagahaiwa_nekodearu.ja.txt").read_text("utf-8")
          .splitlines() if len(x.strip()) >= 60]
    bases = [(x, False) for x in en] + [(x, True) for x in ja]
    vocab = {False: sorted({w for x in en for w in x.split()}), True: sorted({c for x in ja for c in x})}
    docs = []
    for i, (text, is_ja) in enumerate(bases):
        rng = random.Random(f"bench-{i}")
        units = list(text) if is_ja else text.split()
        for rate in EDIT_RATES if i % max(1, len(bases) // families) == 0 else (0.0,):
            out = edit_units(units, rate, rng, vocab[is_ja])
            docs.append({"id": f"{i}-{rate}", "text": ("" if is_ja else " ").join(out)})
    return docs


def shingle_strings(text: str) -> list[str]:
    u = textnorm.units(text)
    return [" ".join(u)] if 0 < len(u) < NGRAM else [" ".join(u[i:i + NGRAM]) for i in range(len(u) - NGRAM + 1)]


def _in_child(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Runs ``fn`` in a forked process: (result, CPU seconds, peak RSS in MiB of that process)."""
    def target(conn: Any) -> None:
        t0 = time.process_time()
        result = fn(*args)
        conn.send((result, time.process_time() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))

    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child,))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def sign_ours(texts: list[str]) -> int:
    h = minhash.MinHasher(num_perm=NUM_PERM, ngram=NGRAM)
    for t in texts:
        h.signature([textnorm.near_key_text(t)])
    return len(texts)


def sign_datasketch(texts: list[str]) -> int:
    from datasketch import MinHash

    for t in texts:
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch([s.encode("utf-8") for s in shingle_strings(t)])
    return len(texts)


def run_near_dedup(path: str, threshold: float) -> list[tuple[str, str]]:
    """``python -m pipelines.dedup --no_exact`` on the DirectRunner over a JSONL file, with clusters;
    returns (doc id, cluster id) for every document."""
    import contextlib
    import gzip
    import io
    import json

    from pipelines import dedup as job
    from transforms.core.runtime import run_pipeline

    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        run_pipeline("dedup", [f"--input={path}", f"--output_dir={out}", "--text_fields=text", "--no_exact",
                               f"--threshold={threshold}", "--with_clusters"], job.build)
        return [(r["id"], r["cluster_id"]) for f in pathlib.Path(out, "clusters").glob("part-*")
                for r in map(json.loads, gzip.decompress(f.read_bytes()).splitlines())]


def all_pairs_jaccard(docs: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    sets = {d["id"]: set(shingle_strings(d["text"])) for d in docs}
    by_shingle: dict[str, list[str]] = collections.defaultdict(list)
    for i, s in sets.items():
        for g in s:
            by_shingle[g].append(i)
    inter: collections.Counter = collections.Counter()
    for ids in by_shingle.values():
        if len(ids) < 500:  # a shingle in hundreds of documents is boilerplate: skip its pairs' counts
            for a, b in itertools.combinations(sorted(ids), 2):
                inter[a, b] += 1
    return {(a, b): n / (len(sets[a]) + len(sets[b]) - n) for (a, b), n in inter.items()}


def quality(truth: dict[tuple[str, str], float], clusters: list[tuple[str, str]], t: float) -> dict[str, float]:
    members: dict[str, list[str]] = collections.defaultdict(list)
    for doc, cid in clusters:
        members[cid].append(doc)
    flagged = {tuple(sorted(p)) for ids in members.values() for p in itertools.combinations(ids, 2)}
    similar = {p for p, j in truth.items() if j >= t}
    very = {p for p, j in truth.items() if j >= t + 0.1}
    return {"recall": len(similar & flagged) / max(1, len(similar)),
            "recall_plus_0.1": len(very & flagged) / max(1, len(very)),
            "precision": sum(truth.get(p, 0.0) >= t for p in flagged) / max(1, len(flagged)),
            "below_t_minus_0.1": sum(truth.get(p, 0.0) < t - 0.1 for p in flagged) / max(1, len(flagged)),
            "flagged": len(flagged), "similar": len(similar)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=400, help="Paragraphs that get edited copies.")
    ap.add_argument("--runs", type=int, default=3, help="Signature timings: best of this many.")
    ap.add_argument("--skip_pipeline", action="store_true")
    args = ap.parse_args()
    docs = corpus(args.families)
    texts = [d["text"] for d in docs]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(f"corpus: {len(docs)} documents, {mb:.1f} MB, {args.families} families x {len(EDIT_RATES)} edit rates")
    textnorm.near_key_text("warm the normalisation tables up before forking: é")

    rates = {}
    for name, fn in (("signatures (ours)", sign_ours), ("datasketch MinHash", sign_datasketch)):
        best = min((_in_child(fn, texts) for _ in range(args.runs)), key=lambda r: r[1])
        _, cpu, rss = best
        rates[name] = len(docs) / cpu
        print(f"{name:<22} {len(docs) / cpu:>9.0f} docs/s per core  {mb / cpu:6.2f} MB/s per core  "
              f"peak RSS {rss:.0f} MiB")
    ratio = rates["signatures (ours)"] / rates["datasketch MinHash"]
    print(f"{'ratio ours/datasketch':<22} {ratio:>9.2f}x")
    if args.skip_pipeline:
        return

    tmp = tempfile.mkdtemp()
    paths = {}
    for name, part in (("quarter", docs[::4]), ("all", docs)):
        paths[name] = f"{tmp}/{name}.jsonl"
        pathlib.Path(paths[name]).write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in part))
    quarter = docs[::4]
    _, cpu_q, _ = _in_child(run_near_dedup, paths["quarter"], 0.8)
    _, cpu_f, rss_f = _in_child(run_near_dedup, paths["all"], 0.8)
    marginal = (len(docs) - len(quarter)) / max(1e-9, cpu_f - cpu_q)
    print(f"{'NearDedup pipeline':<22} {marginal:>9.0f} docs/s per core (marginal, DirectRunner)  "
          f"{len(docs) / cpu_f:.0f} docs/s whole run incl. start-up  peak RSS {rss_f:.0f} MiB  "
          f"vs datasketch signatures alone {marginal / rates['datasketch MinHash']:.2f}x")

    truth = all_pairs_jaccard(docs)
    for t in (0.7, 0.8, 0.9):
        clusters, cpu, _ = _in_child(run_near_dedup, paths["all"], t)
        b, r = minhash.lsh_params(t, NUM_PERM)
        q = quality(truth, clusters, t)
        very = f"  recall(J>={t + 0.1:.1f}) {q['recall_plus_0.1']:.4f}" if t < 0.9 else ""
        print(f"threshold {t}: bands x rows {b}x{r}  recall(J>={t}) {q['recall']:.4f}{very}  precision(J>={t}) "
              f"{q['precision']:.4f}  flagged below {t - 0.1:.1f}: {q['below_t_minus_0.1']:.4f}  "
              f"({q['similar']} similar pairs, {q['flagged']} flagged)")


if __name__ == "__main__":
    main()
