"""Experiment configuration: defaults per experiment, YAML files layered on top, then
``--params_override``; keys spelled as TF Model Garden spells them where it has them.

A config is a nested dict wrapped in ``Params`` for attribute access (``cfg.task.train_data.input_path``).
Every key a file or an override sets must exist in the experiment's defaults and its value must have
the default's type, so a typo or a wrong type fails at start-up with one line naming the key and the
file it came from rather than being silently ignored.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from specs.errors import ConfigError


class Params(Mapping):
    """Read-only attribute view of a nested dict."""

    def __init__(self, data: Mapping[str, Any], explicit: frozenset[str] = frozenset()) -> None:
        self._data = dict(data)
        # dotted keys a config file or --params_override set (defaults a checkpoint may supply are not)
        self.explicit = explicit

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:  # KeyError, as a Mapping's: ``in`` and ``get`` rely on it
        value = self._data[key]
        return Params(value) if isinstance(value, Mapping) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._data)

    def __repr__(self) -> str:
        return f"Params({self._data!r})"


def data_config(**overrides: Any) -> dict[str, Any]:
    d = {
        "input_path": "",  # comma-separated files or globs of (GZIP or plain) TFRecords
        "global_batch_size": 32,
        "is_training": True,
        "seq_length": 128,
        "shuffle_buffer_size": 10000,
        "cycle_length": 8,  # files read in parallel per input pipeline
        "drop_remainder": True,
        # training reads in whatever order parallel reads finish (faster); true: a seeded, repeatable
        # order (validation always is)
        "deterministic": False,
        # bert/pretraining
        "max_predictions_per_seq": 20,
        "use_next_sentence_label": True,
        "use_v2_feature_names": False,
        # labse/train: raw text is tokenised in the input pipeline with this vocabulary
        "vocab_file": "",
        # the vocabulary's casing; null: what the data's spec records (specs.vocabulary), else cased.
        # A setting that contradicts the data stops the run.
        "lower_case": None,
        "tokenizer": "fast",
        # labse/train on raw text: each batch cut to its longest real sequence (sentence-transformers' dynamic
        # padding: no work on padding). null: decided at start-up, on unless the run is on TPU (which compiles
        # one static shape), and recorded in params.yaml
        "trim_padding": None,
        # labse/train: the output dir of a tensorflow-transform run whose materialised token features
        # the records hold (read through TFTransformOutput); empty for raw text records
        "transform_output_dir": "",
        # read data whose polyembed run folder has no completion marker (an unfinished run), or
        # TFRecords written elsewhere (specs.run_folder)
        "allow_incomplete": False,
    }
    d.update(overrides)
    return d


# ``gelu``: the tanh approximation (Model Garden's, Google BERT's); ``exact_gelu``: the erf form (Hugging
# Face's ``gelu``). The others are Keras activations by name.
ACTIVATIONS = ("gelu", "exact_gelu", "relu", "tanh", "swish")
# The dual encoder's sentence embedding: the pooled [CLS] (LaBSE) or the masked token mean.
POOLINGS = ("cls", "mean")

ENCODER = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_activation": "gelu",
    "dropout_rate": 0.1,
    "attention_dropout_rate": 0.1,
    "initializer_range": 0.02,
}

TRAINER = {
    "train_steps": 1000000,
    "validation_steps": -1,  # -1: the whole validation set
    "validation_interval": 1000,
    "checkpoint_interval": 1000,
    "steps_per_loop": 100,  # steps per tf.function call; metrics and summaries are written after each
    "max_to_keep": 5,
    "seed": 42,
    "optimizer_config": {
        "optimizer": {
            "type": "adamw",
            "adamw": {
                "weight_decay_rate": 0.01,
                "beta_1": 0.9,
                "beta_2": 0.999,
                "epsilon": 1e-6,
                "global_clipnorm": 1.0,
                "exclude_from_weight_decay": ["LayerNorm", "layer_norm", "bias"],
                "lazy_sparse_updates": False,  # see trainer.core.optimization.LazyAdamW
            },
        },
        "learning_rate": {
            "type": "polynomial",
            "polynomial": {"initial_learning_rate": 1e-4, "decay_steps": 1000000, "end_learning_rate": 0.0,
                           "power": 1.0},
            "constant": {"learning_rate": 1e-4},
        },
        "warmup": {"type": "polynomial", "polynomial": {"warmup_steps": 10000, "power": 1.0}},
    },
}

RUNTIME = {
    "distribution_strategy": "mirrored",  # tpu | mirrored | one_device
    "tpu": "",  # TPU name, or "local" on a Vertex TPU VM
    "mixed_precision_dtype": "float32",  # float32 | bfloat16 (TPU, bf16 CPUs) | float16 (GPU, with loss scaling)
    "num_gpus": 0,
}

def experiment_defaults(model: dict[str, Any], train_data: dict[str, Any], validation_data: dict[str, Any],
                        trainer: dict[str, Any] | None = None, **task: Any) -> dict[str, Any]:
    """An experiment's ``DEFAULTS``: the sections every experiment has (where it starts from, its model,
    its data, the trainer and runtime sections) and the ``task`` keys of its own."""
    return {
        "task": {
            "init_checkpoint": "",  # any layout trainer.checkpoints reads (ours, Model Garden, Google BERT)
            "hub_module_url": "",  # or a TF Hub BERT encoder SavedModel (local or gs://) to start from
            "model": model,
            **task,
            "train_data": train_data,
            "validation_data": validation_data,
        },
        "trainer": copy.deepcopy(trainer if trainer is not None else TRAINER),
        "runtime": dict(RUNTIME),
    }


def _typed(key: str, default: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type of ``default`` (ints are accepted for floats)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"config key {key!r} from {where} is {value!r}, expected a {type(default).__name__}")
    return value


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str, prefix: str = "",
           explicit: set[str] | None = None) -> None:
    for k, v in update.items():
        key = f"{prefix}{k}"
        if k not in base:
            raise ConfigError(f"unknown config key {key!r} in {where} (known here: {', '.join(sorted(base))})")
        if isinstance(base[k], dict):
            if not isinstance(v, Mapping):
                raise ConfigError(f"config key {key!r} in {where} must be a mapping, got {v!r}")
            _merge(base[k], v, where, key + ".", explicit)
        else:
            base[k] = _typed(key, base[k], v, where)
            if explicit is not None:
                explicit.add(key)


def parse_overrides(text: str) -> dict[str, Any]:
    """``"a.b=1,c.d=x"`` as a nested dict; values are read as YAML scalars (``1e-4``, ``true``, ``[a, b]``).
    A comma inside brackets does not split, and a comma-separated part without ``=`` belongs to the
    value before it (``task.train_data.input_path=a/*,b/*``)."""
    out: dict[str, Any] = {}
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    entries: list[list[str]] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if "=" in part:
            entries.append(part.split("=", 1))
        elif entries:  # "input_path=a,b": a comma-separated value continues the previous entry
            entries[-1][1] += "," + part
        else:
            raise ConfigError(f"--params_override entry {part!r} is not key=value")
    for key, raw in entries:
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        names = key.strip().split(".")
        for name in names[:-1]:
            node = node.setdefault(name, {})
        node[names[-1]] = value
    return out


def layered(defaults: dict[str, Any], experiment: str, config_files: Sequence[str] = (),
            params_override: str = "") -> Params:
    """``defaults`` (the experiment's), then each YAML file in order, then the overrides; the names
    and types of ``defaults`` are the only keys accepted."""
    cfg = copy.deepcopy(defaults)
    cfg["experiment"] = experiment  # so a run's params.yaml can be passed back as --config_file
    explicit: set[str] = set()
    for path in config_files:
        import tensorflow as tf  # only for gfile, so gs:// config files work

        shipped = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", path)
        if not tf.io.gfile.exists(path) and "/" not in path and os.path.exists(shipped):
            path = shipped  # a bare name is one of the configs shipped in the package (e.g. on Vertex AI)
        if not tf.io.gfile.exists(path):
            raise ConfigError(f"--config_file {path} does not exist")
        with tf.io.gfile.GFile(path) as f:
            try:
                data = yaml.safe_load(f.read()) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"--config_file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"--config_file {path} must hold a mapping at top level")
        _merge(cfg, data, path, explicit=explicit)
    if params_override:
        _merge(cfg, parse_overrides(params_override), "--params_override", explicit=explicit)
    if cfg["experiment"] != experiment:
        raise ConfigError(f"the config files are for experiment {cfg['experiment']!r}, not --experiment {experiment}")
    params = Params(cfg, frozenset(explicit - {"experiment"}))
    validate(params)
    return params


def validate(cfg: Params) -> None:
    """Cross-key checks that would otherwise fail deep inside TensorFlow."""
    enc = cfg.task.model.encoder
    if enc.hidden_size % enc.num_attention_heads:
        raise ConfigError(f"task.model.encoder.hidden_size {enc.hidden_size} is not a multiple of "
                          f"num_attention_heads {enc.num_attention_heads}")
    for section in ("train_data", "validation_data"):
        data = cfg.task[section]
        if data.seq_length > enc.max_position_embeddings:
            raise ConfigError(f"task.{section}.seq_length {data.seq_length} exceeds "
                              f"task.model.encoder.max_position_embeddings {enc.max_position_embeddings}")
        if data.global_batch_size < 1:
            raise ConfigError(f"task.{section}.global_batch_size must be positive, got {data.global_batch_size}")
    if enc.hidden_activation not in ACTIVATIONS:
        raise ConfigError(f"task.model.encoder.hidden_activation {enc.hidden_activation!r} is not one of "
                          f"{', '.join(ACTIVATIONS)}")
    if "pooling" in cfg.task.model and cfg.task.model.pooling not in POOLINGS:
        raise ConfigError(f"task.model.pooling {cfg.task.model.pooling!r} is not one of {', '.join(POOLINGS)}")
    if cfg.task.init_checkpoint and cfg.task.hub_module_url:
        raise ConfigError("task.init_checkpoint and task.hub_module_url are both set: start from one of them")
    rt = cfg.runtime
    if rt.distribution_strategy not in ("tpu", "mirrored", "one_device"):
        raise ConfigError(f"runtime.distribution_strategy {rt.distribution_strategy!r} is not tpu, mirrored or "
                          "one_device")
    if rt.mixed_precision_dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"runtime.mixed_precision_dtype {rt.mixed_precision_dtype!r} is not float32, bfloat16 "
                          "or float16")
    opt = cfg.trainer.optimizer_config
    if opt.optimizer.type != "adamw":
        raise ConfigError(f"trainer.optimizer_config.optimizer.type {opt.optimizer.type!r} is not adamw")
    if opt.learning_rate.type not in ("polynomial", "constant"):
        raise ConfigError(f"trainer.optimizer_config.learning_rate.type {opt.learning_rate.type!r} is not "
                          "polynomial or constant")


def to_yaml(cfg: Params) -> str:
    return yaml.safe_dump(cfg.as_dict(), sort_keys=True)
