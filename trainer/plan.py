"""Start-up, once, in one place: the experiment's defaults, then the config files, then the overrides
(``load_config``); the experiment's ``prepare`` (defaults it takes from its data); the init source
(``task.init_checkpoint`` or ``task.hub_module_url``) and the architecture it holds; the run's
vocabulary and casing; and the check against the data's spec (``start``). Every command starts here;
the floors below it (``trainer.core``, ``trainer.checkpoints``, ``trainer.export``, the experiments)
are handed what it decided and never decide it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from specs.errors import ConfigError
from trainer import experiments
from trainer.checkpoints.restore import check_architecture
from trainer.checkpoints.sources import Source, architecture, open_checkpoint, open_hub_module
from trainer.core import config
from trainer.core.config import Params, validate
from trainer.core.loop import Trainer
from trainer.core.run import run_params
from trainer.text.vocabulary import same_file, uncased_vocabulary

log = logging.getLogger("trainer")


def load_config(experiment: str, config_files: Sequence[str] = (), params_override: str = "") -> Params:
    """The experiment's defaults, then each YAML file in order, then the overrides."""
    if experiment not in experiments.NAMES:
        raise ConfigError(f"--experiment {experiment!r} is not one of {', '.join(experiments.NAMES)}")
    return config.layered(experiments.defaults(experiment), experiment, config_files, params_override)


def resolve_init_source(cfg: Params) -> tuple[Params, Source | None]:
    """``task.init_checkpoint`` or ``task.hub_module_url`` opened and checked against ``task.model.encoder``
    (one line and exit on a foreign layout or another shape), and ``cfg`` with the source's vocabulary and
    casing as the data defaults, and the defaults the experiment takes from its data
    (``experiments.prepare``). Called at start-up, before the data is checked."""
    cfg = experiments.prepare(cfg)
    task = cfg.task
    if task.init_checkpoint:
        source = open_checkpoint(task.init_checkpoint)
    elif task.hub_module_url:
        source = open_hub_module(task.hub_module_url)
    else:
        return cfg, None
    cfg = with_source_shape(cfg, source)
    check_architecture(source, cfg.task.model.encoder)
    return with_source_defaults(cfg, source), source


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
    the source (a key set explicitly is checked by ``check_architecture`` instead)."""
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


def run_vocab_and_casing(model_dir: str, cfg: Any, vocab_flag: str, lower_flag: str) -> tuple[str, bool | None]:
    """The vocabulary and casing the export carries: the flags, else what the run recorded in its
    ``params.yaml`` (else the config's). An uncased vocabulary (no upper-case tokens) means lower-casing
    unless told otherwise, and a flag that contradicts the run or the vocabulary stops with one line:
    a wrong casing turns ``Hello World`` into ``[UNK] [UNK]`` without any error. A casing still unknown
    is None: ``export_vocabulary`` then takes the one the training data's spec records."""
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
