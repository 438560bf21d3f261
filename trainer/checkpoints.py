"""Encoder checkpoints in the layouts users have, in and out: one table per layout, role by role.

A *role* names one weight of BERT independently of any layout (``word_embeddings``,
``layer_0/query/kernel``, ``mlm/output_bias``, ...). Each layout is a table from roles to the names
that layout stores them under; reading a checkpoint, a TF Hub module or writing one is the same
lookup in a different table. The layout of a source is recognised from its variable names
(``tf.train.list_variables`` / the SavedModel's variables), never from a flag:

- ``polyembed``: this trainer's checkpoints (``tf.train.Checkpoint(encoder=..., mlm=..., nsp=...)``).
- ``model_garden``: ``tf.train.Checkpoint(encoder=BertEncoder)`` and ``BertPretrainerV2.checkpoint_items``
  (``encoder``, ``masked_lm``, ``next_sentence.pooler_dense``).
- ``model_garden_trainer``: a Model Garden training run's checkpoint (``model=BertPretrainerV2``).
- ``tf1``: Google's BERT release (``bert/...``, ``cls/...``; ``bert_config.json`` beside it).
- ``hub_model_garden`` / ``hub_polyembed``: the variables of a TF Hub BERT encoder SavedModel exported
  by Model Garden's ``export_tfhub`` or by ``trainer.export_tfhub`` (TF Hub's common text API).

Nothing is loaded partially by accident: every encoder role must be found (or the job stops naming the
first that is not), every shape must agree with ``task.model.encoder`` (or the job stops naming the
variable and both shapes), and the head roles that are not in the source are logged by name.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from trainer.config import ConfigError

log = logging.getLogger("trainer")

_LAYER_PARTS = ("query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel", "value/bias",
                "attention_output/kernel", "attention_output/bias", "attention_norm/gamma", "attention_norm/beta",
                "intermediate/kernel", "intermediate/bias", "output/kernel", "output/bias", "output_norm/gamma",
                "output_norm/beta")
MLM_ROLES = ("mlm/transform/kernel", "mlm/transform/bias", "mlm/norm/gamma", "mlm/norm/beta", "mlm/output_bias")
NSP_ROLES = ("nsp/dense/kernel", "nsp/dense/bias", "nsp/logits/kernel", "nsp/logits/bias")
# Roles whose multi-head shape ([H, heads, size] / [heads, size, H]) some layouts store flat ([H, H]).
ATTENTION = re.compile(r"layer_\d+/(query|key|value|attention_output)/(kernel|bias)$")
_TF2_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def encoder_roles(num_layers: int) -> list[str]:
    roles = ["word_embeddings", "position_embeddings", "type_embeddings", "embeddings_norm/gamma",
             "embeddings_norm/beta"]
    roles += [f"layer_{i}/{part}" for i in range(num_layers) for part in _LAYER_PARTS]
    return [*roles, "pooler/kernel", "pooler/bias"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """``table``: role template -> name template(s) (alternatives in order). Templates may use ``{i}``
    (the layer), ``{block}`` (the layer's index among a Keras model's layers with weights) and
    ``{pooler}`` (the pooler's). ``transposed``: roles stored transposed. ``flat_attention``: attention
    kernels stored [H, H] as in TF1 BERT. ``kind``: where the names come from (``checkpoint`` keys or
    ``hub`` SavedModel variable names)."""

    name: str
    description: str
    table: Mapping[str, str | tuple[str, ...]]
    kind: str = "checkpoint"
    transposed: tuple[str, ...] = ()
    flat_attention: bool = False
    first_block: int = 4  # Keras layers with weights before the first transformer block

    def names(self, role: str, num_layers: int) -> tuple[str, ...]:
        """The names ``role`` may be stored under (empty when the layout has no such role)."""
        match = re.match(r"layer_(\d+)/(.+)$", role)
        template = self.table.get(f"layer_{{i}}/{match.group(2)}" if match else role)
        if template is None:
            return ()
        i = int(match.group(1)) if match else 0
        fields = {"i": i, "block": self.first_block + i, "pooler": self.first_block + num_layers}
        return tuple(t.format(**fields) for t in ((template,) if isinstance(template, str) else template))


def _keras_encoder(prefix: str, word: int, position: int, types: int, attention: str, attention_norm: str,
                   intermediate: str, output: str, output_norm: str) -> dict[str, str | tuple[str, ...]]:
    """Role table of a functional Keras BERT encoder saved as an object graph under ``prefix``."""
    block = f"{prefix}layer_with_weights-{{block}}/"
    table: dict[str, str | tuple[str, ...]] = {
        "word_embeddings": f"{prefix}layer_with_weights-{word}/embeddings",
        "position_embeddings": f"{prefix}layer_with_weights-{position}/embeddings",
        "type_embeddings": f"{prefix}layer_with_weights-{types}/embeddings",
        "embeddings_norm/gamma": f"{prefix}layer_with_weights-3/gamma",
        "embeddings_norm/beta": f"{prefix}layer_with_weights-3/beta",
        "pooler/kernel": f"{prefix}layer_with_weights-{{pooler}}/kernel",
        "pooler/bias": f"{prefix}layer_with_weights-{{pooler}}/bias",
    }
    for name in ("query", "key", "value"):
        for w in ("kernel", "bias"):
            table[f"layer_{{i}}/{name}/{w}"] = f"{block}{attention}/_{name}_dense/{w}"
    for w in ("kernel", "bias"):
        table[f"layer_{{i}}/attention_output/{w}"] = f"{block}{attention}/_output_dense/{w}"
        table[f"layer_{{i}}/intermediate/{w}"] = f"{block}{intermediate}/{w}"
        table[f"layer_{{i}}/output/{w}"] = f"{block}{output}/{w}"
    for w in ("gamma", "beta"):
        table[f"layer_{{i}}/attention_norm/{w}"] = f"{block}{attention_norm}/{w}"
        table[f"layer_{{i}}/output_norm/{w}"] = f"{block}{output_norm}/{w}"
    return table


def _model_garden_heads(mlm: str, nsp_dense: str, nsp_logits: str = "") -> dict[str, str]:
    table = {"mlm/transform/kernel": f"{mlm}dense/kernel", "mlm/transform/bias": f"{mlm}dense/bias",
             "mlm/norm/gamma": f"{mlm}layer_norm/gamma", "mlm/norm/beta": f"{mlm}layer_norm/beta",
             "mlm/output_bias": f"{mlm}output_bias.Sbias",
             "nsp/dense/kernel": f"{nsp_dense}kernel", "nsp/dense/bias": f"{nsp_dense}bias"}
    if nsp_logits:
        table.update({"nsp/logits/kernel": f"{nsp_logits}kernel", "nsp/logits/bias": f"{nsp_logits}bias"})
    return table


_MODEL_GARDEN_BLOCK = dict(attention="_attention_layer", attention_norm="_attention_layer_norm",
                           intermediate="_intermediate_dense", output="_output_dense",
                           output_norm="_output_layer_norm")

POLYEMBED = Layout(
    "polyembed", "a polyembed checkpoint",
    {**_keras_encoder("encoder/", word=0, types=1, position=2, attention="attention", attention_norm="attention_norm",
                      intermediate="intermediate", output="output_dense", output_norm="output_norm"),
     "mlm/transform/kernel": "mlm/dense/kernel", "mlm/transform/bias": "mlm/dense/bias",
     "mlm/norm/gamma": "mlm/norm/gamma", "mlm/norm/beta": "mlm/norm/beta", "mlm/output_bias": "mlm/output_bias",
     "nsp/dense/kernel": "nsp/dense/kernel", "nsp/dense/bias": "nsp/dense/bias",
     "nsp/logits/kernel": "nsp/out_proj/kernel", "nsp/logits/bias": "nsp/out_proj/bias"})

MODEL_GARDEN = Layout(
    "model_garden", "a Model Garden BertEncoder / BertPretrainerV2 checkpoint",
    {**_keras_encoder("encoder/", word=0, position=1, types=2, **_MODEL_GARDEN_BLOCK),
     # checkpoint_items save the word embeddings once, under the MLM head's name when it sorts first
     "word_embeddings": ("encoder/layer_with_weights-0/embeddings", "masked_lm/embedding_table"),
     **_model_garden_heads("masked_lm/", "next_sentence..pooler_dense/")})

_mg_trainer_encoder = _keras_encoder("model/encoder_network/", word=0, position=1, types=2, **_MODEL_GARDEN_BLOCK)
# The word embeddings are saved once, under the first path to them: the MLM head's when it sorts first.
_mg_trainer_encoder["word_embeddings"] = ("model/encoder_network/layer_with_weights-0/embeddings",
                                          "model/masked_lm/embedding_table")
MODEL_GARDEN_TRAINER = Layout(
    "model_garden_trainer", "a Model Garden training checkpoint (model=BertPretrainerV2)",
    {**_mg_trainer_encoder,
     **_model_garden_heads("model/masked_lm/", "model/classification_heads/0/dense/",
                           "model/classification_heads/0/out_proj/")})

_TF1_LAYER = "bert/encoder/layer_{i}/"
TF1 = Layout(
    "tf1", "a Google BERT (TF1) checkpoint",
    {"word_embeddings": "bert/embeddings/word_embeddings",
     "position_embeddings": "bert/embeddings/position_embeddings",
     "type_embeddings": "bert/embeddings/token_type_embeddings",
     "embeddings_norm/gamma": "bert/embeddings/LayerNorm/gamma",
     "embeddings_norm/beta": "bert/embeddings/LayerNorm/beta",
     **{f"layer_{{i}}/{name}/{w}": f"{_TF1_LAYER}attention/self/{name}/{w}"
        for name in ("query", "key", "value") for w in ("kernel", "bias")},
     **{f"layer_{{i}}/{role}/{w}": f"{_TF1_LAYER}{path}/{w}"
        for role, path in (("attention_output", "attention/output/dense"), ("intermediate", "intermediate/dense"),
                           ("output", "output/dense")) for w in ("kernel", "bias")},
     **{f"layer_{{i}}/{role}/{w}": f"{_TF1_LAYER}{path}/{w}"
        for role, path in (("attention_norm", "attention/output/LayerNorm"), ("output_norm", "output/LayerNorm"))
        for w in ("gamma", "beta")},
     "pooler/kernel": "bert/pooler/dense/kernel", "pooler/bias": "bert/pooler/dense/bias",
     "mlm/transform/kernel": "cls/predictions/transform/dense/kernel",
     "mlm/transform/bias": "cls/predictions/transform/dense/bias",
     "mlm/norm/gamma": "cls/predictions/transform/LayerNorm/gamma",
     "mlm/norm/beta": "cls/predictions/transform/LayerNorm/beta",
     "mlm/output_bias": "cls/predictions/output_bias",
     # TF1 BERT's next-sentence head is its pooler followed by one projection.
     "nsp/dense/kernel": "bert/pooler/dense/kernel", "nsp/dense/bias": "bert/pooler/dense/bias",
     "nsp/logits/kernel": "cls/seq_relationship/output_weights",
     "nsp/logits/bias": "cls/seq_relationship/output_bias"},
    transposed=("nsp/logits/kernel",), flat_attention=True)


def _hub_names(layer: str, embeddings_norm: str) -> dict[str, str]:
    """Variable names of a Keras BERT encoder as TF Hub exports hold them (``layer`` per block)."""
    table = {"word_embeddings": "word_embeddings/embeddings", "position_embeddings": "position_embedding/embeddings",
             "type_embeddings": "type_embeddings/embeddings", "embeddings_norm/gamma": f"{embeddings_norm}/gamma",
             "embeddings_norm/beta": f"{embeddings_norm}/beta", "pooler/kernel": "pooler_transform/kernel",
             "pooler/bias": "pooler_transform/bias"}
    parts = {"query": "self_attention/query", "key": "self_attention/key", "value": "self_attention/value",
             "attention_output": "self_attention/attention_output", "intermediate": "intermediate", "output": "output"}
    for role, path in parts.items():
        for w in ("kernel", "bias"):
            table[f"layer_{{i}}/{role}/{w}"] = f"{layer}/{path}/{w}"
    for role, path in (("attention_norm", "self_attention_layer_norm"), ("output_norm", "output_layer_norm")):
        for w in ("gamma", "beta"):
            table[f"layer_{{i}}/{role}/{w}"] = f"{layer}/{path}/{w}"
    return table


HUB_MODEL_GARDEN = Layout("hub_model_garden", "a TF Hub BERT encoder exported by Model Garden",
                          _hub_names("transformer/layer_{i}", "embeddings/layer_norm"), kind="hub")
# Also the variable names of this trainer's live models: ``model_variables`` maps them by this table.
HUB_POLYEMBED = Layout(
    "hub_polyembed", "a TF Hub BERT encoder exported by polyembed",
    {**_hub_names("transformer_{i}", "embeddings_layer_norm"),
     "mlm/transform/kernel": "mlm/transform/kernel", "mlm/transform/bias": "mlm/transform/bias",
     "mlm/norm/gamma": "mlm/transform_layer_norm/gamma", "mlm/norm/beta": "mlm/transform_layer_norm/beta",
     "mlm/output_bias": "mlm/output_bias",
     "nsp/dense/kernel": "next_sentence/pooler_dense/kernel", "nsp/dense/bias": "next_sentence/pooler_dense/bias",
     "nsp/logits/kernel": "next_sentence/logits/kernel", "nsp/logits/bias": "next_sentence/logits/bias"},
    kind="hub")

LAYOUTS = (POLYEMBED, MODEL_GARDEN, MODEL_GARDEN_TRAINER, TF1, HUB_MODEL_GARDEN, HUB_POLYEMBED)
WRITABLE = {"model_garden": MODEL_GARDEN, "tf1": TF1, "polyembed": POLYEMBED}


@dataclasses.dataclass
class Source:
    """Named arrays read from a checkpoint or a SavedModel, with the layout they follow."""

    where: str  # what the user passed, for messages
    shapes: dict[str, list[int]]
    read: Callable[[str], np.ndarray]
    layout: Layout | None = None
    num_layers: int = 0
    config: dict[str, Any] = dataclasses.field(default_factory=dict)  # bert_config.json, when there is one
    vocab_file: str = ""
    lower_case: bool | None = None

    def find(self, role: str) -> str | None:
        """The name ``role`` is stored under here, or None."""
        assert self.layout is not None
        return next((n for n in self.layout.names(role, self.num_layers) if n in self.shapes), None)

    def value(self, role: str) -> np.ndarray:
        """``role``'s array in this trainer's convention (multi-head attention shapes are left to
        ``fit``, which knows the target's)."""
        assert self.layout is not None
        name = self.find(role)
        if name is None:
            raise ConfigError(f"{self.where} ({self.layout.description}) has no {role} "
                              f"(looked for {', '.join(self.layout.names(role, self.num_layers))})")
        value = np.asarray(self.read(name))
        return value.T if role in self.layout.transposed else value


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a prefix, a checkpoint directory, a run's model_dir or a directory
    holding one checkpoint (as Google's BERT downloads: ``bert_model.ckpt.*`` with no index file)."""
    if not tf.io.gfile.isdir(path):
        return path
    found = tf.train.latest_checkpoint(path) or tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
    if found:
        return found
    indexes = sorted(tf.io.gfile.glob(os.path.join(path, "*.index")))
    if len(indexes) == 1:
        return indexes[0][:-len(".index")]
    raise ConfigError(f"task.init_checkpoint {path} is a directory without one checkpoint in it "
                      f"({len(indexes)} .index files and no 'checkpoint' file)")


def _detect(source: Source) -> None:
    """Sets the source's layout (by the names of its first layer's query kernel) and layer count."""
    for layout in LAYOUTS:
        source.layout = layout
        source.num_layers = 0
        while source.find(f"layer_{source.num_layers}/query/kernel"):
            source.num_layers += 1
        if source.num_layers and source.find("word_embeddings"):
            return
    source.layout = None
    sample = ", ".join(sorted(source.shapes)[:3])
    raise ConfigError(f"{source.where} is not a BERT encoder checkpoint this trainer knows (no layout of "
                      f"{', '.join(la.name for la in LAYOUTS)} matches its variables, e.g. {sample})")


def open_checkpoint(path: str, where: str = "task.init_checkpoint") -> Source:
    """A checkpoint in any known layout, with ``bert_config.json`` and ``vocab.txt`` beside it if present."""
    prefix = resolve_checkpoint(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        raise ConfigError(f"{where} {path}: cannot read a checkpoint there ({str(e).splitlines()[0]})") from None
    shapes = {k[:-len(_TF2_VALUE)] if k.endswith(_TF2_VALUE) else k: s
              for k, s in reader.get_variable_to_shape_map().items()}
    keys = {k[:-len(_TF2_VALUE)] if k.endswith(_TF2_VALUE) else k: k for k in reader.get_variable_to_shape_map()}
    source = Source(f"{where} {path}", shapes, lambda name: reader.get_tensor(keys[name]))
    _detect(source)
    folder = os.path.dirname(prefix)
    config_file = os.path.join(folder, "bert_config.json")
    if tf.io.gfile.exists(config_file):
        with tf.io.gfile.GFile(config_file) as f:
            source.config = json.load(f)
    if tf.io.gfile.exists(os.path.join(folder, "vocab.txt")):
        source.vocab_file = os.path.join(folder, "vocab.txt")
        source.lower_case = uncased_vocabulary(source.vocab_file)
    for run in (folder, os.path.dirname(folder)):  # one of our runs: <model_dir>/checkpoints/ckpt-N
        if source.layout is POLYEMBED and tf.io.gfile.exists(os.path.join(run, "params.yaml")):
            import yaml

            with tf.io.gfile.GFile(os.path.join(run, "params.yaml")) as f:
                data = (yaml.safe_load(f.read()) or {}).get("task", {}).get("train_data", {})
            if data.get("vocab_file"):
                source.vocab_file, source.lower_case = data["vocab_file"], bool(data.get("lower_case"))
            break
    return source


def uncased_vocabulary(vocab_file: str) -> bool:
    """True when no token of the vocabulary (besides ``[...]`` specials) has an upper-case letter: text must
    be lower-cased for it (Google's uncased vocabularies; cased ones hold thousands of such tokens)."""
    with tf.io.gfile.GFile(vocab_file) as f:
        return not any(t.strip() != t.strip().lower() for t in f if not t.startswith("["))


def same_file(a: str, b: str) -> bool:
    with tf.io.gfile.GFile(a, "rb") as fa, tf.io.gfile.GFile(b, "rb") as fb:
        return fa.read() == fb.read()


def with_source_defaults(cfg: Any, source: Source) -> Any:
    """``cfg`` with the source's vocabulary and casing as the data sections' defaults. A vocabulary or
    casing set explicitly (config file or override) that contradicts the source stops with one line."""
    from trainer.config import Params

    data = cfg.as_dict()
    for section in ("train_data", "validation_data"):
        d, key = data["task"][section], f"task.{section}"
        if source.vocab_file:
            if d["vocab_file"] and not same_file(d["vocab_file"], source.vocab_file):
                raise ConfigError(f"{key}.vocab_file {d['vocab_file']} is not the vocabulary of {source.where} "
                                  f"({source.vocab_file})")
            d["vocab_file"] = source.vocab_file
        if source.lower_case is not None:
            if f"{key}.lower_case" in cfg.explicit and d["lower_case"] != source.lower_case:
                raise ConfigError(f"{key}.lower_case={str(d['lower_case']).lower()} contradicts {source.where} "
                                  f"(do_lower_case={str(source.lower_case).lower()})")
            d["lower_case"] = source.lower_case
    if source.vocab_file or source.lower_case is not None:
        log.info("vocabulary %s, lower_case=%s: from %s", source.vocab_file or "(as configured)",
                 source.lower_case, source.where)
    return Params(data, cfg.explicit)


def open_hub_module(url: str, where: str = "task.hub_module_url") -> Source:
    """A TF Hub BERT encoder SavedModel (local or gs://): its variables by name, its ``vocab_file``
    asset and ``do_lower_case``."""
    try:
        module = tf.saved_model.load(url)
    except (OSError, tf.errors.NotFoundError, ValueError) as e:
        raise ConfigError(f"{where} {url}: cannot load a SavedModel there ({str(e).splitlines()[0]})") from None
    variables = {v.name.split(":")[0]: v for v in module.variables}
    source = Source(f"{where} {url}", {k: v.shape.as_list() for k, v in variables.items()},
                    lambda name: variables[name].numpy())
    _detect(source)
    if hasattr(module, "vocab_file"):
        source.vocab_file = module.vocab_file.asset_path.numpy().decode()
    if hasattr(module, "do_lower_case"):
        source.lower_case = bool(module.do_lower_case.numpy())
    source.module = module  # type: ignore[attr-defined]  # keeps the variables alive while reading
    return source


def architecture(source: Source) -> dict[str, int]:
    """The encoder's shape keys (``task.model.encoder``'s names) as the source holds them."""
    vocab, hidden = source.shapes[source.find("word_embeddings")]  # type: ignore[index]
    arch = {"vocab_size": vocab, "hidden_size": hidden, "num_layers": source.num_layers,
            "intermediate_size": source.shapes[source.find("layer_0/intermediate/kernel")][-1],  # type: ignore[index]
            "max_position_embeddings": source.shapes[source.find("position_embeddings")][0],  # type: ignore[index]
            "type_vocab_size": source.shapes[source.find("type_embeddings")][0]}  # type: ignore[index]
    query = source.shapes[source.find("layer_0/query/kernel")]  # type: ignore[index]
    if len(query) == 3:
        arch["num_attention_heads"] = query[1]
    elif "num_attention_heads" in source.config:
        arch["num_attention_heads"] = int(source.config["num_attention_heads"])
    return arch


def with_source_shape(cfg: Any, source: Source) -> Any:
    """``cfg`` with each ``task.model.encoder`` shape key that no config file or override set taken from
    the source (a key set explicitly is checked by ``check_architecture`` instead)."""
    from trainer.config import Params, validate

    data = cfg.as_dict()
    encoder = data["task"]["model"]["encoder"]
    taken = {}
    for key, value in architecture(source).items():
        if f"task.model.encoder.{key}" not in cfg.explicit and encoder[key] != value:
            encoder[key] = taken[key] = value
    if not taken:
        return cfg
    log.info("task.model.encoder from %s: %s", source.where, ", ".join(f"{k}={v}" for k, v in taken.items()))
    params = Params(data, cfg.explicit)
    validate(params)
    return params


def check_architecture(source: Source, enc_cfg: Any) -> None:
    """Stops with one line when ``task.model.encoder`` does not describe the source's encoder, or the
    source lacks one of its weights (so a partial checkpoint stops at start-up, not after the data)."""
    for role in encoder_roles(source.num_layers):
        if source.find(role) is None:
            source.value(role)  # raises, naming the role and the names looked for
    arch = architecture(source)
    if source.config:  # bert_config.json must agree with the variables it describes
        named = {"vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
                 "intermediate_size": "intermediate_size", "max_position_embeddings": "max_position_embeddings",
                 "type_vocab_size": "type_vocab_size"}
        for key, json_key in named.items():
            if json_key in source.config and int(source.config[json_key]) != arch[key]:
                raise ConfigError(f"{source.where}: bert_config.json says {json_key}={source.config[json_key]} "
                                  f"but the checkpoint holds {arch[key]}")
    if arch["num_layers"] != enc_cfg.num_layers:
        last = source.find(f"layer_{arch['num_layers'] - 1}/query/kernel")
        raise ConfigError(f"{source.where} has {arch['num_layers']} layers (up to {last}) but "
                          f"task.model.encoder.num_layers is {enc_cfg.num_layers}")
    if "num_attention_heads" in arch and arch["num_attention_heads"] != enc_cfg.num_attention_heads:
        raise ConfigError(f"{source.where} has {arch['num_attention_heads']} attention heads but "
                          f"task.model.encoder.num_attention_heads is {enc_cfg.num_attention_heads}")
    head = enc_cfg.hidden_size // enc_cfg.num_attention_heads
    for role, want in expected_shapes(enc_cfg, source.layout.flat_attention, head).items():  # type: ignore[union-attr]
        name = source.find(role)
        if name is not None and list(source.shapes[name]) != list(want):
            got = list(source.shapes[name])
            if role in source.layout.transposed:  # type: ignore[union-attr]
                got = got[::-1]
            if got != list(want):
                raise ConfigError(f"{source.where}: {name} has shape {list(source.shapes[name])} but "
                                  f"task.model.encoder gives {list(want)}")


def expected_shapes(enc_cfg: Any, flat_attention: bool, head: int) -> dict[str, list[int]]:
    """Each encoder role's shape for ``enc_cfg`` (attention flat as TF1 or split by heads as Keras)."""
    h, n = enc_cfg.hidden_size, enc_cfg.num_attention_heads
    out = {"word_embeddings": [enc_cfg.vocab_size, h], "position_embeddings": [enc_cfg.max_position_embeddings, h],
           "type_embeddings": [enc_cfg.type_vocab_size, h], "pooler/kernel": [h, h], "pooler/bias": [h]}
    for i in range(enc_cfg.num_layers):
        for name in ("query", "key", "value"):
            out[f"layer_{i}/{name}/kernel"] = [h, h] if flat_attention else [h, n, head]
            out[f"layer_{i}/{name}/bias"] = [h] if flat_attention else [n, head]
        out[f"layer_{i}/attention_output/kernel"] = [h, h] if flat_attention else [n, head, h]
        out[f"layer_{i}/intermediate/kernel"] = [h, enc_cfg.intermediate_size]
        out[f"layer_{i}/output/kernel"] = [enc_cfg.intermediate_size, h]
    return out


def model_variables(variables: list[tf.Variable], roles: list[str]) -> dict[str, tf.Variable]:
    """This trainer's variables by role (its models name them as its TF Hub exports do)."""
    by_name = {v.name.split(":")[0]: v for v in variables}
    out = {}
    for role in roles:
        name = next((n for n in HUB_POLYEMBED.names(role, 0) if n in by_name), None)
        if name is None:
            raise ConfigError(f"the model has no variable for {role} (looked for {HUB_POLYEMBED.names(role, 0)})")
        out[role] = by_name[name]
    return out


def fit(role: str, value: np.ndarray, shape: list[int], where: str, name: str) -> np.ndarray:
    """``value`` in ``shape``: attention weights move between flat [H, H] and split-by-heads shapes; any
    other difference stops with one line."""
    if list(value.shape) == list(shape):
        return value
    if ATTENTION.search(role) and value.size == int(np.prod(shape)):
        return value.reshape(shape)
    raise ConfigError(f"{where}: {name} has shape {list(value.shape)} but the model's {role} is {list(shape)}")


def restore(source: Source, variables: list[tf.Variable], enc_cfg: Any, heads: tuple[str, ...] = ()) -> list[str]:
    """Assigns every encoder role from ``source`` (all must be there) and the ``heads`` roles it has.
    Returns the head roles left as initialised."""
    check_architecture(source, enc_cfg)
    roles = encoder_roles(enc_cfg.num_layers)
    targets = model_variables(variables, roles + list(heads))
    values = {}
    for role in roles:
        values[role] = fit(role, source.value(role), targets[role].shape.as_list(), source.where, source.find(role))
    kept = []
    for role in heads:
        name = source.find(role)
        if name is None:
            kept.append(role)
            continue
        values[role] = fit(role, source.value(role), targets[role].shape.as_list(), source.where, name)
    for role, value in values.items():
        targets[role].assign(value.astype(targets[role].dtype.as_numpy_dtype))
    log.info("initialised %d weights from %s (%s, %d layers)", len(values), source.where,
             source.layout.description, source.num_layers)  # type: ignore[union-attr]
    if kept:
        log.info("not in %s, left as initialised: %s", source.where, ", ".join(kept))
    return kept


def read_roles(source: Source, roles: list[str]) -> dict[str, np.ndarray]:
    """The roles present in ``source`` (all of ``encoder_roles`` must be) as arrays in Keras shapes."""
    out = {}
    for role in roles:
        if source.find(role) is not None:
            out[role] = source.value(role)
    missing = [r for r in encoder_roles(source.num_layers) if r not in out]
    if missing:
        source.value(missing[0])  # raises, naming it
    return out


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
        if role in layout.transposed:
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
