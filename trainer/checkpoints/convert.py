"""A source's encoder (and heads) written in another layout (``python -m trainer.convert_checkpoint``):
Model Garden's object graph or Google's TF1 BERT names, with ``bert_config.json`` and ``vocab.txt``; or a
Hugging Face folder (``BertModel`` and its tokenizer) and a sentence-transformers folder around it, written
with ``safetensors.numpy`` (the project never imports torch)."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import safetensors.numpy
import tensorflow as tf

from specs.errors import ConfigError
from specs.vocabulary import Vocabulary
from trainer.checkpoints import layouts
from trainer.checkpoints.layouts import ATTENTION, Layout
from trainer.checkpoints.restore import read_roles
from trainer.checkpoints.sources import architecture
from trainer.text.tokenization import load_vocab
from trainer.text.vocabulary import uncased_vocabulary

log = logging.getLogger("trainer")


def _unescape(part: str) -> str:
    """An object-graph path element as its object's attribute name (``..`` is ``.``, ``.S`` is ``/``)."""
    return re.sub(r"\.(.)", lambda m: {".": ".", "S": "/"}.get(m.group(1), m.group(0)), part)


class _Node(tf.Module):
    """One object of a written object-graph checkpoint; children are attributes named as the path says."""


def named(layout: Layout, values: Mapping[str, np.ndarray], num_layers: int) -> dict[str, np.ndarray]:
    """``values`` (role -> array, multi-head attention shapes) under ``layout``'s first name for each role,
    flattened and transposed as the layout stores them (flattened first: torch's [out, in] is the flat kernel's
    transpose)."""
    out: dict[str, np.ndarray] = {}
    for role, value in values.items():
        names = layout.names(role, num_layers)
        if not names:
            continue
        if layout.flat_attention and ATTENTION.search(role):
            value = value.reshape([-1, value.shape[-1]] if role.endswith("attention_output/kernel")
                                  else [value.shape[0], -1] if role.endswith("kernel") else [-1])
        if layout.transposes(role):
            value = value.T
        out.setdefault(names[0], value)  # TF1's and HF's pooler is the NSP head's dense layer: one copy
    return out


def write(layout: Layout, values: Mapping[str, np.ndarray], num_layers: int, path: str) -> str:
    """Writes ``values`` (role -> array, multi-head shapes) as a ``layout`` checkpoint at ``path``; returns
    the prefix written. Object-graph layouts are written as the object graph their readers restore
    (``tf.train.Checkpoint(encoder=BertEncoder)`` matches ``encoder/layer_with_weights-N/...``)."""
    variables = named(layout, values, num_layers)
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    if layout.name == "tf1":
        graph = tf.Graph()
        with graph.as_default():
            for name, value in variables.items():
                tf.compat.v1.Variable(value, name=name)
            saver = tf.compat.v1.train.Saver()
            with tf.compat.v1.Session(graph=graph) as session:
                session.run(tf.compat.v1.global_variables_initializer())
                return saver.save(session, path, write_meta_graph=False)
    root: dict[str, _Node] = {}
    keep = []
    for name, value in variables.items():
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


_TANH = "torch.nn.modules.activation.Tanh"


def hf_config(arch: dict[str, int], encoder_params: dict[str, Any], source: Any, model_class: str,
              pad_id: int) -> dict[str, Any]:
    """``config.json`` of a Hugging Face BERT folder: Google's keys (the same names) with ``hidden_act`` in
    Hugging Face's words, whose ``gelu`` is the erf form (our ``gelu`` is the tanh approximation). The
    activation is the run's (a Hugging Face source's, translated when it was opened), else the source's
    ``bert_config.json``'s (Google's words)."""
    ours = encoder_params.get("hidden_activation") or source.config.get("hidden_act", "gelu")
    if ours not in layouts.HF_ACTIVATION_NAMES:
        raise ConfigError(f"{source.where}: the hidden activation {ours!r} has no Hugging Face hidden_act "
                          f"(convertible: {', '.join(layouts.HF_ACTIVATION_NAMES)})")
    config = bert_config(arch, encoder_params)
    config.update(model_type="bert", architectures=[model_class], hidden_act=layouts.HF_ACTIVATION_NAMES[ours],
                  layer_norm_eps=1e-12, position_embedding_type="absolute", pad_token_id=pad_id,
                  tie_word_embeddings=True)
    return config


def _write_json(path: str, data: Any) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")


def _save_safetensors(tensors: Mapping[str, np.ndarray], path: str) -> None:
    """``tensors`` as float32 safetensors (``safetensors.numpy``'s bytes written with ``tf.io.gfile``, so
    ``gs://`` works as for the other layouts); ``format: pt`` is the metadata transformers insists on."""
    data = safetensors.numpy.save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
                                  metadata={"format": "pt"})
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)


def write_hf(values: dict[str, np.ndarray], arch: dict[str, int], config: dict[str, Any], vocab: Vocabulary,
             vocab_file: str, output_dir: str) -> str:
    """A folder ``transformers`` loads (``BertModel``, or the heads' model ``config['architectures']`` names,
    whose encoder names carry ``bert.``) with its tokenizer: ``vocab.txt``, ``tokenizer_config.json`` and
    ``special_tokens_map.json`` with the run's casing (``strip_accents`` unset follows ``do_lower_case``, which
    is what our uncased tokenisation does). Returns the weights' path."""
    tensors = named(layouts.HF, values, arch["num_layers"])
    if config["architectures"] != ["BertModel"]:
        heads = {n for r in (*layouts.MLM_ROLES, "nsp/logits/kernel", "nsp/logits/bias")
                 for n in layouts.HF.names(r, arch["num_layers"])}
        tensors = {name if name in heads else f"bert.{name}": value for name, value in tensors.items()}
    path = os.path.join(output_dir, "model.safetensors")
    _save_safetensors(tensors, path)
    _write_json(os.path.join(output_dir, "config.json"), config)
    tf.io.gfile.copy(vocab_file, os.path.join(output_dir, "vocab.txt"), overwrite=True)
    specials = {"unk_token": vocab.tokens[vocab.unk_id], "sep_token": vocab.tokens[vocab.sep_id],
                "pad_token": vocab.tokens[vocab.pad_id], "cls_token": vocab.tokens[vocab.cls_id],
                "mask_token": vocab.tokens[vocab.mask_id]}
    _write_json(os.path.join(output_dir, "special_tokens_map.json"), specials)
    _write_json(os.path.join(output_dir, "tokenizer_config.json"),
                {"tokenizer_class": "BertTokenizer", "do_lower_case": vocab.lower_case, "strip_accents": None,
                 "tokenize_chinese_chars": True, "do_basic_tokenize": True,
                 "model_max_length": arch["max_position_embeddings"], **specials})
    return path


def write_sentence_transformers(values: dict[str, np.ndarray], arch: dict[str, int], model_params: dict[str, Any],
                                seq_length: int, output_dir: str) -> None:
    """The modules around the Hugging Face folder at ``output_dir`` (written first) that make it a
    sentence-transformers model, laid out as ``sentence-transformers/LaBSE`` is (the classic module names
    and config keys, which every release loads): Transformer, Pooling (the run's ``task.model.pooling``),
    for ``cls`` a Dense module holding the pooler (LaBSE's pooled [CLS] is dense/tanh over [CLS]; the Hugging
    Face pooler is not used by sentence-transformers), and Normalize when ``task.model.normalize``."""
    hidden = arch["hidden_size"]
    pooling = model_params.get("pooling", "cls")
    modules = [("", "Transformer"), ("1_Pooling", "Pooling")]
    _write_json(os.path.join(output_dir, "sentence_bert_config.json"),
                {"max_seq_length": seq_length, "do_lower_case": False})
    _write_json(os.path.join(output_dir, "config_sentence_transformers.json"),
                {"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    tf.io.gfile.makedirs(os.path.join(output_dir, "1_Pooling"))
    _write_json(os.path.join(output_dir, "1_Pooling", "config.json"),
                {"word_embedding_dimension": hidden, "pooling_mode_cls_token": pooling == "cls",
                 "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
                 "pooling_mode_mean_sqrt_len_tokens": False})
    if pooling == "cls":
        dense = os.path.join(output_dir, f"{len(modules)}_Dense")
        modules.append((os.path.basename(dense), "Dense"))
        tf.io.gfile.makedirs(dense)
        _write_json(os.path.join(dense, "config.json"),
                    {"in_features": hidden, "out_features": hidden, "bias": True, "activation_function": _TANH})
        _save_safetensors({"linear.weight": values["pooler/kernel"].T, "linear.bias": values["pooler/bias"]},
                          os.path.join(dense, "model.safetensors"))
    if model_params.get("normalize", False):
        modules.append((f"{len(modules)}_Normalize", "Normalize"))
        tf.io.gfile.makedirs(os.path.join(output_dir, modules[-1][0]))
    _write_json(os.path.join(output_dir, "modules.json"),
                [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
                 for i, (path, kind) in enumerate(modules)])


def convert(source: Any, layout_name: str, output_dir: str, params: dict[str, Any]) -> str:
    """Writes ``source``'s encoder (and heads), a ``trainer.checkpoints.sources.Source``, in ``layout_name``
    under ``output_dir``; returns the checkpoint prefix (the weights' file for a Hugging Face folder)."""
    if layout_name not in layouts.CONVERT_LAYOUTS:
        raise ConfigError(f"--layout {layout_name!r} is not one of {', '.join(layouts.CONVERT_LAYOUTS)}")
    hf = layout_name in ("hf", "sentence_transformers")
    layout = layouts.HF if hf else layouts.WRITABLE[layout_name]
    arch = architecture(source)
    if "num_attention_heads" not in arch:
        raise ConfigError(f"{source.where}: the number of attention heads is unknown (no bert_config.json)")
    task = params.get("task", {})
    # the run's settings, else those the source came with (a Hugging Face folder's activation and dropout,
    # a sentence-transformers folder's pooling and normalisation)
    model_params = {**source.model_settings, **task.get("model", {})}
    encoder_params = {**source.encoder_settings, **model_params.get("encoder", {})}
    vocab_file = task.get("train_data", {}).get("vocab_file", "") or source.vocab_file
    if hf and not vocab_file:
        raise ConfigError(f"--layout {layout_name} writes a tokenizer but {source.where} has no vocabulary "
                          "(pass a run's --model_dir, or a checkpoint with vocab.txt beside it)")
    values = read_roles(source, [*layouts.encoder_roles(source.num_layers), *layouts.MLM_ROLES, *layouts.NSP_ROLES])
    if layout_name != "model_garden" and "nsp/dense/kernel" in values and (
            source.find("nsp/dense/kernel") != source.find("pooler/kernel")):
        log.info("the pooler is the next-sentence head's dense layer (as TF1 BERT and BertForPreTraining train it)")
        values["pooler/kernel"], values["pooler/bias"] = values["nsp/dense/kernel"], values["nsp/dense/bias"]
    if layout_name == "sentence_transformers":  # an embedding model: the encoder only
        values = {role: values[role] for role in layouts.encoder_roles(source.num_layers)}
    if hf:
        lower_case = source.lower_case if source.lower_case is not None else uncased_vocabulary(vocab_file)
        vocab = load_vocab(vocab_file, lower_case)
        model_class = ("BertModel" if "mlm/output_bias" not in values else
                       "BertForPreTraining" if "nsp/logits/kernel" in values else "BertForMaskedLM")
        config = hf_config(arch, encoder_params, source, model_class, vocab.pad_id)
    heads, size = arch["num_attention_heads"], arch["hidden_size"] // arch["num_attention_heads"]
    for role in [r for r in values if layouts.ATTENTION.search(r)]:
        value = values[role]  # to the multi-head shapes the tables are written from
        shape = ([heads, size, arch["hidden_size"]] if role.endswith("attention_output/kernel") else
                 [arch["hidden_size"]] if role.endswith("attention_output/bias") else
                 [arch["hidden_size"], heads, size] if role.endswith("kernel") else [heads, size])
        values[role] = value.reshape(shape)
    tf.io.gfile.makedirs(output_dir)
    if hf:
        prefix = write_hf(values, arch, config, vocab, vocab_file, output_dir)
        if layout_name == "sentence_transformers":
            seq_length = task.get("train_data", {}).get("seq_length") or arch["max_position_embeddings"]
            write_sentence_transformers(values, arch, model_params, seq_length, output_dir)
        log.info("wrote %s (%s, %d layers) from %s", output_dir, layout_name, source.num_layers, source.where)
        return prefix
    name = "bert_model.ckpt" if layout_name == "tf1" else "ckpt"
    prefix = write(layout, values, source.num_layers, os.path.join(output_dir, name))
    with tf.io.gfile.GFile(os.path.join(output_dir, "bert_config.json"), "w") as f:
        f.write(json.dumps(bert_config(arch, encoder_params), indent=2, sort_keys=True) + "\n")
    if vocab_file:
        tf.io.gfile.copy(vocab_file, os.path.join(output_dir, "vocab.txt"), overwrite=True)
    log.info("wrote %s (%s, %d layers) from %s", prefix, layout.description, source.num_layers, source.where)
    return prefix


