"""The one way a command opens an encoder source by path (``task.init_checkpoint``, ``export_tfhub
--checkpoint_path``, ``convert_checkpoint --checkpoint_path``): a Hugging Face or sentence-transformers
folder (``trainer.checkpoints.hf_folders``), else a TensorFlow checkpoint in any layout
(``trainer.checkpoints.sources``)."""

from __future__ import annotations

from trainer.checkpoints.hf_folders import is_hf_folder, open_hf_folder
from trainer.checkpoints.sources import Source, open_checkpoint


def open_source(path: str, where: str = "task.init_checkpoint") -> Source:
    """The encoder source at ``path``, its layout recognised from what it holds."""
    return open_hf_folder(path, where) if is_hf_folder(path) else open_checkpoint(path, where)
