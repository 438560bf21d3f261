"""Encoder checkpoints in: a checkpoint or a TF Hub module in any layout of
``trainer.checkpoints.layouts`` opened (its layout recognised from its variable names,
``tf.train.list_variables`` / the SavedModel's variables, never from a flag), with the architecture it
holds; ``trainer.checkpoints.restore`` checks it against an encoder config and restores it into a model,
``trainer.checkpoints.convert`` writes it in another layout. Nothing here knows the trainer's config.

Nothing is loaded partially by accident: every encoder role must be found (or the job stops naming the
first that is not), every shape must agree with ``task.model.encoder`` (or the job stops naming the
variable and both shapes), and the head roles that are not in the source are logged by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from specs.errors import ConfigError
from trainer.checkpoints.layouts import LAYOUTS, Layout
from trainer.text.vocabulary import uncased_vocabulary

log = logging.getLogger("trainer")

_TF2_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


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
    prefix: str = ""  # the checkpoint's prefix, for a checkpoint file
    # Settings the weights only mean something with (a Hugging Face folder's ``hidden_act``, dropout; a
    # sentence-transformers folder's pooling and normalisation): ``task.model.encoder`` / ``task.model`` keys.
    encoder_settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    # encoder roles the source may lack (BertForMaskedLM has no pooler): left as initialised, and logged
    optional_roles: tuple[str, ...] = ()

    def find(self, role: str) -> str | None:
        """The name ``role`` is stored under here, or None."""
        assert self.layout is not None
        return next((n for n in self.layout.names(role, self.num_layers) if n in self.shapes), None)

    def shape(self, role: str) -> list[int]:
        """``role``'s shape in this trainer's convention (a transposed layout's reversed); ``role`` must exist."""
        assert self.layout is not None
        shape = list(self.shapes[self.find(role)])  # type: ignore[index]
        return shape[::-1] if self.layout.transposes(role) else shape

    def value(self, role: str) -> np.ndarray:
        """``role``'s array in this trainer's convention (multi-head attention shapes are left to
        ``fit``, which knows the target's)."""
        assert self.layout is not None
        name = self.find(role)
        if name is None:
            raise ConfigError(f"{self.where} ({self.layout.description}) has no {role} "
                              f"(looked for {', '.join(self.layout.names(role, self.num_layers))})")
        value = np.asarray(self.read(name))
        return value.T if self.layout.transposes(role) else value


@contextlib.contextmanager
def reading(where: str) -> Iterator[None]:
    """The one way a checkpoint is read (``open_checkpoint``'s reads, a run's resume, eval, predict,
    export, ``convert_checkpoint``): a missing, truncated or corrupt file, which TensorFlow reports as
    ``IndexError: Read less bytes than requested`` or an ``OpError``, and a checkpoint that does not
    hold the model's objects, become one line naming ``where`` (the flag or the checkpoint)."""
    try:
        yield
    except (IndexError, tf.errors.OpError, AssertionError) as e:
        detail = str(getattr(e, "message", "") or e).strip().splitlines()
        raise ConfigError(f"{where}: cannot read the checkpoint ({type(e).__name__}: "
                          f"{detail[0] if detail else 'no detail'})") from None


def resolve_checkpoint(path: str, where: str = "task.init_checkpoint") -> str:
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
    raise ConfigError(f"{where} {path} is a directory without one checkpoint in it "
                      f"({len(indexes)} .index files and no 'checkpoint' file)")


def detect(source: Source, layouts: tuple[Layout, ...] = LAYOUTS) -> None:
    """Sets the source's layout (by the names of its first layer's query kernel) and layer count."""
    for layout in layouts:
        source.layout = layout
        source.num_layers = 0
        while source.find(f"layer_{source.num_layers}/query/kernel"):
            source.num_layers += 1
        if source.num_layers and source.find("word_embeddings"):
            return
    source.layout = None
    sample = ", ".join(sorted(source.shapes)[:3])
    raise ConfigError(f"{source.where} is not a BERT encoder checkpoint this trainer knows (no layout of "
                      f"{', '.join(la.name for la in layouts)} matches its variables, e.g. {sample})")


def open_checkpoint(path: str, where: str = "task.init_checkpoint") -> Source:
    """A checkpoint in any known layout, with ``bert_config.json`` and ``vocab.txt`` beside it if present."""
    prefix = resolve_checkpoint(path, where)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        raise ConfigError(f"{where} {path}: cannot read a checkpoint there ({str(e).splitlines()[0]})") from None
    shapes = {k[:-len(_TF2_VALUE)] if k.endswith(_TF2_VALUE) else k: s
              for k, s in reader.get_variable_to_shape_map().items()}
    keys = {k[:-len(_TF2_VALUE)] if k.endswith(_TF2_VALUE) else k: k for k in reader.get_variable_to_shape_map()}

    def read(name: str) -> np.ndarray:
        with reading(f"{where} {path}"):
            return reader.get_tensor(keys[name])

    source = Source(f"{where} {path}", shapes, read, prefix=prefix)
    detect(source)
    folder = os.path.dirname(prefix)
    config_file = os.path.join(folder, "bert_config.json")
    if tf.io.gfile.exists(config_file):
        with tf.io.gfile.GFile(config_file) as f:
            source.config = json.load(f)
    if tf.io.gfile.exists(os.path.join(folder, "vocab.txt")):
        source.vocab_file = os.path.join(folder, "vocab.txt")
        source.lower_case = uncased_vocabulary(source.vocab_file)
    return source


def load_saved_model(path: str, where: str, loader: Callable[[str], Any] = tf.saved_model.load) -> Any:
    """A SavedModel (a TF Hub module, an export) loaded with ``loader`` (``hub.load`` for handles);
    an absent or unreadable one is one line naming ``where`` (the flag or key that gave it)."""
    try:
        return loader(path)
    except (OSError, tf.errors.OpError, ValueError) as e:
        detail = str(e).strip().splitlines()
        raise ConfigError(f"{where} {path}: cannot load a SavedModel there "
                          f"({detail[0] if detail else type(e).__name__})") from None


def open_hub_module(url: str, where: str = "task.hub_module_url") -> Source:
    """A TF Hub BERT encoder SavedModel (local or gs://): its variables by name, its ``vocab_file``
    asset and ``do_lower_case``."""
    module = load_saved_model(url, where)
    variables = {v.name.split(":")[0]: v for v in module.variables}
    source = Source(f"{where} {url}", {k: v.shape.as_list() for k, v in variables.items()},
                    lambda name: variables[name].numpy())
    detect(source)
    if hasattr(module, "vocab_file"):
        source.vocab_file = module.vocab_file.asset_path.numpy().decode()
    if hasattr(module, "do_lower_case"):
        source.lower_case = bool(module.do_lower_case.numpy())
    source.module = module  # type: ignore[attr-defined]  # keeps the variables alive while reading
    return source


def architecture(source: Source) -> dict[str, int]:
    """The encoder's shape keys (``task.model.encoder``'s names) as the source holds them."""
    vocab, hidden = source.shape("word_embeddings")
    arch = {"vocab_size": vocab, "hidden_size": hidden, "num_layers": source.num_layers,
            "intermediate_size": source.shape("layer_0/intermediate/kernel")[-1],
            "max_position_embeddings": source.shape("position_embeddings")[0],
            "type_vocab_size": source.shape("type_embeddings")[0]}
    query = source.shape("layer_0/query/kernel")
    if len(query) == 3:
        arch["num_attention_heads"] = query[1]
    elif "num_attention_heads" in source.config:
        arch["num_attention_heads"] = int(source.config["num_attention_heads"])
    return arch


