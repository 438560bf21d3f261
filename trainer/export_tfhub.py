"""TF Hub exports of a trained checkpoint, in the formats users load today.

    python -m trainer.export_tfhub --experiment=bert/pretraining --model_dir=RUN \\
        --config_file=trainer/configs/bert_tiny.yaml --export_type=model_with_mlm \\
        --vocab_file=vocab.txt --do_lower_case=false --pooler=copy_from_nsp --export_path=OUT

``--export_type``:
- ``model``: the encoder. Inputs ``input_word_ids``, ``input_mask``, ``input_type_ids`` (int32,
  ``[batch, seq]``); outputs ``pooled_output``, ``default``, ``sequence_output``, ``encoder_outputs``.
  ``vocab_file`` (asset) and ``do_lower_case`` (variable) are attached. For ``labse/train``
  ``pooled_output`` (= ``default``) is the L2-normalised sentence embedding.
- ``model_with_mlm``: the same, plus an ``mlm`` sub-object that also takes ``masked_lm_positions`` and
  adds ``mlm_logits`` ``[batch, positions, vocab]`` (``bert/pretraining`` only).
- ``preprocessing``: ``tokenize`` (strings -> ragged ``[batch, (words), (pieces)]`` int32, with
  ``tokenize.get_special_tokens_dict()``), ``bert_pack_inputs`` (a list of one or two tokenised
  segments, ``seq_length`` default 128 -> the three encoder inputs) and calling the model on a batch of
  strings (one segment, length 128). Loading it needs ``import tensorflow_text`` (its ops).
- ``classifier`` / ``text_classifier`` (``bert/sentence_prediction``): the fine-tuned classifier over
  the encoder inputs (-> ``logits``), or over raw strings with the run's tokenisation inside (one text,
  or ``classify_pairs``); ``trainer.task --mode=export`` writes both.

When the run trained on tokens a tensorflow-transform job materialised (``transform_output_dir``), both
exports embed that job's own transform graph (``tft.TFTransformOutput(DIR).transform_features_layer()``),
so raw strings go through exactly the computation that wrote the training records: the preprocessing
model's call on strings runs it (at the job's ``seq_length``, not 128), and the encoder gains a
``text_preprocessor`` (strings -> its three inputs). ``tokenize`` and ``bert_pack_inputs`` keep TF Hub's
interface over ``--vocab_file``; the export checks on probe sentences that they give the transform
graph's ids and stops with one line if the vocabulary or casing differ.

``--pooler`` (encoder exports): ``trained`` (the pooler as trained: what LaBSE uses), ``untrained``
(re-initialised), ``copy_from_nsp`` (the next-sentence head's dense layer, Model Garden's
``copy_pooler_dense_to_encoder``), ``identity`` (identity kernel, zero bias: ``tanh`` of [CLS]).
All load with ``hub.load`` and ``hub.KerasLayer``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence

if __name__ == "__main__":  # --help and a bad flag answer before TensorFlow's import (seconds)
    from trainer.cli import parse_early

    parse_early("export_tfhub")

import tensorflow as tf

from specs import run_folder
from trainer import experiments, plan
from trainer.checkpoints.layouts import POLYEMBED
from trainer.checkpoints.opening import open_source
from trainer.checkpoints.sources import Source
from trainer.cli import one_line_errors, parse_early
from trainer.core.config import Params
from trainer.experiments.base import save_export
from trainer.export.preprocessing import save_preprocessing


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO)
    args = parse_early("export_tfhub", argv)

    def body() -> None:
        run_folder.check_writable_place(args.export_path, "--export_path")
        cfg = plan.load_config(args.experiment, args.config_file, ",".join(args.params_override))
        source = open_source(args.checkpoint_path, "--checkpoint_path") if args.checkpoint_path else None
        if source is not None and source.layout is not POLYEMBED:
            export_source(args, cfg, source)
            return
        vocab, lower = plan.export_vocabulary(args.model_dir, cfg, args.vocab_file, args.do_lower_case)
        if args.export_type == "preprocessing":
            save_preprocessing(args.export_path, vocab, lower, cfg.task.train_data.tokenizer,
                               cfg.task.train_data.transform_output_dir)
            return
        trainer = plan.trainer(cfg, args.model_dir or os.path.dirname(args.checkpoint_path),
                               strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
        if args.checkpoint_path:
            # every weight of the model must come from the checkpoint (no silent partial load)
            trainer.read_checkpoint(args.checkpoint_path, "--checkpoint_path")
        else:
            trainer.restore_trained("trainer.export_tfhub")
        save_export(trainer, args.export_type, args.export_path, vocab, lower, args.pooler)

    return one_line_errors(body)


def export_source(args: argparse.Namespace, cfg: Params, source: Source) -> None:
    """An encoder that is not one of our runs (a Hugging Face or sentence-transformers folder, a Model
    Garden, TF1 or TF Hub checkpoint) exported as it stands: the experiment's model built to the source's
    shape and settings (a sentence-transformers folder's pooling and normalisation become the export's
    ``default``), every encoder weight from the source, its vocabulary and casing unless the flags say
    otherwise (and then checked against it)."""
    cfg = plan.resolve_vocabulary(plan.with_source(experiments.prepare(cfg), source))
    with tempfile.TemporaryDirectory(prefix="export_tfhub_") as scratch:
        trainer = plan.trainer(cfg, scratch, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
                               init_source=source)
        trainer.restore()
        vocab, lower = plan.export_vocabulary(scratch, cfg, args.vocab_file, args.do_lower_case)
        if args.export_type == "preprocessing":
            save_preprocessing(args.export_path, vocab, lower, cfg.task.train_data.tokenizer)
            return
        save_export(trainer, args.export_type, args.export_path, vocab, lower, args.pooler)


if __name__ == "__main__":
    sys.exit(main())
