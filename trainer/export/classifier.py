"""The fine-tuned classifier's exports: over TF Hub's encoder inputs (``classifier``) and over raw strings
with the run's tokenisation inside (``text_classifier``). Handed the float32 classifier to save."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from specs.errors import ConfigError
from trainer.modeling.encoder import INPUT_NAMES
from trainer.text.tokenization import BertTokenization


class TextClassifier(tf.Module):
    """The classifier over raw strings: one text (``__call__``) or a pair (``classify_pairs``) tokenised
    and packed with the run's vocabulary and casing to ``seq_length`` (TF Hub's packing: a pair too long
    is trimmed round-robin, where ``finetune_data`` trims the longer side first; equal when it fits)."""

    def __init__(self, classifier: tf_keras.Model, vocab_file: str, lower_case: bool, seq_length: int,
                 implementation: str = "fast") -> None:
        super().__init__(name="text_classifier")
        self.classifier = classifier
        self.tokenization = BertTokenization(vocab_file, lower_case, implementation)
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
        self.seq_length = seq_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.classifier(self.tokenization(texts, seq_length=self.seq_length), training=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
    def classify_pairs(self, texts_a: tf.Tensor, texts_b: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.classifier(self.tokenization(texts_a, texts_b, seq_length=self.seq_length), training=False)


def save_classifier(model: tf_keras.Model, path: str, vocab_file: str, lower_case: bool) -> str:
    """The classifier over TF Hub's encoder inputs (``input_word_ids``, ``input_mask``,
    ``input_type_ids`` int32 ``[batch, seq]`` -> ``logits``), ``vocab_file`` and ``do_lower_case``
    attached as on a Hub encoder."""
    spec = {n: tf.TensorSpec([None, None], tf.int32, n) for n in INPUT_NAMES}
    serve = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(spec)
    if vocab_file:
        model.vocab_file = tf.saved_model.Asset(vocab_file)
    model.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
    tf.saved_model.save(model, path, signatures={"serving_default": serve})
    return path


def save_text_classifier(model: tf_keras.Model, path: str, vocab_file: str, lower_case: bool, seq_length: int,
                         implementation: str = "fast") -> str:
    """The classifier over raw strings (one text, or ``classify_pairs``) with the run's tokenisation
    inside, at ``seq_length`` (the run's)."""
    if not vocab_file:
        raise ConfigError("a text classifier needs the run's vocabulary (--vocab_file or task.train_data.vocab_file)")
    text_model = TextClassifier(model, vocab_file, lower_case, seq_length, implementation)
    tf.saved_model.save(text_model, path, signatures={
        "serving_default": text_model.__call__.get_concrete_function(),
        "classify_pairs": text_model.classify_pairs.get_concrete_function()})
    return path


