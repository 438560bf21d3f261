"""Mining bitext with a sentence encoder (``pipelines.mine_pairs``): precision, recall and F1 against the
known alignment (the BUCC measure) on FLORES with both sides shuffled, the job's sentences/s and peak
memory, and exact k-NN by numpy matrix products against faiss (exact and approximate) on the same
embeddings.

    .venv/bin/python bench/mine_pairs.py [--langs=fra,deu] [--pairs=300] [--export=EXPORT] \\
        [--threshold=1.06] [--block_size=4000] [--faiss_path=/work/faiss_bench] [--workdir=bench_out/mine_pairs]

The full run, the 11 Latin-script FLORES languages that LASER's Tatoeba also has, the whole devtest::

    .venv/bin/python bench/mine_pairs.py --langs=deu,fra,ind,ita,nld,pol,por,spa,swh,tur,vie --pairs=1012

Without ``--export`` the real all-MiniLM-L6-v2 is exported first (``bench.score_pairs.export_minilm``:
seq_length 128; once, outside the measurement).

Input, per language: FLORES devtest lines 1..``--pairs`` of ``xxx_Latn`` and of ``eng_Latn`` (line i
translates line i), each side shuffled by its own seeded ``random.Random``, written as two monolingual
files. The job mines with ``--threshold=0`` (every mutual best pair written with its margin); since a
pair is mined at threshold t exactly when its margin is >= t, the scores at every threshold of the grid
(and at ``--threshold``) come from that one run, as BUCC's own scripts choose the best-F1 threshold.
Precision: mined pairs that are a FLORES line pair; recall: FLORES line pairs mined (of those there are).
With ``--unpaired=U`` the English side is lines ``u+1..u+pairs`` (``u = round(U * pairs)``): the first u
sources have no translation there and u English lines have no source, as in comparable corpora, where
the threshold earns its keep (BUCC's corpora are mostly unpaired); ``pairs + u`` must not pass 1012.

Speed, one job per language, each in its own process (``bench.process_stats``: wall, CPU of the process
and its children, peak RSS): sentences/s (both sides' lines, embedding included) per core
(CPU seconds) and per wall second.

k-NN (``--faiss_path``): faiss-cpu is not in the project's lock. Install it outside the repo, e.g.
``pip install --target /work/faiss_bench faiss-cpu numpy``; that part runs in a subprocess with
``PYTHONPATH=<faiss_path>`` (its own numpy), one thread each (``OMP_NUM_THREADS=1``, faiss'
``omp_set_num_threads(1)``), over the export's embeddings of the FLORES devtest of the languages and
English (``--knn_lines`` each): every sentence's k nearest among all of them. Methods: numpy blocked
matmul + argpartition in float32 and float64 (blocks of 1000 rows), faiss ``IndexFlatIP`` (exact) and
``IndexHNSWFlat`` (M=32) at several efSearch. Reports build and search seconds (the best of 3) and
recall@k against numpy float64's sets.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import random
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.process_stats import measure  # noqa: E402
from bench.score_pairs import CORPORA, LANGS, corpus_lines, export_minilm  # noqa: E402

GRID = (0.0, 1.0, 1.02, 1.04, 1.06, 1.08, 1.1, 1.12, 1.15, 1.2, 1.25, 1.3)
K = 4


def make_input(lang: str, pairs: int, directory: pathlib.Path, unpaired: int = 0,
               corpus: str = "flores") -> tuple[set[tuple[str, str]], int]:
    """Writes ``mono.LANG.txt`` and ``mono.eng.txt`` (each side shuffled; English shifted by ``unpaired``
    lines); returns the true pairs, normalised as the job writes its sentences (``nfc_single_spaced``), and
    the number of lines written."""
    from transforms.translation import nfc_single_spaced

    src, eng = corpus_lines(corpus, lang, pairs + unpaired), corpus_lines(corpus, "eng", pairs + unpaired, lang)
    truth = {(nfc_single_spaced(s), nfc_single_spaced(t)) for s, t in zip(src[unpaired:pairs], eng[unpaired:pairs],
                                                                          strict=True)}
    src, eng = src[:pairs], eng[unpaired:]
    directory.mkdir(parents=True, exist_ok=True)
    for name, side in ((lang, src), ("eng", eng)):
        shuffled = list(side)
        random.Random(f"mine-{lang}-{name}").shuffle(shuffled)
        (directory / f"mono.{name}.txt").write_text("\n".join(shuffled) + "\n", encoding="utf-8")
    return truth, len(src) + len(eng)


def prf(mined: list[tuple[str, str, float]], truth: set[tuple[str, str]], threshold: float
        ) -> tuple[float, float, float, int]:
    """Precision, recall, F1 and the number mined of the pairs with margin >= ``threshold``."""
    kept = [(s, t) for s, t, m in mined if m >= threshold]
    correct = sum(p in truth for p in kept)
    p = correct / len(kept) if kept else 0.0
    r = correct / len(truth)
    return p, r, 2 * p * r / (p + r) if p + r else 0.0, len(kept)


def embed(export: str, texts_file: str, out: str) -> None:
    """The export's embeddings of the texts (chunks of ``EMBED_BATCH_SIZE``), saved as .npy (float32)."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  the export's tokeniser ops

    from transforms.encoders import EMBED_BATCH_SIZE

    model = tf.saved_model.load(export)
    texts = json.loads(pathlib.Path(texts_file).read_text(encoding="utf-8"))
    chunks = [model(tf.constant(texts[i:i + EMBED_BATCH_SIZE])).numpy() for i in range(0, len(texts), EMBED_BATCH_SIZE)]
    np.save(out, np.concatenate(chunks).astype(np.float32))


def knn(npy: str, k: int) -> None:
    """The k-NN comparison (run with faiss on the path; see the module docstring). Prints one line per method."""
    import faiss
    import numpy as np

    faiss.omp_set_num_threads(1)
    e = np.load(npy)
    e /= np.linalg.norm(e, axis=1, keepdims=True)

    def best_of_3(fn):
        times, result = [], None
        for _ in range(3):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        return min(times), result

    def blocked(dtype) -> np.ndarray:
        x = e.astype(dtype)
        out = np.empty((len(x), k), dtype=np.int64)
        for i in range(0, len(x), 1000):
            sim = x[i:i + 1000] @ x.T
            out[i:i + 1000] = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        return out

    def recall(found: np.ndarray, exact: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact, strict=True)]))

    print(f"k-NN: {len(e)} x {len(e)} sentences, dim {e.shape[1]}, k={k}, one thread; seconds are the best of 3")
    print(f"  {'method':<28} {'build s':>8} {'search s':>9} {'recall@k':>9}")
    t64, exact = best_of_3(lambda: blocked(np.float64))
    print(f"  {'numpy blocked float64':<28} {0:>8.3f} {t64:>9.3f} {1:>9.4f}")
    t32, found = best_of_3(lambda: blocked(np.float32))
    print(f"  {'numpy blocked float32':<28} {0:>8.3f} {t32:>9.3f} {recall(found, exact):>9.4f}")

    def flat():
        index = faiss.IndexFlatIP(e.shape[1])
        index.add(e)
        return index

    tb, index = best_of_3(flat)
    ts, (_, found) = best_of_3(lambda: index.search(e, k))
    print(f"  {'faiss IndexFlatIP':<28} {tb:>8.3f} {ts:>9.3f} {recall(found, exact):>9.4f}")

    def hnsw():
        index = faiss.IndexHNSWFlat(e.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.add(e)
        return index

    tb, index = best_of_3(hnsw)
    for ef in (16, 64, 256):
        index.hnsw.efSearch = ef
        ts, (_, found) = best_of_3(lambda: index.search(e, k))
        print(f"  {f'faiss HNSW32 efSearch={ef}':<28} {tb:>8.3f} {ts:>9.3f} {recall(found, exact):>9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langs", default="fra,deu", help=f"Comma-separated, among {','.join(LANGS)}.")
    parser.add_argument("--pairs", type=int, default=300,
                        help="Lines per language (FLORES devtest has 1012, Tatoeba's sets up to 1000).")
    parser.add_argument("--corpus", choices=CORPORA, default="flores",
                        help="FLORES devtest or LASER's Tatoeba test sets (the k-NN part reads FLORES).")
    parser.add_argument("--unpaired", type=float, default=0.0,
                        help="Fraction of sources without their translation on the English side (see above).")
    parser.add_argument("--export", default=None, help="A text_embedder export; default: all-MiniLM-L6-v2's.")
    parser.add_argument("--threshold", type=float, default=1.06, help="The --threshold reported per language.")
    parser.add_argument("--block_size", type=int, default=4000, help="The job's --block_size.")
    parser.add_argument("--faiss_path", default=None,
                        help="A folder with faiss-cpu and numpy (pip install --target); absent: no k-NN comparison.")
    parser.add_argument("--knn_lines", type=int, default=1012, help="FLORES lines per language in the k-NN part.")
    parser.add_argument("--workdir", default=str(REPO / "bench_out" / "mine_pairs"))
    parser.add_argument("--embed_only", nargs=3, metavar=("EXPORT", "TEXTS", "NPY"), help=argparse.SUPPRESS)
    parser.add_argument("--knn_only", metavar="NPY", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embed_only:
        embed(*args.embed_only)
        return
    if args.knn_only:
        knn(args.knn_only, K)
        return
    work = pathlib.Path(args.workdir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    export = args.export or export_minilm(work, env)
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    print(f"{len(langs)} languages x up to {args.pairs} {args.corpus} lines, both sides shuffled, "
          f"{args.unpaired:.0%} of sources unpaired; encoder {export}; "
          f"--margin_k={K} --block_size={args.block_size} --mode=intersect")
    print("(shared machine: 2 cores used by several engineers at once; timings vary with their load)")
    print(f"{'lang':<5} {'P':>6} {'R':>6} {'F1':>6} {'mined':>6} | {'best t':>6} {'P':>6} {'R':>6} {'F1':>6} | "
          f"{'wall s':>7} {'cpu s':>7} {'sent/s/core':>11} {'sent/s':>7} {'peak MiB':>8}")
    results = []
    for lang in langs:
        truth, sentences = make_input(lang, args.pairs, work / "input" / lang, round(args.unpaired * args.pairs),
                                      args.corpus)
        out = work / "out" / lang
        wall, cpu, rss, workers = measure([
            sys.executable, "-m", "pipelines.mine_pairs", f"--source={work / 'input' / lang / f'mono.{lang}.txt'}",
            f"--source_language={lang}", f"--target={work / 'input' / lang / 'mono.eng.txt'}",
            "--target_language=eng", f"--score_with={export}", f"--output_dir={out}", "--threshold=0",
            f"--margin_k={K}", f"--block_size={args.block_size}", "--write_jsonl"], env=env)
        rows = [json.loads(line) for f in sorted((out / "pairs" / "jsonl").glob("*.jsonl.gz"))
                for line in gzip.decompress(f.read_bytes()).splitlines()]
        mined = [(r["src_raw"], r["tgt_raw"], r["margin"]) for r in rows]
        results.append((mined, truth))
        at = prf(mined, truth, args.threshold)
        best_t = max(GRID, key=lambda t: (prf(mined, truth, t)[2], -t))
        best = prf(mined, truth, best_t)
        print(f"{lang:<5} {at[0]:>6.3f} {at[1]:>6.3f} {at[2]:>6.3f} {at[3]:>6} | {best_t:>6.2f} {best[0]:>6.3f} "
              f"{best[1]:>6.3f} {best[2]:>6.3f} | {wall:>7.1f} {cpu:>7.1f} {sentences / cpu:>11.1f} "
              f"{sentences / wall:>7.1f} {max(rss, workers):>8.0f}")
    mean = [sum(prf(m, t, args.threshold)[i] for m, t in results) / len(results) for i in range(3)]
    print(f"{'mean':<5} {mean[0]:>6.3f} {mean[1]:>6.3f} {mean[2]:>6.3f}")
    print("mean over languages at each threshold, P/R/F1 (one threshold for all, as --threshold sets it):")
    for t in GRID:
        p, r, f = (sum(prf(m, tr, t)[i] for m, tr in results) / len(results) for i in range(3))
        print(f"  {t:5.2f}: {p:.3f}/{r:.3f}/{f:.3f}")
    if args.faiss_path:
        texts = [s for lang in [*langs, "eng"] for s in corpus_lines("flores", lang, args.knn_lines)]
        (work / "knn_texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        npy = work / "knn_embeddings.npy"
        subprocess.run([sys.executable, __file__, "--embed_only", export, str(work / "knn_texts.json"), str(npy)],
                       env=env, check=True)
        knn_env = {**env, "PYTHONPATH": args.faiss_path, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1"}
        subprocess.run([sys.executable, __file__, "--knn_only", str(npy)], env=knn_env, check=True)


if __name__ == "__main__":
    main()
