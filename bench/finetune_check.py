"""The fine-tuning real check, on CPU and time-boxed: does MLM pretraining help a tiny BERT on GLUE?

    python bench/finetune_check.py --workdir=/tmp/ftcheck --phase_seconds=600   # the real check
    python bench/finetune_check.py --workdir=/tmp/ftcheck --phase_seconds=60    # a smoke run

(a) writes masked-LM records with ``pipelines.pretrain_data`` from the shared wikitext-2 and Gutenberg
text (``--text``), (b) MLM-pretrains a tiny BERT (``trainer/configs/bert_tiny.yaml`` shapes) for
``--phase_seconds``, (c) writes SST-2 and STS-B records with ``pipelines.finetune_data`` from the shared
GLUE files and fine-tunes ``bert/sentence_prediction`` on each for ``--phase_seconds``, once from the
pretrained checkpoint and once from random weights (same architecture, same steps budget in time),
then evaluates on the whole dev set. Prints a table: phase, steps, training examples/s and the dev
metric (SST-2 accuracy, STS-B Spearman), plus the ratio of examples/s against the from-scratch run of
the same task (the baseline in the same run). Every phase is time-boxed by wall clock, so on a shared
machine the step counts (printed) differ between phases; compare the metrics with the steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from pipelines import finetune_data, pretrain_data
from trainer import config, train_lib
from transforms import runtime

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POLYEMBED_SHARED", REPO.parent / "shared")) / "data"
SEQ = 64
TINY_SHAPES = ("task.model.encoder.hidden_size=64,task.model.encoder.num_layers=2,"
               "task.model.encoder.num_attention_heads=2,task.model.encoder.intermediate_size=256,"
               "task.model.encoder.max_position_embeddings=128,task.model.encoder.vocab_size=30522")


def train_for(trainer: train_lib.Trainer, seconds: float, steps_per_call: int = 10) -> dict[str, float]:
    """Trains for ``seconds`` of wall clock after the first (tracing) step, in whole calls of
    ``steps_per_call`` steps, then checkpoints; returns steps, training examples/s (tracing excluded)
    and the tracing step's seconds."""
    trainer.task.dataset("train_data", check_only=True)
    trainer.restore()
    dataset = trainer.strategy.distribute_datasets_from_function(lambda ctx: trainer.task.dataset("train_data", ctx))
    iterator, train_steps = iter(dataset), trainer.make_train_steps()
    batch = trainer.cfg.task.train_data.global_batch_size
    start = time.time()
    train_steps(iterator, tf.constant(1))  # tracing, not counted in the budget
    timed_start, timed_steps = time.time(), 0
    while time.time() - timed_start < seconds:
        train_steps(iterator, tf.constant(steps_per_call))
        timed_steps += steps_per_call
    elapsed = time.time() - timed_start
    trainer.manager.save(checkpoint_number=trainer.step, check_interval=False)
    return {"steps": trainer.step, "examples_per_second": timed_steps * batch / max(elapsed, 1e-9),
            "trace_seconds": timed_start - start}


def constant_lr(lr: float) -> str:
    return (f"trainer.optimizer_config.learning_rate.type=constant,"
            f"trainer.optimizer_config.learning_rate.constant.learning_rate={lr},"
            "trainer.optimizer_config.warmup.polynomial.warmup_steps=0")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--phase_seconds", type=float, default=600, help="Wall-clock budget of each training phase.")
    p.add_argument("--text", action="append", default=[],
                   help="Pretraining text files (default: the shared wikitext-2 and Gutenberg English text).")
    p.add_argument("--vocab_file", default=str(SHARED / "vocab" / "bert-base-uncased.vocab.txt"))
    p.add_argument("--tasks", default="SST-2,STS-B")
    args = p.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    texts = args.text or [str(SHARED / "text" / "wikitext-2" / "wiki.valid.tokens.txt"),
                          str(SHARED / "text" / "wikitext-2" / "wiki.test.tokens.txt"),
                          str(SHARED / "text" / "gutenberg_novels" / "botchan.en.txt")]
    rows = []

    # (a) pretraining records
    t = time.time()
    runtime.run_pipeline("pretrain_data", [*(f"--input_patterns={x}" for x in texts), f"--vocab_file={args.vocab_file}",
                                           "--do_lower_case=true", f"--max_seq_length={SEQ}",
                                           "--max_predictions_per_seq=10", "--dupe_factor=2", "--random_seed=7",
                                           f"--output_dir={work / 'pretrain'}"], pretrain_data.build)
    print(f"pretraining records written in {time.time() - t:.0f} s", flush=True)

    # (b) MLM pretraining, time-boxed
    cfg = config.load_config("bert/pretraining", ["trainer/configs/bert_tiny.yaml"], ",".join([
        f"task.train_data.input_path={work / 'pretrain'}/pretrain-*", f"task.train_data.seq_length={SEQ}",
        "task.train_data.max_predictions_per_seq=10", f"task.train_data.vocab_file={args.vocab_file}",
        "task.train_data.global_batch_size=32", "trainer.train_steps=100000000", constant_lr(1e-3)]))
    pre = train_lib.Trainer(cfg, str(work / "bert"))
    r = train_for(pre, args.phase_seconds)
    rows.append({"phase": "MLM pretraining", "init": "random", **r, "metric": "", "value": float("nan")})
    print(json.dumps(rows[-1]), flush=True)

    # (c) fine-tuning from the pretrained and from random weights
    metric_of = {"SST-2": "accuracy", "STS-B": "spearman"}
    for name in filter(None, args.tasks.split(",")):
        out = work / "glue" / name
        runtime.run_pipeline("finetune_data", [f"--task={name}", f"--input_data_dir={SHARED / 'glue' / name}",
                                               f"--vocab_file={args.vocab_file}", "--do_lower_case=true",
                                               f"--max_seq_length={SEQ}", f"--output_dir={out}"], finetune_data.build)
        baseline = None
        for init in ("random", "pretrained"):
            override = [TINY_SHAPES, f"task.train_data.input_path={out}/train/*",
                        f"task.validation_data.input_path={out}/dev/*", "task.train_data.global_batch_size=32",
                        "trainer.train_steps=100000000", constant_lr(1e-4 if init == "pretrained" else 5e-4),
                        "runtime.distribution_strategy=one_device"]
            if init == "pretrained":
                override.append(f"task.init_checkpoint={work / 'bert'}")
            cfg = config.load_config("bert/sentence_prediction", [], ",".join(override))
            ft = train_lib.Trainer(cfg, str(work / "runs" / f"{name}-{init}"))
            r = train_for(ft, args.phase_seconds)
            result = ft.evaluate()
            key = metric_of.get(name, "metric")
            if baseline is None:
                baseline = r["examples_per_second"]
            rows.append({"phase": f"{name} fine-tune", "init": init, **r,
                         "ratio_vs_random": r["examples_per_second"] / baseline, "metric": key,
                         "value": result[key], "dev_examples": int(result["examples"])})
            print(json.dumps(rows[-1]), flush=True)

    print(f"\nphase budget {args.phase_seconds:.0f} s each, tiny BERT (L2 H64), seq {SEQ}, batch 32, CPU")
    print(f"{'phase':<20}{'init':<12}{'steps':>8}{'ex/s':>10}{'ratio':>8}  {'dev metric':<22}")
    for row in rows:
        value = f"{row['metric']} {row['value']:.4f}" if row["metric"] else "-"
        ratio = f"{row['ratio_vs_random']:.2f}" if "ratio_vs_random" in row else "-"
        print(f"{row['phase']:<20}{row['init']:<12}{row['steps']:>8}{row['examples_per_second']:>10.1f}"
              f"{ratio:>8}  {value:<22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
