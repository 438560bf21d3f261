"""The experiments, one module each, and the one registry that start-up (``trainer.plan``), the
commands' parsers (``trainer.cli``) and ``trainer.submit`` read.

An experiment module holds everything that experiment is: ``NAME``; ``DEFAULTS`` (every config key it
accepts, Model Garden's spelling where it has one); ``prepare(cfg)`` (defaults taken from the data, e.g.
``meta_data.json``, checked against explicit settings, at start-up); its data reader; ``Task``, a
``trainer.experiments.base.BaseTask`` (model, data, training step, metrics, evaluation, and the exports
it offers; the loop in ``trainer.core.loop`` is shared); ``export(trainer, dir, vocab, lower_case)``
(``--mode=export``). Adding an experiment is its module plus one line in ``NAMES``.

This package imports no TensorFlow until an experiment's module is asked for, so ``--help`` and
``trainer.submit`` list the names without it.
"""

from __future__ import annotations

import copy
import importlib
from types import ModuleType
from typing import Any

NAMES: dict[str, str] = {
    "bert/pretraining": "trainer.experiments.bert_pretraining",
    "labse/train": "trainer.experiments.labse",
    "labse/distill": "trainer.experiments.distill",
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


def make_task(cfg: Any) -> Any:
    """The experiment's ``Task`` for ``cfg``."""
    return module(cfg.experiment).Task(cfg)
