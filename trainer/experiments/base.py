"""What every experiment shares: ``BaseTask`` (the config, the head roles an init checkpoint restores,
reading a data section with the experiment's reader, and the exports it offers), the ``prepare`` of an
experiment that takes nothing from its data, and the exports of a trained model by ``--export_type``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

from specs.errors import ConfigError
from trainer.core.data import input_seed
from trainer.export import EXPORT_TYPES, POOLERS
from trainer.export.encoder import build_export_model, save_encoder
from trainer.export.preprocessing import save_preprocessing
from trainer.export.text_embedder import save_text_embedder


def unchanged(cfg: Any) -> Any:
    """``prepare`` of an experiment that takes nothing from its data (its ``dataset`` checks the spec
    beside the records)."""
    return cfg


class BaseTask:
    """What every experiment's ``Task`` shares (Model Garden's ``base_task.Task``, without its
    weight): the config (``cfg``, and ``task`` for ``cfg.task``), the head roles
    ``task.init_checkpoint`` restores beside the encoder (none unless the experiment names them),
    ``dataset``, which reads a config section with the experiment's ``read_records`` (the signature of
    ``trainer.experiments.bert_pretraining.pretraining_dataset``), and the exports it offers beside the
    encoder's (``exports``: ``--export_type`` -> ``save(trainer, path, vocab_file, lower_case)``)."""

    name: str
    head_roles: tuple[str, ...] = ()
    # config keys (dotted) a run's checkpoint is only valid with: eval, predict, export and resume
    # refuse a config that gives them other values than the run's params.yaml (Trainer.check_run_params)
    run_keys: tuple[str, ...] = ()
    read_records: Any
    # the reader tokenises raw text: a vocab.txt next to the data is the run's vocabulary when none is set
    vocab_beside_data = False
    # the model an encoder export saves around the encoder (None: the bare encoder)
    export_model: Callable[[Any], Any] | None = None
    exports: ClassVar[dict[str, Callable[..., str]]] = {}

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.task = cfg.task

    def dataset(self, section: str, input_context: Any = None, check_only: bool = False,
                start_step: int = 0) -> Any:
        """The ``task.<section>`` batches (None with ``check_only``: the spec beside the records is
        checked only). ``start_step``: the step a resumed run starts at (see ``input_seed``)."""
        return self.read_records(self.task, self.task[section], f"task.{section}", input_context,
                                 input_seed(self.cfg.trainer.seed, start_step), check_only)


def save_export(trainer: Any, export_type: str, export_path: str, vocab_file: str, lower_case: bool,
                pooler: str = "trained") -> str:
    """Writes one export of ``trainer``'s current weights (restore first) to ``export_path``, with the
    run's vocabulary and casing as ``trainer.plan.export_vocabulary`` decided them."""
    if export_type not in EXPORT_TYPES:
        raise ConfigError(f"--export_type {export_type!r} is not one of {EXPORT_TYPES}")
    if pooler not in POOLERS:
        raise ConfigError(f"--pooler {pooler!r} is not one of {POOLERS}")
    data_cfg = trainer.cfg.task.train_data
    transform_dir = data_cfg.transform_output_dir
    lower_case = bool(lower_case)
    if export_type == "preprocessing":
        save_preprocessing(export_path, vocab_file, lower_case, data_cfg.tokenizer, transform_dir)
        return export_path
    if export_type in ("classifier", "text_classifier"):
        if export_type not in trainer.task.exports:
            raise ConfigError(f"--export_type={export_type} needs a bert/sentence_prediction run, not "
                              f"{trainer.cfg.experiment}")
        return trainer.task.exports[export_type](trainer, export_path, vocab_file, lower_case)
    model = build_export_model(trainer.cfg.task, trainer.parts, "model" if export_type == "text_embedder" else
                               export_type, pooler, trainer.task.export_model)
    if export_type == "text_embedder":
        return save_text_embedder(model, export_path, vocab_file, lower_case, data_cfg.seq_length, data_cfg.tokenizer,
                                  transform_dir)
    save_encoder(model, export_path, vocab_file, lower_case, transform_dir)
    return export_path


def export_encoder(trainer: Any, export_dir: str, vocab_file: str, lower_case: bool) -> list[str]:
    """``export`` of an experiment whose product is the encoder: a TF Hub SavedModel under
    ``export_dir/encoder`` (as ``trainer.export_tfhub --export_type=model`` writes it)."""
    return [save_export(trainer, "model", os.path.join(export_dir, "encoder"), vocab_file, lower_case)]
