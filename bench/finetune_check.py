"""The fine-tuning real check, on CPU and time-boxed: does MLM pretraining help a tiny BERT on GLUE?

    python bench/finetune_check.py --workdir=/tmp/ftcheck                        # the real check
    python bench/finetune_check.py --workdir=/tmp/ftcheck --pretrain_seconds=60 \
        --learning_rates=3e-4 --finetune_epochs=1                                # a smoke run

(a) learns an uncased WordPiece vocabulary of ``--vocab_size`` with ``pipelines.vocab`` from the shared
wikitext-2 and Gutenberg text (``--text``; or takes ``--vocab_file``) and writes masked-LM records from
that text with ``pipelines.pretrain_data``, (b) MLM-pretrains a tiny BERT
(``trainer/configs/bert_tiny.yaml`` shapes) for ``--pretrain_seconds`` of wall clock, (c) writes SST-2
and STS-B records with ``pipelines.finetune_data`` from the shared GLUE files and fine-tunes
``bert/sentence_prediction`` on each, from the pretrained checkpoint and from random weights (same
architecture), for ``--finetune_epochs`` epochs at each learning rate of ``--learning_rates`` (each run
capped at ``--phase_seconds``), then evaluates on the whole dev set. The same epochs and grid for both
inits is the usual GLUE protocol (report the best of a small grid) applied to both sides alike; a fixed
epoch budget rather than a wall-clock one keeps a 1,000-example train split from being overfitted for
minutes. Prints every run (steps, training examples/s, the ratio of examples/s against the first
from-scratch run of the task, the dev metric: SST-2 accuracy, STS-B Spearman) and the best of the grid
per init. Pretraining is time-boxed by wall clock, so its step count (printed) depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from pipelines import finetune_data, pretrain_data, vocab
from trainer import plan
from trainer.core import loop
from transforms.core import runtime

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"
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
    return (f"trainer.optimizer_config.learning_rate.type=constant,"
            f"trainer.optimizer_config.learning_rate.constant.learning_rate={lr},"
            "trainer.optimizer_config.warmup.polynomial.warmup_steps=0")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--pretrain_seconds", type=float, default=840, help="Wall-clock budget of MLM pretraining.")
    p.add_argument("--phase_seconds", type=float, default=600, help="Wall-clock cap of each fine-tuning run.")
    p.add_argument("--finetune_epochs", type=float, default=3, help="Fine-tuning epochs over the train split.")
    p.add_argument("--learning_rates", default="1e-4,3e-4,1e-3",
                   help="Fine-tuning learning rates, each run from both inits.")
    p.add_argument("--text", action="append", default=[],
                   help="Pretraining text files (default: the shared wikitext-2 and Gutenberg English text).")
    p.add_argument("--vocab_file", default="",
                   help="An uncased WordPiece vocabulary (e.g. the shared bert-base-uncased one); default: one of "
                        "--vocab_size learned by pipelines.vocab from the pretraining text.")
    p.add_argument("--vocab_size", type=int, default=8000,
                   help="Size of the learned vocabulary: the MLM softmax over it is most of a tiny BERT's step on "
                        "CPU (30,522 tokens make it about 4x slower).")
    p.add_argument("--tasks", default="SST-2,STS-B")
    p.add_argument("--inits", default="random,pretrained",
                   help="Which inits to fine-tune. A --workdir that already holds a pretraining run continues it "
                        "for --pretrain_seconds more (to see what more pretraining buys: --inits=pretrained).")
    args = p.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    texts = args.text or [str(SHARED / "text" / "wikitext-2" / "wiki.valid.tokens.txt"),
                          str(SHARED / "text" / "wikitext-2" / "wiki.test.tokens.txt"),
                          str(SHARED / "text" / "gutenberg_novels" / "botchan.en.txt")]
    rows = []

    # (a) a vocabulary (learned from the pretraining text unless given) and pretraining records
    t = time.time()
    if not args.vocab_file:
        runtime.run_pipeline("vocab", [*(f"--input_patterns={x}" for x in texts), f"--vocab_size={args.vocab_size}",
                                       "--do_lower_case", f"--output_dir={work / 'vocab'}"], vocab.build)
        args.vocab_file = str(work / "vocab" / "vocab.txt")
    with open(args.vocab_file, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)  # lines as the vocabulary reader counts them (not str.splitlines)
    shapes = f"{TINY_SHAPES},task.model.encoder.vocab_size={vocab_size}"
    runtime.run_pipeline("pretrain_data", [*(f"--input_patterns={x}" for x in texts), f"--vocab_file={args.vocab_file}",
                                           "--do_lower_case=true", f"--max_seq_length={SEQ}",
                                           "--max_predictions_per_seq=10", "--dupe_factor=2", "--random_seed=7",
                                           f"--output_dir={work / 'pretrain'}"], pretrain_data.build)
    print(f"pretraining records written in {time.time() - t:.0f} s", flush=True)

    # (b) MLM pretraining, time-boxed
    cfg = plan.load_config("bert/pretraining", ["trainer/configs/bert_tiny.yaml"], ",".join([
        shapes, f"task.train_data.input_path={work / 'pretrain'}/pretrain-*", f"task.train_data.seq_length={SEQ}",
        "task.train_data.max_predictions_per_seq=10", f"task.train_data.vocab_file={args.vocab_file}",
        f"task.train_data.global_batch_size={BATCH}", "trainer.train_steps=100000000", constant_lr(1e-3)]))
    pre = plan.trainer(cfg, str(work / "bert"))
    r = train_for(pre, args.pretrain_seconds)
    rows.append({"phase": "MLM pretraining", "init": "random", **r, "metric": "train MLM accuracy",
                 "value": r["last_call"]["masked_lm_accuracy"]})
    print(json.dumps(rows[-1]), flush=True)

    # (c) fine-tuning from the pretrained and from random weights: the same epochs and the same
    # learning-rate grid for both, each run capped by the phase budget; the table shows every run and
    # the best of the grid per init (the usual GLUE protocol, applied to both sides alike).
    metric_of = {"SST-2": "accuracy", "STS-B": "spearman"}
    learning_rates = [float(x) for x in args.learning_rates.split(",")]
    for name in filter(None, args.tasks.split(",")):
        out = work / "glue" / name
        runtime.run_pipeline("finetune_data", [f"--task={name}", f"--input_data_dir={SHARED / 'glue' / name}",
                                               f"--vocab_file={args.vocab_file}", "--do_lower_case=true",
                                               f"--max_seq_length={SEQ}", f"--output_dir={out}"], finetune_data.build)
        train_size = json.loads((out / finetune_data.META_DATA_FILE).read_text())["train_data_size"]
        steps = max(1, round(args.finetune_epochs * train_size / BATCH))
        baseline = None
        for init in filter(None, args.inits.split(",")):
            for lr in learning_rates:
                override = [shapes, f"task.train_data.input_path={out}/train/*",
                            f"task.validation_data.input_path={out}/dev/*",
                            f"task.train_data.global_batch_size={BATCH}",
                            f"trainer.train_steps={steps}", constant_lr(lr), "runtime.distribution_strategy=one_device"]
                if init == "pretrained":
                    override.append(f"task.init_checkpoint={work / 'bert'}")
                cfg = plan.load_config("bert/sentence_prediction", [], ",".join(override))
                run_dir = work / "runs" / f"{name}-{init}-lr{lr:g}"
                shutil.rmtree(run_dir, ignore_errors=True)  # a fresh fine-tuning run, also in a reused workdir
                ft = plan.trainer(cfg, str(run_dir))
                r = train_for(ft, args.phase_seconds, max_steps=steps)
                result = ft.evaluate()
                key = metric_of.get(name, "metric")
                if baseline is None:
                    baseline = r["examples_per_second"]
                rows.append({"phase": f"{name} fine-tune", "init": f"{init} lr={lr:g}", **r,
                             "ratio_vs_random": r["examples_per_second"] / baseline, "metric": key,
                             "value": result[key], "dev_examples": int(result["examples"]), "task": name,
                             "from": init})
                print(json.dumps(rows[-1]), flush=True)

    print(f"\nMLM pretraining budget {args.pretrain_seconds:.0f} s; fine-tuning {args.finetune_epochs:g} epochs "
          f"(capped at {args.phase_seconds:.0f} s) per learning rate; tiny BERT (L2 H64), vocabulary {vocab_size} "
          f"({args.vocab_file}), seq {SEQ}, batch {BATCH}, "
          f"CPU threads visible: {len(os.sched_getaffinity(0))}")
    print(f"{'phase':<20}{'init':<22}{'steps':>8}{'ex/s':>10}{'ratio':>8}  {'dev metric':<22}")
    for row in rows:
        value = f"{row['metric']} {row['value']:.4f}"
        ratio = f"{row['ratio_vs_random']:.2f}" if "ratio_vs_random" in row else "-"
        print(f"{row['phase']:<20}{row['init']:<22}{row['steps']:>8}{row['examples_per_second']:>10.1f}"
              f"{ratio:>8}  {value:<22}")
    print("\nbest of the learning-rate grid on dev:")
    for name in filter(None, args.tasks.split(",")):
        best = {init: max((r for r in rows if r.get("task") == name and r["from"] == init), key=lambda r: r["value"])
                for init in filter(None, args.inits.split(","))}
        print(f"  {name} {metric_of.get(name, 'metric')}: " + " vs ".join(
            f"{init} {row['value']:.4f} ({row['init']})" for init, row in best.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
