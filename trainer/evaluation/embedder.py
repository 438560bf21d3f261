"""``Embedder``: sentences through an exported encoder, tokenised as the export says (its
``--preprocessor``, its ``text_preprocessor``, else its ``vocab_file`` and ``do_lower_case``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from specs.errors import ConfigError
from trainer.checkpoints.sources import load_saved_model
from trainer.text.tokenization import BertTokenization, trim_to_longest


class Embedder:
    """Strings -> embeddings with a TF Hub encoder export (and its tokenisation); each batch is cut to its
    longest sentence (``trim_to_longest``), so a long ``seq_length`` costs nothing on short sentences."""

    def __init__(self, model_dir: str, preprocessor_dir: str = "", seq_length: int = 64,
                 batch_size: int = 256) -> None:
        import tensorflow_hub as hub
        import tensorflow_text  # noqa: F401  (registers the ops a preprocessing SavedModel uses)

        self.encoder = load_saved_model(model_dir, "--model", hub.load)
        self.seq_length, self.batch_size = seq_length, batch_size
        if preprocessor_dir:
            pre = load_saved_model(preprocessor_dir, "--preprocessor", hub.load)
            self._pack = lambda s: pre.bert_pack_inputs([pre.tokenize(s)], seq_length=seq_length)
        elif hasattr(self.encoder, "text_preprocessor"):
            self._pack = self.encoder.text_preprocessor
        else:
            if not hasattr(self.encoder, "vocab_file"):
                raise ConfigError(f"--model {model_dir} has no vocab_file asset nor text_preprocessor; pass "
                                  "--preprocessor")
            vocab = self.encoder.vocab_file.asset_path.numpy().decode()
            tok = BertTokenization(vocab, bool(self.encoder.do_lower_case.numpy()))
            self._pack = tf.function(lambda s: tok(s, seq_length=seq_length))

    def __call__(self, sentences: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(sentences), self.batch_size):
            inputs = trim_to_longest(self._pack(tf.constant(list(sentences[start:start + self.batch_size]))))
            out.append(self.encoder(inputs, training=False)["default"].numpy())
        emb = np.concatenate(out) if out else np.zeros([0, 0], np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)


