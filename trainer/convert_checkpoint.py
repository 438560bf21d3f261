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

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from specs import run_folder
from specs.errors import ConfigError
from trainer import checkpoint_layouts
from trainer.cli import one_line_errors, parse_early

# TensorFlow (and trainer.checkpoints, which imports it) only once the flags are read, so --help and a
# mistyped flag answer at once

log = logging.getLogger("trainer")


def bert_config(arch: dict[str, int], encoder_params: dict[str, Any]) -> dict[str, Any]:
    """Google BERT's ``bert_config.json`` (also Model Garden's legacy ``BertConfig``) for the encoder."""
    return {"attention_probs_dropout_prob": encoder_params.get("attention_dropout_rate", 0.1),
            "hidden_act": encoder_params.get("hidden_activation", "gelu"),
            "hidden_dropout_prob": encoder_params.get("dropout_rate", 0.1),
            "hidden_size": arch["hidden_size"], "initializer_range": encoder_params.get("initializer_range", 0.02),
            "intermediate_size": arch["intermediate_size"],
            "max_position_embeddings": arch["max_position_embeddings"],
            "num_attention_heads": arch["num_attention_heads"], "num_hidden_layers": arch["num_layers"],
            "type_vocab_size": arch["type_vocab_size"], "vocab_size": arch["vocab_size"]}


def run_params(model_dir: str) -> dict[str, Any]:
    """The run's ``params.yaml`` (empty when the source is not one of our runs)."""
    import tensorflow as tf

    path = os.path.join(model_dir, "params.yaml")
    if not model_dir or not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return yaml.safe_load(f.read()) or {}


def convert(source: Any, layout_name: str, output_dir: str, params: dict[str, Any]) -> str:
    """Writes ``source``'s encoder (and heads), a ``trainer.checkpoints.Source``, in ``layout_name``
    under ``output_dir``; returns the checkpoint prefix."""
    import tensorflow as tf

    from trainer import checkpoints

    if layout_name not in ("model_garden", "tf1"):
        raise ConfigError(f"--layout {layout_name!r} is not model_garden or tf1")
    layout = checkpoint_layouts.WRITABLE[layout_name]
    arch = checkpoints.architecture(source)
    if "num_attention_heads" not in arch:
        raise ConfigError(f"{source.where}: the number of attention heads is unknown (no bert_config.json)")
    roles = [*checkpoint_layouts.encoder_roles(source.num_layers), *checkpoint_layouts.MLM_ROLES,
             *checkpoint_layouts.NSP_ROLES]
    values = checkpoints.read_roles(source, roles)
    if layout_name == "tf1" and "nsp/dense/kernel" in values:
        log.info("bert/pooler/dense is the next-sentence head's dense layer (as TF1 BERT trains it)")
        values["pooler/kernel"], values["pooler/bias"] = values["nsp/dense/kernel"], values["nsp/dense/bias"]
    heads, size = arch["num_attention_heads"], arch["hidden_size"] // arch["num_attention_heads"]
    for role in [r for r in values if checkpoint_layouts.ATTENTION.search(r)]:
        value = values[role]  # to the multi-head shapes the tables are written from
        shape = ([heads, size, arch["hidden_size"]] if role.endswith("attention_output/kernel") else
                 [arch["hidden_size"]] if role.endswith("attention_output/bias") else
                 [arch["hidden_size"], heads, size] if role.endswith("kernel") else [heads, size])
        values[role] = value.reshape(shape)
    tf.io.gfile.makedirs(output_dir)
    name = "bert_model.ckpt" if layout_name == "tf1" else "ckpt"
    prefix = checkpoints.write(layout, values, source.num_layers, os.path.join(output_dir, name))
    task = params.get("task", {})
    encoder_params = task.get("model", {}).get("encoder", {})
    with tf.io.gfile.GFile(os.path.join(output_dir, "bert_config.json"), "w") as f:
        f.write(json.dumps(bert_config(arch, encoder_params), indent=2, sort_keys=True) + "\n")
    vocab = task.get("train_data", {}).get("vocab_file", "") or source.vocab_file
    if vocab:
        tf.io.gfile.copy(vocab, os.path.join(output_dir, "vocab.txt"), overwrite=True)
    log.info("wrote %s (%s, %d layers) from %s", prefix, layout.description, source.num_layers, source.where)
    return prefix


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_early("convert_checkpoint", argv)
    logging.basicConfig(level=logging.INFO)

    def body() -> None:
        if not (args.model_dir or args.checkpoint_path):
            raise ConfigError("pass --model_dir (a run) or --checkpoint_path")
        run_folder.check_writable_place(args.output_dir, "--output_dir")
        from trainer import checkpoints

        source = checkpoints.open_checkpoint(args.checkpoint_path or args.model_dir,
                                             "--checkpoint_path" if args.checkpoint_path else "--model_dir")
        convert(source, args.layout, args.output_dir, run_params(args.model_dir))

    return one_line_errors(body)


if __name__ == "__main__":
    sys.exit(main())
