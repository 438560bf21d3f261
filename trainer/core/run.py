"""A run's folder: where its checkpoints, summaries and exports go, and its ``params.yaml`` (the
config it trained with, which eval, predict, export and conversion read back).

Where things go (Vertex AI sets the ``AIP_*`` variables for custom training jobs):
- checkpoints: ``$AIP_CHECKPOINT_DIR`` if set, else ``<model_dir>/checkpoints``;
- summaries: ``$AIP_TENSORBOARD_LOG_DIR`` if set, else ``<model_dir>/summaries`` (``train/``, ``eval/``);
- exports: ``$AIP_MODEL_DIR`` if set, else ``<model_dir>/export``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import tensorflow as tf
import yaml

from specs import run_folder
from specs.errors import ConfigError
from trainer.core.config import Params, to_yaml

PARAMS_FILE = "params.yaml"


def dotted(tree: Any, key: str) -> Any:
    """``tree``'s value at the dotted ``key``, or None where a level is missing."""
    for name in key.split("."):
        tree = tree.get(name) if isinstance(tree, dict) else None
    return tree


@dataclasses.dataclass(frozen=True)
class Dirs:
    model: str
    checkpoints: str
    summaries: str
    export: str

    @classmethod
    def from_env(cls, model_dir: str) -> Dirs:
        model_dir = model_dir or os.environ.get("AIP_MODEL_DIR", "")
        if not model_dir:
            raise ConfigError("--model_dir is not set (nor AIP_MODEL_DIR)")
        run_folder.check_writable_place(model_dir, "--model_dir")  # one line, not a traceback at the first write
        return cls(model_dir,
                   os.environ.get("AIP_CHECKPOINT_DIR") or os.path.join(model_dir, "checkpoints"),
                   os.environ.get("AIP_TENSORBOARD_LOG_DIR") or os.path.join(model_dir, "summaries"),
                   os.environ.get("AIP_MODEL_DIR") or os.path.join(model_dir, "export"))


def run_params(model_dir: str) -> dict[str, Any]:
    """The run's ``params.yaml`` (empty when the source is not one of our runs)."""
    path = os.path.join(model_dir, PARAMS_FILE)
    if not model_dir or not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return yaml.safe_load(f.read()) or {}


def write_params(model_dir: str, cfg: Params) -> None:
    """``cfg`` as the run's ``params.yaml`` (it can be passed back as ``--config_file``)."""
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, PARAMS_FILE), "w") as f:
        f.write(to_yaml(cfg))
