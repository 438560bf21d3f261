"""A source's encoder (and heads) written in another layout (``python -m trainer.convert_checkpoint``):
Model Garden's object graph or Google's TF1 BERT names, with ``bert_config.json`` and ``vocab.txt``."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from specs.errors import ConfigError
from trainer.checkpoints import layouts
from trainer.checkpoints.layouts import ATTENTION, Layout
from trainer.checkpoints.restore import read_roles
from trainer.checkpoints.sources import architecture

log = logging.getLogger("trainer")


def _unescape(part: str) -> str:
    """An object-graph path element as its object's attribute name (``..`` is ``.``, ``.S`` is ``/``)."""
    return re.sub(r"\.(.)", lambda m: {".": ".", "S": "/"}.get(m.group(1), m.group(0)), part)


class _Node(tf.Module):
    """One object of a written object-graph checkpoint; children are attributes named as the path says."""


def write(layout: Layout, values: Mapping[str, np.ndarray], num_layers: int, path: str) -> str:
    """Writes ``values`` (role -> array, Keras shapes) as a ``layout`` checkpoint at ``path``; returns
    the prefix written. Object-graph layouts are written as the object graph their readers restore
    (``tf.train.Checkpoint(encoder=BertEncoder)`` matches ``encoder/layer_with_weights-N/...``)."""
    named: dict[str, np.ndarray] = {}
    for role, value in values.items():
        names = layout.names(role, num_layers)
        if not names:
            continue
        if layout.transposes(role):
            value = value.T
        if layout.flat_attention and ATTENTION.search(role):
            value = value.reshape([-1, value.shape[-1]] if role.endswith("attention_output/kernel")
                                  else [value.shape[0], -1] if role.endswith("kernel") else [-1])
        named.setdefault(names[0], value)  # TF1's pooler is the NSP head's dense layer: one copy
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    if layout.name == "tf1":
        graph = tf.Graph()
        with graph.as_default():
            for name, value in named.items():
                tf.compat.v1.Variable(value, name=name)
            saver = tf.compat.v1.train.Saver()
            with tf.compat.v1.Session(graph=graph) as session:
                session.run(tf.compat.v1.global_variables_initializer())
                return saver.save(session, path, write_meta_graph=False)
    root: dict[str, _Node] = {}
    keep = []
    for name, value in named.items():
        parts = [_unescape(p) for p in name.split("/")]
        node = root.setdefault(parts[0], _Node())
        for part in parts[1:-1]:
            child = node.__dict__.get(part)
            if child is None:
                child = _Node()
                setattr(node, part, child)
            node = child
        variable = tf.Variable(value, name=parts[-1])
        setattr(node, parts[-1], variable)
        keep.append(variable)
    # save(), not write(): Model Garden restores with assert_existing_objects_matched, save_counter included
    return tf.train.Checkpoint(**root).save(path)
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


def convert(source: Any, layout_name: str, output_dir: str, params: dict[str, Any]) -> str:
    """Writes ``source``'s encoder (and heads), a ``trainer.checkpoints.sources.Source``, in ``layout_name``
    under ``output_dir``; returns the checkpoint prefix."""
    if layout_name not in ("model_garden", "tf1"):
        raise ConfigError(f"--layout {layout_name!r} is not model_garden or tf1")
    layout = layouts.WRITABLE[layout_name]
    arch = architecture(source)
    if "num_attention_heads" not in arch:
        raise ConfigError(f"{source.where}: the number of attention heads is unknown (no bert_config.json)")
    roles = [*layouts.encoder_roles(source.num_layers), *layouts.MLM_ROLES,
             *layouts.NSP_ROLES]
    values = read_roles(source, roles)
    if layout_name == "tf1" and "nsp/dense/kernel" in values:
        log.info("bert/pooler/dense is the next-sentence head's dense layer (as TF1 BERT trains it)")
        values["pooler/kernel"], values["pooler/bias"] = values["nsp/dense/kernel"], values["nsp/dense/bias"]
    heads, size = arch["num_attention_heads"], arch["hidden_size"] // arch["num_attention_heads"]
    for role in [r for r in values if layouts.ATTENTION.search(r)]:
        value = values[role]  # to the multi-head shapes the tables are written from
        shape = ([heads, size, arch["hidden_size"]] if role.endswith("attention_output/kernel") else
                 [arch["hidden_size"]] if role.endswith("attention_output/bias") else
                 [arch["hidden_size"], heads, size] if role.endswith("kernel") else [heads, size])
        values[role] = value.reshape(shape)
    tf.io.gfile.makedirs(output_dir)
    name = "bert_model.ckpt" if layout_name == "tf1" else "ckpt"
    prefix = write(layout, values, source.num_layers, os.path.join(output_dir, name))
    task = params.get("task", {})
    encoder_params = task.get("model", {}).get("encoder", {})
    with tf.io.gfile.GFile(os.path.join(output_dir, "bert_config.json"), "w") as f:
        f.write(json.dumps(bert_config(arch, encoder_params), indent=2, sort_keys=True) + "\n")
    vocab = task.get("train_data", {}).get("vocab_file", "") or source.vocab_file
    if vocab:
        tf.io.gfile.copy(vocab, os.path.join(output_dir, "vocab.txt"), overwrite=True)
    log.info("wrote %s (%s, %d layers) from %s", prefix, layout.description, source.num_layers, source.where)
    return prefix


