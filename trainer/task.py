"""Entry point: ``python -m trainer.task --experiment=... --mode=... --model_dir=...``.

    python -m trainer.task --experiment=labse/train --mode=train_and_eval --model_dir=gs://b/run1 \\
        --config_file=trainer/configs/labse_base.yaml \\
        --params_override=task.train_data.input_path=gs://b/pairs/train-*,trainer.train_steps=20000 --tpu=local

Modes: ``train``, ``eval`` (the latest checkpoint), ``train_and_eval`` (evaluates every
``trainer.validation_interval`` steps and at the end), ``export`` (the latest checkpoint as the
experiment exports it under ``$AIP_MODEL_DIR`` or ``<model_dir>/export``: a TF Hub encoder, or for
``bert/sentence_prediction`` the classifier), ``predict`` (``bert/sentence_prediction``: the latest
checkpoint over ``task.validation_data`` as a GLUE submission TSV). A bad flag, config key or data spec ends
the process at start-up with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from specs.errors import ConfigError
from trainer import cli


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags (``trainer.cli.task_parser``); ``--help`` and a bad flag answer and exit here."""
    return cli.parse_early("task", argv)


def run(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    from trainer import experiments, plan  # TensorFlow only once the flags are read

    cfg = plan.load_config(args.experiment, args.config_file, ",".join(args.params_override))
    cfg, init_source = plan.resolve_init_source(cfg)  # the vocabulary may come with the checkpoint

    if args.mode == "predict" and not hasattr(experiments.module(args.experiment), "predict"):
        raise ConfigError(f"--mode=predict is not defined for --experiment={args.experiment}")
    if args.mode != "export":  # the data and its spec are checked before any model is built
        checker = experiments.make_task(cfg)
        checker.dataset("validation_data" if args.mode in ("eval", "predict") else "train_data", check_only=True)
        if args.mode == "train_and_eval" and cfg.task.validation_data.input_path:
            checker.dataset("validation_data", check_only=True)

    trainer = plan.trainer(cfg, args.model_dir, args.tpu, init_source=init_source)
    if args.mode == "train":
        return trainer.train()
    if args.mode == "train_and_eval":
        trainer.train(evaluate_every=cfg.trainer.validation_interval)
        return trainer.evaluate()
    trainer.restore_trained(f"--mode={args.mode}")
    if args.mode == "eval":
        return trainer.evaluate()
    if args.mode == "predict":
        experiments.module(args.experiment).predict(trainer)
        return {}
    # the vocabulary and casing the run trained with (as trainer.export_tfhub takes them), checked
    # against what the training data records
    vocab, lower = plan.export_vocabulary(trainer.dirs.model, cfg)
    experiments.module(args.experiment).export(trainer, trainer.dirs.export, vocab, lower)
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return cli.one_line_errors(lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
