"""TF Hub's BERT preprocessing model (``tokenize``, ``bert_pack_inputs``, strings -> encoder inputs)
over the run's tokenisation, and a tensorflow-transform run's own transform graph as a preprocessor,
checked against that tokenisation on probe sentences."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from specs.errors import ConfigError
from trainer.modeling.encoder import INPUT_NAMES
from trainer.text.tokenization import DEFAULT_SEQ_LENGTH, BertTokenization

# Sentences the export tokenises both through the transform graph and with --vocab_file/casing: scripts,
# case, accents, punctuation and a long sentence that must be truncated, so a wrong vocabulary, casing or
# sequence length shows up as different ids.
PROBE_TEXTS = ("Hello World! How are you today?", "Ich heiße Jürgen und wohne in München.",
               "¿Dónde está la estación? C'est l'été.", "Это очень ХОРОШО, спасибо.", "東京は日本の首都です。",
               " ".join(["A long sentence that has to be truncated"] * 12))


class TransformPreprocessor(tf.Module):
    """Strings -> ``input_word_ids``, ``input_mask``, ``input_type_ids`` (int32, ``[batch,
    seq_length]``) through a tensorflow-transform run's transform graph: the strings are fed as
    ``src_raw`` and the ``src_*`` outputs returned, the computation that wrote the source side of the
    records the trainer read (the graph is pruned to what ``src_raw`` feeds, so ``tgt_raw`` is not
    needed)."""

    def __init__(self, transform_output_dir: str) -> None:
        import tensorflow_transform as tft

        super().__init__(name="text_preprocessor")
        output = tft.TFTransformOutput(transform_output_dir)
        spec = output.transformed_feature_spec()
        shapes = {n: list(getattr(spec.get(f"src_{n}"), "shape", []) or []) for n in INPUT_NAMES}
        if any(len(shape) != 1 or shape != shapes["input_word_ids"] for shape in shapes.values()):
            raise ConfigError(f"the transform graph in {transform_output_dir} does not write src_{{"
                              f"{','.join(INPUT_NAMES)}}} of one fixed length (found {shapes})")
        self.seq_length = shapes["input_word_ids"][0]
        self.transform = output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.transform({"src_raw": strings})
        return {n: tf.cast(out[f"src_{n}"], tf.int32) for n in INPUT_NAMES}


def check_matches_transform(tokenization: BertTokenization, transform: TransformPreprocessor, what: str,
                            where: str) -> None:
    """Stops the export when ``tokenization`` would give other ids than the transform graph: an export
    whose ``tokenize``/``vocab_file`` disagreed with the ids the encoder was trained on would embed
    users' text wrongly without any error."""
    probes = tf.constant(PROBE_TEXTS)
    want = transform(probes)
    got = tokenization(probes, seq_length=transform.seq_length)
    for name in INPUT_NAMES:
        if not bool(tf.reduce_all(tf.equal(want[name], got[name]))):
            raise ConfigError(f"{what} does not tokenise as the transform graph in {where} "
                              f"({name} differs on probe sentences): pass the vocabulary and casing the "
                              "tensorflow-transform job used")


class _Tokenize(tf.Module):
    def __init__(self, tokenization: BertTokenization) -> None:
        super().__init__(name="tokenize")
        self.tokenization = tokenization
        self._special = {k: tf.constant(v, tf.int32) for k, v in tokenization.special.as_dict().items()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings: tf.Tensor) -> tf.RaggedTensor:
        return self.tokenization.tokenize(strings)

    @tf.function(input_signature=[])
    def get_special_tokens_dict(self) -> dict[str, tf.Tensor]:
        return dict(self._special)


class _PackInputs(tf.Module):
    def __init__(self, tokenization: BertTokenization) -> None:
        super().__init__(name="bert_pack_inputs")
        self.tokenization = tokenization

    @tf.function
    def __call__(self, inputs: list[tf.RaggedTensor], seq_length: Any = DEFAULT_SEQ_LENGTH) -> dict[str, tf.Tensor]:
        return self.tokenization.pack(inputs, seq_length)


class Preprocessor(tf.Module):
    """TF Hub's BERT preprocessing interface over ``BertTokenization``; with a ``transform``, calling it
    on strings runs the tensorflow-transform graph instead (its ids, its sequence length)."""

    def __init__(self, tokenization: BertTokenization, vocab_file: str,
                 transform: TransformPreprocessor | None = None) -> None:
        super().__init__(name="preprocessor")
        self.tokenization = tokenization
        self.tokenize = _Tokenize(tokenization)
        self.bert_pack_inputs = _PackInputs(tokenization)
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.do_lower_case = tf.Variable(tokenization.lower_case, trainable=False, name="do_lower_case")
        self.transform = transform
        for segments in (1, 2):
            for rank in (2, 3):
                spec = tf.RaggedTensorSpec([None] * rank, tf.int32, ragged_rank=rank - 1)
                self.bert_pack_inputs.__call__.get_concrete_function([spec] * segments, tf.TensorSpec([], tf.int32))
                self.bert_pack_inputs.__call__.get_concrete_function([spec] * segments)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings: tf.Tensor) -> dict[str, tf.Tensor]:
        if self.transform is not None:
            return self.transform(strings)
        return self.tokenization.pack([self.tokenization.tokenize(strings)], DEFAULT_SEQ_LENGTH)


def save_preprocessing(export_path: str, vocab_file: str, lower_case: bool, implementation: str = "fast",
                       transform_output_dir: str = "") -> None:
    if not vocab_file:
        raise ConfigError("--export_type=preprocessing needs --vocab_file")
    tokenization = BertTokenization(vocab_file, lower_case, implementation)
    transform = None
    if transform_output_dir:
        transform = TransformPreprocessor(transform_output_dir)
        check_matches_transform(tokenization, transform, f"--vocab_file {vocab_file} (do_lower_case={lower_case})",
                                transform_output_dir)
    tf.saved_model.save(Preprocessor(tokenization, vocab_file, transform), export_path)


