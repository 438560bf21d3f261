"""A source's encoder checked against an encoder config and restored into a model's variables: every
encoder role must be found (or the job stops naming the first that is not), every shape must agree
(or the job stops naming the variable and both shapes), and the head roles the source lacks are logged
by name."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import tensorflow as tf

from specs.errors import ConfigError
from trainer.checkpoints.layouts import ATTENTION, HUB_POLYEMBED, encoder_roles
from trainer.checkpoints.sources import Source, architecture

log = logging.getLogger("trainer")


def check_architecture(source: Source, enc_cfg: Any) -> None:
    """Stops with one line when ``task.model.encoder`` does not describe the source's encoder, or the
    source lacks one of its weights (so a partial checkpoint stops at start-up, not after the data)."""
    for role in encoder_roles(source.num_layers):
        if source.find(role) is None and role not in source.optional_roles:
            source.value(role)  # raises, naming the role and the names looked for
    arch = architecture(source)
    if source.config:  # bert_config.json (config.json) must agree with the variables it describes
        named = {"vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
                 "intermediate_size": "intermediate_size", "max_position_embeddings": "max_position_embeddings",
                 "type_vocab_size": "type_vocab_size"}
        for key, json_key in named.items():
            if json_key in source.config and int(source.config[json_key]) != arch[key]:
                raise ConfigError(f"{source.where}: its config says {json_key}={source.config[json_key]} "
                                  f"but its weights hold {arch[key]}")
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
            if source.layout.transposes(role):  # type: ignore[union-attr]
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
    roles = [r for r in encoder_roles(enc_cfg.num_layers) if r not in source.optional_roles]
    targets = model_variables(variables, roles + list(source.optional_roles) + list(heads))
    values = {}
    for role in roles:
        values[role] = fit(role, source.value(role), targets[role].shape.as_list(), source.where, source.find(role))
    kept = []
    for role in [*source.optional_roles, *heads]:
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
    missing = [r for r in encoder_roles(source.num_layers) if r not in out and r not in source.optional_roles]
    if missing:
        source.value(missing[0])  # raises, naming it
    return out


