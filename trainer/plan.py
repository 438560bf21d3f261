"""Start-up, once, in one place: the experiment's defaults, then the config files, then the overrides
(``load_config``); then ``resolve_init_source``: the experiment's ``prepare`` (defaults it takes from its
data), the init source (``task.init_checkpoint`` or ``task.hub_module_url``) and the architecture it
holds, and the run's vocabulary and casing (``resolve_vocabulary``), checked against the data's spec.
What it decides is written into the config, so into the run's ``params.yaml``; the floors below it
(``trainer.core``, ``trainer.checkpoints``, ``trainer.export``, the experiments) are handed it. An export
takes the run's vocabulary and casing from its ``params.yaml`` once (``export_vocabulary``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from specs import vocabulary as sv
from specs.errors import ConfigError
from trainer import experiments
from trainer.checkpoints.layouts import POLYEMBED
from trainer.checkpoints.opening import open_source
from trainer.checkpoints.restore import check_architecture
from trainer.checkpoints.sources import Source, architecture, open_hub_module
from trainer.core import config
from trainer.core.config import Params, validate
from trainer.core.data import check_complete, expand_input_path, read_feature_spec
from trainer.core.loop import Trainer
from trainer.core.run import PARAMS_FILE, run_params
from trainer.text.vocabulary import data_vocabulary, same_file, uncased_vocabulary

log = logging.getLogger("trainer")


def load_config(experiment: str, config_files: Sequence[str] = (), params_override: str = "") -> Params:
    """The experiment's defaults, then each YAML file in order, then the overrides."""
    if experiment not in experiments.NAMES:
        raise ConfigError(f"--experiment {experiment!r} is not one of {', '.join(experiments.NAMES)}")
    return config.layered(experiments.defaults(experiment), experiment, config_files, params_override)


def resolve_init_source(cfg: Params) -> tuple[Params, Source | None]:
    """Start-up after the config is loaded: the defaults the experiment takes from its data
    (``experiments.prepare``); ``task.init_checkpoint`` or ``task.hub_module_url`` opened and checked
    against ``task.model.encoder`` (one line and exit on a foreign layout or another shape), its shape and
    its vocabulary and casing as defaults; then the run's vocabulary and casing (``resolve_vocabulary``).
    Called once, before the data is read."""
    cfg = experiments.prepare(cfg)
    task = cfg.task
    source = None
    if task.init_checkpoint:
        source = open_source(task.init_checkpoint)
        with_run_vocabulary(source)
    elif task.hub_module_url:
        source = open_hub_module(task.hub_module_url)
    if source is not None:
        cfg = with_source(cfg, source)
    return resolve_vocabulary(cfg), source


def with_source(cfg: Params, source: Source) -> Params:
    """``cfg`` with the shape, settings, vocabulary and casing of the encoder source it starts from,
    checked against it (one line on a contradiction)."""
    cfg = with_source_shape(cfg, source)
    check_architecture(source, cfg.task.model.encoder)
    return with_source_defaults(cfg, source)


def with_run_vocabulary(source: Source) -> None:
    """A checkpoint of one of our runs (``<model_dir>/checkpoints/ckpt-N``) takes the vocabulary and casing
    the run recorded in its ``params.yaml``."""
    if source.layout is not POLYEMBED or not source.prefix:
        return
    folder = os.path.dirname(source.prefix)
    for run in (folder, os.path.dirname(folder)):
        if tf.io.gfile.exists(os.path.join(run, PARAMS_FILE)):
            data = run_params(run).get("task", {}).get("train_data", {})
            if data.get("vocab_file"):
                source.vocab_file, source.lower_case = data["vocab_file"], bool(data.get("lower_case"))
            return


def _data_spec(data_cfg: Any, key: str) -> tuple[dict[str, Any], str, str] | None:
    """The spec params of the data ``data_cfg.input_path`` names, where they were read and the folder of
    its first file; None where the data is not reachable from here (an export elsewhere: the settings
    alone decide)."""
    try:
        files = expand_input_path(data_cfg.input_path, f"{key}.input_path") if data_cfg.input_path else []
    except ConfigError:
        return None
    if not files:
        return None
    check_complete(data_cfg, key)
    if data_cfg.get("transform_output_dir"):  # the transform graph of a finished run only, checked first
        check_complete(data_cfg, key, "transform_output_dir")
    found, where = read_feature_spec(files, key)
    return dict(found.params), where, os.path.dirname(files[0])


def resolve_vocabulary(cfg: Params) -> Params:
    """``cfg`` with each data section's vocabulary and casing decided, for the whole run: the settings
    (config files, overrides, the init source, the experiment's ``prepare``), else the casing the
    data's spec records; the vocabulary loaded and checked against the data (``Vocabulary.check``),
    one line on a contradiction. An experiment that tokenises raw text (``Task.vocab_beside_data``) takes
    a ``vocab.txt`` next to the data when none is set. A section whose data is not reachable keeps its
    settings."""
    data = cfg.as_dict()
    beside_data = experiments.module(cfg.experiment).Task.vocab_beside_data
    for section in ("train_data", "validation_data"):
        data_cfg, key = cfg.task[section], f"task.{section}"
        found = _data_spec(data_cfg, key)
        if found is None:
            continue
        params, where, folder = found
        vocab_file = data_cfg.vocab_file
        if (not vocab_file and beside_data and not data_cfg.transform_output_dir
                and tf.io.gfile.exists(os.path.join(folder, "vocab.txt"))):
            vocab_file = os.path.join(folder, "vocab.txt")
        vocab = data_vocabulary(data_cfg, params, where, key, vocab_file)
        lower = vocab.lower_case if vocab is not None else sv.resolve_lower_case(
            data_cfg.lower_case, params, f"{key}.lower_case", where)
        if vocab is not None:
            data["task"][section]["vocab_file"] = vocab.path
        if lower is not None:
            data["task"][section]["lower_case"] = bool(lower)
    return Params(data, cfg.explicit)


def with_source_defaults(cfg: Any, source: Source) -> Any:
    """``cfg`` with the source's vocabulary and casing as the data sections' defaults. A vocabulary or
    casing set explicitly (config file or override) that contradicts the source stops with one line."""
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


def with_source_shape(cfg: Any, source: Source) -> Any:
    """``cfg`` with each ``task.model.encoder`` shape key that no config file or override set taken from
    the source (a key set explicitly is checked by ``check_architecture`` instead), and the settings the
    source's weights come with (a Hugging Face folder's activation and dropout; a sentence-transformers
    folder's ``task.model.pooling`` and ``normalize``, for an experiment that has them). An explicit
    activation other than the source's stops with one line (the weights would compute another function);
    an explicit dropout, pooling or normalisation is the user's choice, and is logged."""
    data = cfg.as_dict()
    model = data["task"]["model"]
    taken = {}
    sections = ((model["encoder"], "task.model.encoder", {**architecture(source), **source.encoder_settings}),
                (model, "task.model", source.model_settings))
    for section, prefix, values in sections:
        for key, value in values.items():
            if key not in section:
                log.info("%s of %s is not used by %s", key, source.where, cfg.experiment)
            elif f"{prefix}.{key}" not in cfg.explicit:
                if section[key] != value:
                    section[key] = taken[f"{prefix}.{key}"] = value
            elif section[key] != value and key == "hidden_activation":
                raise ConfigError(f"{prefix}.{key}={section[key]} contradicts {source.where} ({value})")
            elif section[key] != value and key in source.model_settings:
                log.info("%s.%s=%s (set) instead of %s's %s", prefix, key, section[key], source.where, value)
    if not taken:
        return cfg
    log.info("from %s: %s", source.where, ", ".join(f"{k}={v}" for k, v in taken.items()))
    params = Params(data, cfg.explicit)
    validate(params)
    return params


def run_vocab_and_casing(model_dir: str, cfg: Any, vocab_flag: str, lower_flag: str) -> tuple[str, bool | None]:
    """The vocabulary and casing the export carries: the flags, else what the run recorded in its
    ``params.yaml`` (else the config's). An uncased vocabulary (no upper-case tokens) means lower-casing
    unless told otherwise, and a flag that contradicts the run or the vocabulary stops with one line:
    a wrong casing turns ``Hello World`` into ``[UNK] [UNK]`` without any error. A casing still unknown
    is None: ``export_vocabulary`` then takes the one the training data's spec records (a run from
    before the vocabulary was recorded in ``params.yaml``)."""
    run = run_params(model_dir).get("task", {}).get("train_data", {})
    vocab = vocab_flag or run.get("vocab_file", "") or cfg.task.train_data.vocab_file
    if vocab_flag and run.get("vocab_file") and not same_file(vocab_flag, run["vocab_file"]):
        raise ConfigError(f"--vocab_file {vocab_flag} is not the vocabulary the run in {model_dir} trained with "
                          f"({run['vocab_file']})")
    uncased = bool(vocab) and uncased_vocabulary(vocab)
    if not lower_flag:
        recorded = run.get("lower_case", cfg.task.train_data.lower_case)
        return vocab, True if uncased else recorded if recorded is None else bool(recorded)
    lower = lower_flag == "true"
    if uncased and not lower:
        raise ConfigError(f"--do_lower_case=false but {vocab} is an uncased vocabulary (no upper-case tokens): "
                          "capitalised words would become [UNK]")
    if run.get("vocab_file") and cfg.experiment == "labse/train" and lower != bool(run.get("lower_case")):
        raise ConfigError(f"--do_lower_case={lower_flag} contradicts the run in {model_dir}, which tokenised with "
                          f"lower_case={str(bool(run.get('lower_case'))).lower()}")
    return vocab, lower


def trainer(cfg: Params, model_dir: str, tpu: str = "", strategy: Any = None,
            init_source: Source | None = None) -> Trainer:
    """The training loop for ``cfg``'s experiment (``init_source``: ``resolve_init_source``'s, when the
    caller already resolved ``cfg``; else it is resolved here)."""
    if init_source is None:
        cfg, init_source = resolve_init_source(cfg)
    return Trainer(cfg, experiments.make_task(cfg), model_dir, tpu, strategy, init_source)


def export_vocabulary(model_dir: str, cfg: Params, vocab_flag: str = "", lower_flag: str = "") -> tuple[str, bool]:
    """The vocabulary file and casing an export of the run in ``model_dir`` carries, decided once: the
    flags, else the run's (``run_vocab_and_casing``); a casing still unknown is the one the training
    data's spec records (cased when it records none); one line on a contradiction."""
    vocab_file, lower_case = run_vocab_and_casing(model_dir, cfg, vocab_flag, lower_flag)
    data_cfg, key = cfg.task.train_data, "task.train_data"
    params, where, _ = _data_spec(data_cfg, key) or ({}, key, "")
    vocab = data_vocabulary(data_cfg, params, where, key, vocab_file, lower_case)
    if vocab is None:
        return vocab_file, bool(lower_case if lower_case is not None else data_cfg.lower_case)
    return vocab.path, vocab.lower_case


def check_data(cfg: Params, mode: str) -> None:
    """The check against the data's spec, before any model is built: the sections ``mode`` reads."""
    if mode == "export":
        return
    checker = experiments.make_task(cfg)
    checker.dataset("validation_data" if mode in ("eval", "predict") else "train_data", check_only=True)
    if mode == "train_and_eval" and cfg.task.validation_data.input_path:
        checker.dataset("validation_data", check_only=True)


def run_task(args: Any) -> dict[str, float]:
    """``python -m trainer.task``: start-up once (config, prepare, init source, vocabulary, the data's
    spec), then the mode."""
    cfg = load_config(args.experiment, args.config_file, ",".join(args.params_override))
    cfg, init_source = resolve_init_source(cfg)
    module = experiments.module(args.experiment)
    if args.mode == "predict" and not hasattr(module, "predict"):
        raise ConfigError(f"--mode=predict is not defined for --experiment={args.experiment}")
    check_data(cfg, args.mode)
    run = trainer(cfg, args.model_dir, args.tpu, init_source=init_source)
    if args.mode == "train":
        return run.train()
    if args.mode == "train_and_eval":
        run.train(evaluate_every=cfg.trainer.validation_interval)
        return run.evaluate()
    run.restore_trained(f"--mode={args.mode}")
    if args.mode == "eval":
        return run.evaluate()
    if args.mode == "predict":
        module.predict(run)
        return {}
    vocab, lower = export_vocabulary(run.dirs.model, cfg)  # as the run recorded them in params.yaml
    module.export(run, run.dirs.export, vocab, lower)
    return {}
