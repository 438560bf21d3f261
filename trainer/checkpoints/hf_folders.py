"""Hugging Face and sentence-transformers folders in: a ``BertModel`` / ``BertForPreTraining`` /
``BertForMaskedLM`` folder (``config.json``, ``model.safetensors``, ``vocab.txt``, ``tokenizer_config.json``),
or a sentence-transformers folder read through its ``modules.json`` (Transformer, then Pooling, Dense and
Normalize), opened as a ``trainer.checkpoints.sources.Source`` in the ``hf`` layout.

The weights are read with the ``safetensors`` library as numpy arrays (no torch). The architecture comes from
``config.json``; the vocabulary and casing from ``vocab.txt`` and ``tokenizer_config.json``; the settings the
weights only mean something with (``hidden_act``, and for a sentence-transformers folder the pooling and the
normalisation) become the run's (``Source.encoder_settings`` / ``Source.model_settings``). Whatever this trainer
cannot reproduce exactly stops here, at start-up, with one line naming it: a ``model_type`` other than bert, a
``position_embedding_type`` other than absolute, another ``layer_norm_eps``, a folder with only
``pytorch_model.bin``, a pooling mode other than cls (with its Tanh Dense, as LaBSE's) or mean.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from specs.errors import ConfigError
from trainer.checkpoints.layouts import HF, HF_ACTIVATIONS
from trainer.checkpoints.sources import Source, detect
from trainer.text.vocabulary import uncased_vocabulary

log = logging.getLogger("trainer")

WEIGHTS = "model.safetensors"
SHARDED_INDEX = "model.safetensors.index.json"
ST_MODULES = "modules.json"
_ST = "sentence_transformers.models."
_TANH = "torch.nn.modules.activation.Tanh"
# This trainer's encoder (trainer.modeling.encoder) computes every layer norm with this epsilon.
LAYER_NORM_EPS = 1e-12


def is_hf_folder(path: str) -> bool:
    """A local or gs:// folder that holds ``config.json`` or ``modules.json`` (not a TF checkpoint)."""
    return tf.io.gfile.isdir(path) and any(tf.io.gfile.exists(os.path.join(path, name))
                                           for name in ("config.json", ST_MODULES))


def _json(path: str, where: str) -> dict[str, Any]:
    try:
        with tf.io.gfile.GFile(path) as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: {path} is not valid JSON ({e})") from None
    if not isinstance(value, (dict, list)):
        raise ConfigError(f"{where}: {path} is not a JSON object")
    return value  # type: ignore[return-value]


def _local(path: str) -> str:
    """safetensors reads local files; a gs:// file is copied to a temporary file first."""
    if "://" not in path:
        return path
    import tempfile

    local = os.path.join(tempfile.mkdtemp(prefix="hf_weights_"), os.path.basename(path))
    tf.io.gfile.copy(path, local)
    return local


def _weights(folder: str, where: str) -> tuple[dict[str, list[int]], Callable[[str], np.ndarray]]:
    """Every tensor's shape in the folder's safetensors file(s) (one, or the shards an index names) and a
    reader of one tensor as float32 numpy."""
    from safetensors import SafetensorError, safe_open

    index = os.path.join(folder, SHARDED_INDEX)
    if tf.io.gfile.exists(index):
        files = sorted(set(_json(index, where).get("weight_map", {}).values()))
    elif tf.io.gfile.exists(os.path.join(folder, WEIGHTS)):
        files = [WEIGHTS]
    else:
        found = sorted(n for n in tf.io.gfile.listdir(folder) if n.endswith((".bin", ".h5", ".msgpack", ".pt")))
        raise ConfigError(f"{where}: no {WEIGHTS} in {folder}" + (
            f" (only {', '.join(found)}: this trainer reads safetensors weights; save them with transformers' "
            "save_pretrained(..., safe_serialization=True))" if found else ""))
    shapes: dict[str, list[int]] = {}
    owners: dict[str, Any] = {}
    for name in files:
        try:
            handle = safe_open(_local(os.path.join(folder, name)), framework="numpy")
        except (SafetensorError, OSError) as e:
            raise ConfigError(f"{where}: cannot read {os.path.join(folder, name)} ({e})") from None
        for key in handle.keys():
            piece = handle.get_slice(key)
            if piece.get_dtype() not in ("F32", "F16", "F64", "I64", "I32"):
                raise ConfigError(f"{where}: {key} is {piece.get_dtype()}, not a float32 or float16 tensor "
                                  "(save the model in float32)")
            shapes[key] = list(piece.get_shape())
            owners[key] = handle

    def read(key: str) -> np.ndarray:
        try:
            return np.asarray(owners[key].get_tensor(key), dtype=np.float32)
        except (SafetensorError, OSError, ValueError) as e:
            raise ConfigError(f"{where}: cannot read {key} ({type(e).__name__}: {e})") from None

    return shapes, read


def check_config(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The encoder settings ``config.json`` fixes (``task.model.encoder`` keys), after refusing, in one line,
    what this trainer's BERT does not compute."""
    model_type = config.get("model_type", "bert")
    if model_type != "bert":
        raise ConfigError(f"{where}: model_type {model_type!r} is not supported (only bert)")
    position = config.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise ConfigError(f"{where}: position_embedding_type {position!r} is not supported (only absolute)")
    eps = float(config.get("layer_norm_eps", LAYER_NORM_EPS))
    if abs(eps - LAYER_NORM_EPS) > 1e-15:
        raise ConfigError(f"{where}: layer_norm_eps {eps} is not supported (only {LAYER_NORM_EPS})")
    act = config.get("hidden_act", "gelu")
    if act not in HF_ACTIVATIONS:
        raise ConfigError(f"{where}: hidden_act {act!r} is not supported (only {', '.join(HF_ACTIVATIONS)})")
    settings: dict[str, Any] = {"hidden_activation": HF_ACTIVATIONS[act]}
    for ours, theirs in (("dropout_rate", "hidden_dropout_prob"), ("attention_dropout_rate",
                                                                    "attention_probs_dropout_prob"),
                         ("initializer_range", "initializer_range")):
        if theirs in config:
            settings[ours] = float(config[theirs])
    return settings


def _casing(folder: str, vocab: str, where: str) -> bool:
    """``do_lower_case`` of the folder's BERT tokenizer; when ``tokenizer_config.json`` does not say, the
    vocabulary's (uncased when it has no upper-case token), as for a TF1 download. This trainer's uncased
    tokenisation lower-cases and strips accents together, as BERT's does by default; a tokenizer that
    separates the two is refused."""
    path = os.path.join(folder, "tokenizer_config.json")
    config = _json(path, where) if tf.io.gfile.exists(path) else {}
    lower = bool(config["do_lower_case"]) if "do_lower_case" in config else uncased_vocabulary(vocab)
    strip = config.get("strip_accents")
    if strip is not None and bool(strip) != lower:
        raise ConfigError(f"{where}: tokenizer_config.json has do_lower_case={str(lower).lower()} with "
                          f"strip_accents={str(bool(strip)).lower()}, which this trainer's tokenisation does not do")
    if config.get("tokenize_chinese_chars") is False:
        raise ConfigError(f"{where}: tokenizer_config.json has tokenize_chinese_chars=false, which this trainer's "
                          "tokenisation does not do")
    return lower


def _st_modules(folder: str, where: str) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """A sentence-transformers folder's Transformer folder, the model settings its other modules fix
    (``pooling``, ``normalize``) and its Dense module (folder and config) when there is one."""
    modules = _json(os.path.join(folder, ST_MODULES), where)
    if not isinstance(modules, list) or not modules:
        raise ConfigError(f"{where}: {ST_MODULES} is not a list of modules")
    types = [str(m.get("type", "")) for m in modules]
    if types[0] != f"{_ST}Transformer":
        raise ConfigError(f"{where}: the first module is {types[0]!r}, not {_ST}Transformer")
    transformer = os.path.join(folder, modules[0].get("path", ""))
    settings: dict[str, Any] = {"normalize": False}
    dense = None
    rest = list(zip(types[1:], modules[1:], strict=True))
    if not rest or rest[0][0] != f"{_ST}Pooling":
        raise ConfigError(f"{where}: a Pooling module must follow the Transformer (modules: {', '.join(types)})")
    pooling = _json(os.path.join(folder, rest[0][1].get("path", ""), "config.json"), where)
    modes = [k[len("pooling_mode_"):] for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True]
    if isinstance(pooling.get("pooling_mode"), str):  # sentence-transformers 5+ writes one name
        modes = [pooling["pooling_mode"]]
    aliases = {"cls_token": "cls", "mean_tokens": "mean"}
    modes = [aliases.get(m, m) for m in modes]
    if len(modes) != 1 or modes[0] not in ("cls", "mean"):
        raise ConfigError(f"{where}: pooling {'+'.join(modes) or 'none'} is not supported (only cls or mean)")
    settings["pooling"] = modes[0]
    for kind, module in rest[1:]:
        if kind == f"{_ST}Dense" and dense is None and settings["pooling"] == "cls" and not settings["normalize"]:
            path = os.path.join(folder, module.get("path", ""))
            dense = {"folder": path, **_json(os.path.join(path, "config.json"), where)}
            if dense.get("activation_function") != _TANH or not dense.get("bias", True):
                raise ConfigError(f"{where}: Dense module {module.get('path')} ({dense.get('activation_function')}) "
                                  "is not supported (only a Tanh Dense with bias after cls pooling, as LaBSE's pooler)")
        elif kind == f"{_ST}Normalize" and not settings["normalize"]:
            settings["normalize"] = True
        else:
            raise ConfigError(f"{where}: module {kind} after {', '.join(types[:types.index(kind)])} is not supported "
                              "(Transformer, Pooling cls or mean, a Tanh Dense after cls, Normalize)")
    if settings["pooling"] == "cls" and dense is None:
        raise ConfigError(f"{where}: cls pooling without a Tanh Dense (the raw [CLS] vector) is not supported: this "
                          "trainer's cls embedding is the pooled [CLS] (dense/tanh)")
    return transformer, settings, dense


def open_hf_folder(path: str, where: str) -> Source:
    """The ``Source`` of a Hugging Face or sentence-transformers folder (``hf`` layout)."""
    where = f"{where} {path}"
    model_settings: dict[str, Any] = {}
    dense = None
    transformer = path
    if tf.io.gfile.exists(os.path.join(path, ST_MODULES)):
        transformer, model_settings, dense = _st_modules(path, where)
    config_file = os.path.join(transformer, "config.json")
    if not tf.io.gfile.exists(config_file):
        raise ConfigError(f"{where}: no config.json in {transformer}")
    config = _json(config_file, where)
    encoder_settings = check_config(config, where)
    shapes, read = _weights(transformer, where)
    if dense is not None:  # the Tanh Dense after cls pooling is this trainer's pooler (dense/tanh over [CLS])
        dense_shapes, dense_read = _weights(dense["folder"], f"{where} ({dense['folder']})")
        names = {"pooler.dense.weight": "linear.weight", "pooler.dense.bias": "linear.bias"}
        for ours, theirs in names.items():
            if theirs not in dense_shapes:
                raise ConfigError(f"{where}: the Dense module in {dense['folder']} has no {theirs}")
            shapes[ours] = dense_shapes[theirs]
        encoder_read = read

        def read(key: str) -> np.ndarray:
            return dense_read(names[key]) if key in names else encoder_read(key)

    source = Source(where, shapes, read, config=config)
    detect(source, (HF,))
    decoder = "cls.predictions.decoder.weight"  # transformers ties it to the word embeddings; we only can
    if decoder in shapes and not np.array_equal(read(decoder), read(source.find("word_embeddings"))):  # type: ignore[arg-type]
        raise ConfigError(f"{where}: the MLM decoder weights are not the word embeddings (untied output embeddings "
                          "are not supported)")
    vocab = os.path.join(transformer, "vocab.txt")
    if not tf.io.gfile.exists(vocab):
        raise ConfigError(f"{where}: no vocab.txt in {transformer} (only WordPiece BERT tokenizers are supported)")
    source.vocab_file, source.lower_case = vocab, _casing(transformer, vocab, where)
    source.encoder_settings, source.model_settings = encoder_settings, model_settings
    source.optional_roles = tuple(r for r in ("pooler/kernel", "pooler/bias") if source.find(r) is None)
    if source.optional_roles:  # BertForMaskedLM has no pooler: it stays as initialised, and is logged
        log.info("%s has no pooler (%s): it is left as initialised", where, config.get("architectures"))
    return source
