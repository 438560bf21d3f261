"""The experiments, one module each, and the one registry that config, the entry points, submit and
export read.

An experiment module holds everything that experiment is: ``NAME``; ``DEFAULTS`` (every config key it
accepts, Model Garden's spelling where it has one); ``prepare(cfg)`` (defaults taken from the data, e.g.
``meta_data.json``, checked against explicit settings, at start-up); ``Task``, a ``BaseTask`` (model,
data, training step, metrics, evaluation; the loop in ``trainer.train_lib`` is shared);
``export(trainer, dir, vocab, lower_case)`` (``--mode=export``). Adding an experiment is its module
plus one line in ``NAMES``.

This package imports no TensorFlow until an experiment's module is asked for, so ``trainer.submit``
lists the names without it.
"""

from __future__ import annotations

import copy
import importlib
from types import ModuleType
from typing import Any

NAMES: dict[str, str] = {
    "bert/pretraining": "trainer.experiments.bert_pretraining",
    "labse/train": "trainer.experiments.labse",
    "bert/sentence_prediction": "trainer.experiments.sentence_prediction",
}


def module(name: str) -> ModuleType:
    """The experiment's module (``KeyError`` for an unknown name; config checks names first)."""
    return importlib.import_module(NAMES[name])


def defaults(name: str) -> dict[str, Any]:
    """A fresh copy of the experiment's config defaults."""
    return copy.deepcopy(module(name).DEFAULTS)


def prepare(cfg: Any) -> Any:
    """``cfg`` with the defaults the experiment takes from its data."""
    return module(cfg.experiment).prepare(cfg)


def unchanged(cfg: Any) -> Any:
    """``prepare`` of an experiment that takes nothing from its data (its ``dataset`` checks the spec
    beside the records)."""
    return cfg


def export_encoder(trainer: Any, export_dir: str, vocab_file: str, lower_case: bool) -> list[str]:
    """``export`` of an experiment whose product is the encoder: a TF Hub SavedModel under
    ``export_dir/encoder`` (``trainer.export_tfhub``)."""
    import os

    from trainer import export_tfhub

    return [export_tfhub.export(trainer, "model", os.path.join(export_dir, "encoder"), vocab_file, lower_case)]


class BaseTask:
    """What every experiment's ``Task`` shares (Model Garden's ``base_task.Task``, without its
    weight): the config (``cfg``, and ``task`` for ``cfg.task``), the head roles
    ``task.init_checkpoint`` restores beside the encoder (none unless the experiment names them), and
    ``dataset``, which reads a config section with the experiment's ``read_records`` (the signature of
    ``trainer.data.pretraining_dataset``)."""

    name: str
    head_roles: tuple[str, ...] = ()
    # config keys (dotted) a run's checkpoint is only valid with: eval, predict, export and resume
    # refuse a config that gives them other values than the run's params.yaml (Trainer.check_run_params)
    run_keys: tuple[str, ...] = ()
    read_records: Any

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.task = cfg.task

    def dataset(self, section: str, input_context: Any = None, check_only: bool = False,
                start_step: int = 0) -> Any:
        """The ``task.<section>`` batches (None with ``check_only``: the spec beside the records is
        checked only). ``start_step``: the step a resumed run starts at (see ``data.input_seed``)."""
        from trainer import data

        return self.read_records(self.task, self.task[section], f"task.{section}", input_context,
                                 data.input_seed(self.cfg.trainer.seed, start_step), check_only)


def make_task(cfg: Any) -> Any:
    """The experiment's ``Task`` for ``cfg``."""
    return module(cfg.experiment).Task(cfg)
