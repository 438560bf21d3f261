"""Encoder checkpoint layouts: the names each layout users have stores BERT's weights under.

A *role* names one weight of BERT independently of any layout (``word_embeddings``,
``layer_0/query/kernel``, ``mlm/output_bias``, ...). Each layout is a table from roles to the names
that layout stores them under, so reading a checkpoint, a TF Hub module or writing one
(``trainer.checkpoints.sources``) is the same lookup in a different table:

- ``polyembed``: this trainer's checkpoints (``tf.train.Checkpoint(encoder=..., mlm=..., nsp=...)``).
- ``model_garden``: ``tf.train.Checkpoint(encoder=BertEncoder)`` and ``BertPretrainerV2.checkpoint_items``
  (``encoder``, ``masked_lm``, ``next_sentence.pooler_dense``).
- ``model_garden_trainer``: a Model Garden training run's checkpoint (``model=BertPretrainerV2``).
- ``tf1``: Google's BERT release (``bert/...``, ``cls/...``; ``bert_config.json`` beside it).
- ``hub_model_garden`` / ``hub_polyembed``: the variables of a TF Hub BERT encoder SavedModel exported
  by Model Garden's ``export_tfhub`` or by ``trainer.export_tfhub`` (TF Hub's common text API).

Tables only: no TensorFlow at import.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

_LAYER_PARTS = ("query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel", "value/bias",
                "attention_output/kernel", "attention_output/bias", "attention_norm/gamma", "attention_norm/beta",
                "intermediate/kernel", "intermediate/bias", "output/kernel", "output/bias", "output_norm/gamma",
                "output_norm/beta")
MLM_ROLES = ("mlm/transform/kernel", "mlm/transform/bias", "mlm/norm/gamma", "mlm/norm/beta", "mlm/output_bias")
NSP_ROLES = ("nsp/dense/kernel", "nsp/dense/bias", "nsp/logits/kernel", "nsp/logits/bias")
# Roles whose multi-head shape ([H, heads, size] / [heads, size, H]) some layouts store flat ([H, H]).
ATTENTION = re.compile(r"layer_\d+/(query|key|value|attention_output)/(kernel|bias)$")


def encoder_roles(num_layers: int) -> list[str]:
    roles = ["word_embeddings", "position_embeddings", "type_embeddings", "embeddings_norm/gamma",
             "embeddings_norm/beta"]
    roles += [f"layer_{i}/{part}" for i in range(num_layers) for part in _LAYER_PARTS]
    return [*roles, "pooler/kernel", "pooler/bias"]


@dataclasses.dataclass(frozen=True)
class Layout:
    """``table``: role template -> name template(s) (alternatives in order). Templates may use ``{i}``
    (the layer), ``{block}`` (the layer's index among a Keras model's layers with weights) and
    ``{pooler}`` (the pooler's). ``transposed``: role templates stored transposed (``transposes``).
    ``flat_attention``: attention
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

    def transposes(self, role: str) -> bool:
        """Whether ``role`` is stored transposed (torch's ``Linear.weight`` is [out, in])."""
        return re.sub(r"^layer_\d+/", "layer_{i}/", role) in self.transposed


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



def _hf_table() -> dict[str, str | tuple[str, ...]]:
    """Hugging Face ``BertModel`` / ``BertForPreTraining`` / ``BertForMaskedLM`` state-dict names (as in
    ``model.safetensors``): the encoder with or without the ``bert.`` prefix (a bare ``BertModel`` has none;
    the heads' models have it), LayerNorm as ``weight``/``bias`` or the old ``gamma``/``beta``."""
    layer = "encoder.layer.{i}."
    parts = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
             "attention_output": "attention.output.dense", "intermediate": "intermediate.dense",
             "output": "output.dense"}
    encoder: dict[str, tuple[str, ...]] = {
        "word_embeddings": ("embeddings.word_embeddings.weight",),
        "position_embeddings": ("embeddings.position_embeddings.weight",),
        "type_embeddings": ("embeddings.token_type_embeddings.weight",),
        "pooler/kernel": ("pooler.dense.weight",), "pooler/bias": ("pooler.dense.bias",)}
    norms = {"embeddings_norm": "embeddings.LayerNorm",
             "layer_{i}/attention_norm": f"{layer}attention.output.LayerNorm",
             "layer_{i}/output_norm": f"{layer}output.LayerNorm"}
    for role, path in norms.items():
        encoder[f"{role}/gamma"] = (f"{path}.weight", f"{path}.gamma")
        encoder[f"{role}/beta"] = (f"{path}.bias", f"{path}.beta")
    for role, path in parts.items():
        encoder[f"layer_{{i}}/{role}/kernel"] = (f"{layer}{path}.weight",)
        encoder[f"layer_{{i}}/{role}/bias"] = (f"{layer}{path}.bias",)
    table: dict[str, str | tuple[str, ...]] = {
        role: tuple(n for name in names for n in (name, f"bert.{name}")) for role, names in encoder.items()}
    head = "cls.predictions."
    table.update({"mlm/transform/kernel": f"{head}transform.dense.weight",
                  "mlm/transform/bias": f"{head}transform.dense.bias",
                  "mlm/norm/gamma": (f"{head}transform.LayerNorm.weight", f"{head}transform.LayerNorm.gamma"),
                  "mlm/norm/beta": (f"{head}transform.LayerNorm.bias", f"{head}transform.LayerNorm.beta"),
                  "mlm/output_bias": (f"{head}bias", f"{head}decoder.bias"),
                  # BertForPreTraining's next-sentence head is its pooler followed by one projection, as TF1's.
                  "nsp/dense/kernel": table["pooler/kernel"], "nsp/dense/bias": table["pooler/bias"],
                  "nsp/logits/kernel": "cls.seq_relationship.weight", "nsp/logits/bias": "cls.seq_relationship.bias"})
    return table


_HF_TABLE = _hf_table()
# ``kind="hf"``: the names of a ``model.safetensors`` in a Hugging Face folder (``config.json`` beside it).
HF = Layout("hf", "a Hugging Face BERT folder", _HF_TABLE, kind="hf",
            transposed=tuple(role for role in _HF_TABLE if role.endswith("kernel")), flat_attention=True)

# config.json's ``hidden_act`` -> ``task.model.encoder.hidden_activation`` (Hugging Face's ``gelu`` is the erf
# form; ``gelu_new`` and ``gelu_pytorch_tanh`` are the tanh approximation that Model Garden calls ``gelu``),
# and back for writing (``HF_ACTIVATION_NAMES``).
HF_ACTIVATIONS = {"gelu": "exact_gelu", "gelu_python": "exact_gelu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu",
                  "relu": "relu", "tanh": "tanh", "silu": "swish", "swish": "swish"}
HF_ACTIVATION_NAMES = {"exact_gelu": "gelu", "gelu": "gelu_pytorch_tanh", "relu": "relu", "tanh": "tanh",
                       "swish": "silu"}

LAYOUTS = (POLYEMBED, MODEL_GARDEN, MODEL_GARDEN_TRAINER, TF1, HUB_MODEL_GARDEN, HUB_POLYEMBED, HF)
WRITABLE = {"model_garden": MODEL_GARDEN, "tf1": TF1, "polyembed": POLYEMBED}
# ``convert_checkpoint --layout``: the checkpoint layouts above, and Hugging Face folders (``HF``'s names) for
# transformers and for sentence-transformers.
CONVERT_LAYOUTS = ("model_garden", "tf1", "hf", "sentence_transformers")
