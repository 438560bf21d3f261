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

import logging
import os
import sys
from collections.abc import Sequence

from trainer import cli


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = cli.parse_early("task", argv)  # --help and a bad flag answer here, before TensorFlow's import

    from trainer import plan

    return cli.one_line_errors(lambda: plan.run_task(args))


if __name__ == "__main__":
    sys.exit(main())
