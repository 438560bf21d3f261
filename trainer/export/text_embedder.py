"""The text-embedding export (``--export_type=text_embedder``): strings in, the run's L2-normalised sentence
embeddings out, with the run's tokenisation inside, as ``text_classifier`` does for logits. It is what a
data pipeline loads to score or mine text (Beam's RunInference) without knowing vocabularies, casing or
BERT's inputs, and it is written from any source the trainer reads (our runs, Model Garden, TF1, TF Hub,
Hugging Face and sentence-transformers folders)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from specs.errors import ConfigError
from trainer.export.preprocessing import TransformPreprocessor, check_matches_transform
from trainer.text.tokenization import BertTokenization, trim_to_longest


class TextEmbedder(tf.Module):
    """Strings ``[batch]`` -> float32 unit vectors ``[batch, embedding_size]``: the encoder's ``default`` (the
    run's sentence embedding: LaBSE's pooled [CLS] or the masked mean) of the texts tokenised to
    ``seq_length`` with the run's vocabulary and casing, or through the run's tensorflow-transform graph,
    and cut to the batch's longest text (no work on padding; a SavedModel for CPU and GPU serving)."""

    def __init__(self, encoder: tf_keras.Model, vocab_file: str, lower_case: bool, seq_length: int,
                 implementation: str = "fast", transform_output_dir: str = "") -> None:
        super().__init__(name="text_embedder")
        self.encoder = encoder
        self.transform = TransformPreprocessor(transform_output_dir) if transform_output_dir else None
        self.tokenization = BertTokenization(vocab_file, lower_case, implementation) if vocab_file else None
        if self.transform is not None:
            seq_length = self.transform.seq_length
            if self.tokenization is not None:
                check_matches_transform(self.tokenization, self.transform,
                                        f"vocab_file {vocab_file} (do_lower_case={lower_case})", transform_output_dir)
        self._length = seq_length
        if vocab_file:
            self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
        self.seq_length = tf.Variable(seq_length, trainable=False, name="seq_length")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        inputs = trim_to_longest(self.transform(texts) if self.transform is not None else
                                 self.tokenization(texts, seq_length=self._length))  # type: ignore[misc]
        embedding = self.encoder(inputs, training=False)["default"]
        return tf.math.l2_normalize(tf.cast(embedding, tf.float32), axis=-1)


def save_text_embedder(encoder: tf_keras.Model, path: str, vocab_file: str, lower_case: bool, seq_length: int,
                       implementation: str = "fast", transform_output_dir: str = "") -> str:
    """Writes the ``TextEmbedder`` SavedModel: ``tf.saved_model.load(path)(texts)`` and the
    ``serving_default`` signature (``texts`` -> ``embeddings``)."""
    if not vocab_file and not transform_output_dir:
        raise ConfigError("a text embedder needs the run's vocabulary (--vocab_file or task.train_data.vocab_file)")
    module = TextEmbedder(encoder, vocab_file, lower_case, seq_length, implementation, transform_output_dir)
    serve = tf.function(lambda texts: {"embeddings": module(texts)}).get_concrete_function(
        tf.TensorSpec([None], tf.string, name="texts"))
    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path
