"""Hands a trained encoder back: a run's latest checkpoint written as a Model Garden TF2 checkpoint or in
Google's TF1 BERT layout, with ``bert_config.json`` and ``vocab.txt`` beside it.

    python -m trainer.convert_checkpoint --model_dir=RUN --output_dir=OUT --layout=model_garden
    python -m trainer.convert_checkpoint --model_dir=RUN --output_dir=OUT --layout=tf1

``model_garden``: ``OUT/ckpt-1``, restorable by ``tf.train.Checkpoint(encoder=BertEncoder)`` and, for a
``bert/pretraining`` run, by ``tf.train.Checkpoint(**BertPretrainerV2.checkpoint_items)`` (``encoder``,
``masked_lm``, ``next_sentence.pooler_dense``), so Model Garden's ``export_tfhub`` takes it with
``--bert_config_file=OUT/bert_config.json --model_checkpoint_path=OUT/ckpt-1`` (plus
``--copy_pooler_dense_to_encoder`` for the next-sentence pooler). ``tf1``: ``OUT/bert_model.ckpt`` under
Google's variable names; TF1 BERT's pooler is its next-sentence head's dense layer, so a
``bert/pretraining`` run's next-sentence dense layer becomes ``bert/pooler/dense``.

The source may be any layout ``task.init_checkpoint`` reads (``--checkpoint_path``), so this also
converts between Model Garden and TF1 layouts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

if __name__ == "__main__":  # --help and a bad flag answer before TensorFlow's import (seconds)
    from trainer.cli import parse_early

    parse_early("convert_checkpoint")

from specs import run_folder
from specs.errors import ConfigError
from trainer.checkpoints.convert import convert
from trainer.checkpoints.opening import open_source
from trainer.cli import one_line_errors, parse_early
from trainer.core.run import run_params
from trainer.plan import with_run_vocabulary


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_early("convert_checkpoint", argv)
    logging.basicConfig(level=logging.INFO)

    def body() -> None:
        if not (args.model_dir or args.checkpoint_path):
            raise ConfigError("pass --model_dir (a run) or --checkpoint_path")
        run_folder.check_writable_place(args.output_dir, "--output_dir")
        source = open_source(args.checkpoint_path or args.model_dir,
                                 "--checkpoint_path" if args.checkpoint_path else "--model_dir")
        with_run_vocabulary(source)  # one of our runs: the vocabulary its params.yaml records
        convert(source, args.layout, args.output_dir, run_params(args.model_dir))

    return one_line_errors(body)


if __name__ == "__main__":
    sys.exit(main())
