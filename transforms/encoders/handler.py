"""The text_embedder export (``python -m trainer.export_tfhub --export_type=text_embedder``) as a Beam
``ModelHandler``, and the start-up check that a folder is one.

Beam's ``TFModelHandlerTensor`` loads with ``tf.keras.models.load_model`` (Keras 3 here), which cannot
read this SavedModel; ``TextEmbedderHandler`` loads it with ``tf.saved_model.load`` (strings in,
float32 unit vectors out, the tokenisation inside). The pipeline never imports ``trainer``: the
SavedModel carries everything it needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from specs.errors import ConfigError

SAVED_MODEL_FILE = "saved_model.pb"
SIGNATURE, INPUT, OUTPUT = "serving_default", "texts", "embeddings"
EXPORT_HINT = "python -m trainer.export_tfhub --export_type=text_embedder writes one"


def check_text_embedder(path: str, flag: str = "--score_with") -> int:
    """Reads the export's ``saved_model.pb`` (local or gs://, without loading the model or its
    variables) and returns the embedding size; a one-line ConfigError when ``path`` is not a
    text_embedder export (no SavedModel, or a ``serving_default`` other than strings -> embeddings)."""
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    pb = FileSystems.join(path, SAVED_MODEL_FILE)
    if not FileSystems.exists(pb):
        raise ConfigError(f"{flag}: {path} is not a SavedModel (no {SAVED_MODEL_FILE}); {EXPORT_HINT}")
    model = saved_model_pb2.SavedModel()
    with FileSystems.open(pb) as f:
        try:
            model.ParseFromString(f.read())
        except Exception as e:  # protobuf's DecodeError, or anything else a broken file raises
            raise ConfigError(f"{flag}: {pb} is not a readable SavedModel ({type(e).__name__})") from None
    signatures = model.meta_graphs[0].signature_def if model.meta_graphs else {}
    sig = signatures[SIGNATURE] if SIGNATURE in signatures else None
    ok = (sig is not None and list(sig.inputs) == [INPUT] and list(sig.outputs) == [OUTPUT]
          and sig.inputs[INPUT].dtype == types_pb2.DT_STRING and sig.outputs[OUTPUT].dtype == types_pb2.DT_FLOAT
          and len(sig.outputs[OUTPUT].tensor_shape.dim) == 2)
    if not ok:
        found = (f"{SIGNATURE}({', '.join(sig.inputs)}) -> {', '.join(sig.outputs)}" if sig is not None
                 else f"signatures: {', '.join(sorted(signatures)) or 'none'}")
        raise ConfigError(f"{flag}: {path} is a SavedModel but not a text_embedder export ({found}); {EXPORT_HINT}")
    return int(sig.outputs[OUTPUT].tensor_shape.dim[1].size)


class TextEmbedderHandler(ModelHandler[Sequence[str], PredictionResult, Any]):
    """RunInference over the text_embedder export; an example is a *chunk* of texts, embedded in one
    model call (``[len(chunk), dim]`` float32 unit vectors).

    Why chunks and not single texts: the export's output for a text depends in its last bits on the
    batch it is computed in (all-MiniLM-L6-v2 on CPU: up to 4.5e-8 apart between batch sizes 1, 7, 100
    and 256), and ``BatchElements`` forms its batches from whatever a bundle holds, which changes with
    sharding and retries. ``ScorePairs`` therefore forms the batches itself, from one bucket's sorted
    texts, so the bytes written are the same on every run; here each chunk is one model call whatever
    ``BatchElements`` groups. The chunk size is the throughput knob (``ScorePairs``' ``batch_size``);
    ``min_batch_size``/``max_batch_size`` (1 and 4 chunks) only bound how many calls one RunInference
    batch makes, so a bundle's chunks are not held back waiting for more.

    The model is loaded once per worker process (RunInference keeps it in a ``shared.Shared`` handle,
    reused by every bundle and thread of the process), not per bundle. ``share_model_across_processes``
    and ``model_copies`` are left off: the model is small (all-MiniLM-L6-v2: 90 MB) and the gain was not
    measured.
    """

    def __init__(self, path: str, min_batch_size: int = 1, max_batch_size: int = 4) -> None:
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._path = path

    def load_model(self) -> Any:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the tokeniser ops the export's graph calls

        return tf.saved_model.load(self._path)

    def run_inference(self, batch: Sequence[Sequence[str]], model: Any,
                      inference_args: Mapping[str, Any] | None = None) -> Iterable[PredictionResult]:
        import tensorflow as tf

        for chunk in batch:
            vectors = model(tf.constant(list(chunk), dtype=tf.string)).numpy()
            yield PredictionResult(chunk, np.asarray(vectors, dtype=np.float32), self._path)

    def get_num_bytes(self, batch: Sequence[Sequence[str]]) -> int:
        return sum(len(t.encode("utf-8")) for chunk in batch for t in chunk)

    def get_metrics_namespace(self) -> str:
        return "TextEmbedder"
