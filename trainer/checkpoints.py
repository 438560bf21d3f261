"""Encoder checkpoints in and out: a checkpoint or a TF Hub module in any layout of
``trainer.checkpoint_layouts`` opened (its layout recognised from its variable names,
``tf.train.list_variables`` / the SavedModel's variables, never from a flag), checked against
``task.model.encoder``, restored into a model; and a checkpoint written in a layout.

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
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from specs.errors import ConfigError
from trainer.checkpoint_layouts import ATTENTION, HUB_POLYEMBED, LAYOUTS, POLYEMBED, Layout, encoder_roles

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

    source = Source(f"{where} {path}", shapes, read)
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
