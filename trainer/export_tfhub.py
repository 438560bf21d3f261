"""TF Hub exports of a trained checkpoint, in the formats users load today.

    python -m trainer.export_tfhub --experiment=bert/pretraining --model_dir=RUN \\
        --config_file=trainer/configs/bert_tiny.yaml --export_type=model_with_mlm \\
        --vocab_file=vocab.txt --do_lower_case=false --pooler=copy_from_nsp --export_path=OUT

``--export_type``:
- ``model``: the encoder. Inputs ``input_word_ids``, ``input_mask``, ``input_type_ids`` (int32,
  ``[batch, seq]``); outputs ``pooled_output``, ``default``, ``sequence_output``, ``encoder_outputs``.
  ``vocab_file`` (asset) and ``do_lower_case`` (variable) are attached. For ``labse/train``
  ``pooled_output`` (= ``default``) is the L2-normalised sentence embedding.
- ``model_with_mlm``: the same, plus an ``mlm`` sub-object that also takes ``masked_lm_positions`` and
  adds ``mlm_logits`` ``[batch, positions, vocab]`` (``bert/pretraining`` only).
- ``preprocessing``: ``tokenize`` (strings -> ragged ``[batch, (words), (pieces)]`` int32, with
  ``tokenize.get_special_tokens_dict()``), ``bert_pack_inputs`` (a list of one or two tokenised
  segments, ``seq_length`` default 128 -> the three encoder inputs) and calling the model on a batch of
  strings (one segment, length 128). Loading it needs ``import tensorflow_text`` (its ops).
- ``classifier`` / ``text_classifier`` (``bert/sentence_prediction``): the fine-tuned classifier over
  the encoder inputs (-> ``logits``), or over raw strings with the run's tokenisation inside (one text,
  or ``classify_pairs``); ``trainer.task --mode=export`` writes both.

When the run trained on tokens a tensorflow-transform job materialised (``transform_output_dir``), both
exports embed that job's own transform graph (``tft.TFTransformOutput(DIR).transform_features_layer()``),
so raw strings go through exactly the computation that wrote the training records: the preprocessing
model's call on strings runs it (at the job's ``seq_length``, not 128), and the encoder gains a
``text_preprocessor`` (strings -> its three inputs). ``tokenize`` and ``bert_pack_inputs`` keep TF Hub's
interface over ``--vocab_file``; the export checks on probe sentences that they give the transform
graph's ids and stops with one line if the vocabulary or casing differ.

``--pooler`` (encoder exports): ``trained`` (the pooler as trained: what LaBSE uses), ``untrained``
(re-initialised), ``copy_from_nsp`` (the next-sentence head's dense layer, Model Garden's
``copy_pooler_dense_to_encoder``), ``identity`` (identity kernel, zero bias: ``tanh`` of [CLS]).
All load with ``hub.load`` and ``hub.KerasLayer``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

if __name__ == "__main__":  # --help and a bad flag answer before TensorFlow's import (seconds)
    from trainer.cli import parse_early

    parse_early("export_tfhub")

import tensorflow as tf
import tf_keras

from specs import run_folder
from specs.errors import ConfigError
from trainer import modeling
from trainer.cli import EXPORT_TYPES, POOLERS, one_line_errors, parse_early
from trainer.config import load_config
from trainer.tokenization import DEFAULT_SEQ_LENGTH, BertTokenization

# Sentences the export tokenises both through the transform graph and with --vocab_file/casing: scripts,
# case, accents, punctuation and a long sentence that must be truncated, so a wrong vocabulary, casing or
# sequence length shows up as different ids.
PROBE_TEXTS = ("Hello World! How are you today?", "Ich heiße Jürgen und wohne in München.",
               "¿Dónde está la estación? C'est l'été.", "Это очень ХОРОШО, спасибо.", "東京は日本の首都です。",
               " ".join(["A long sentence that has to be truncated"] * 12))


def _apply_pooler(encoder: tf_keras.Model, pooler: str, parts: dict[str, Any], cfg: Any) -> None:
    dense = encoder.get_layer("pooler_transform")
    if pooler == "trained":
        return
    if pooler == "untrained":
        init = tf_keras.initializers.TruncatedNormal(stddev=cfg.initializer_range, seed=0)
        dense.kernel.assign(init(dense.kernel.shape))
        dense.bias.assign(tf.zeros_like(dense.bias))
    elif pooler == "identity":
        dense.kernel.assign(tf.eye(dense.kernel.shape[0], dtype=dense.kernel.dtype))
        dense.bias.assign(tf.zeros_like(dense.bias))
    elif pooler == "copy_from_nsp":
        if "nsp" not in parts:
            raise ConfigError("--pooler=copy_from_nsp needs a bert/pretraining checkpoint (it has no NSP head)")
        dense.set_weights(parts["nsp"].dense.get_weights())


def build_export_model(experiment: str, task_cfg: Any, parts: dict[str, Any], export_type: str,
                       pooler: str) -> tf_keras.Model:
    """A float32 copy of the trained encoder (whatever precision it trained in) with TF Hub's outputs."""
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy("float32")
    try:
        enc_cfg = task_cfg.model.encoder
        if export_type == "model_with_mlm" and "mlm" not in parts:
            raise ConfigError("--export_type=model_with_mlm needs a bert/pretraining checkpoint")
        if experiment == "labse/train":
            model, new_parts = modeling.build_dual_encoder(task_cfg)
        elif export_type == "model_with_mlm":
            pretrainer, new_parts = modeling.build_pretrainer(task_cfg)
            for name in ("mlm", "nsp"):
                new_parts[name].set_weights(parts[name].get_weights())
        else:
            new_parts = {"encoder": modeling.build_encoder(enc_cfg)}
            model = new_parts["encoder"]
        new_parts["encoder"].set_weights(parts["encoder"].get_weights())
        _apply_pooler(new_parts["encoder"], pooler, parts, enc_cfg)
        if export_type == "model_with_mlm":
            encoder = new_parts["encoder"]
            inputs = {n: tf_keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in modeling.INPUT_NAMES}
            model = tf_keras.Model(inputs, encoder(inputs), name="bert_encoder")
            mlm_inputs = dict(inputs)
            mlm_inputs["masked_lm_positions"] = tf_keras.Input(shape=(None,), dtype=tf.int32,
                                                               name="masked_lm_positions")
            outputs = dict(encoder(inputs))
            outputs["mlm_logits"] = new_parts["mlm"](outputs["sequence_output"], mlm_inputs["masked_lm_positions"])
            model.mlm = tf_keras.Model(mlm_inputs, outputs, name="bert_encoder_with_mlm")
            del pretrainer
        return model
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)


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
        shapes = {n: list(getattr(spec.get(f"src_{n}"), "shape", []) or []) for n in modeling.INPUT_NAMES}
        if any(len(shape) != 1 or shape != shapes["input_word_ids"] for shape in shapes.values()):
            raise ConfigError(f"the transform graph in {transform_output_dir} does not write src_{{"
                              f"{','.join(modeling.INPUT_NAMES)}}} of one fixed length (found {shapes})")
        self.seq_length = shapes["input_word_ids"][0]
        self.transform = output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.transform({"src_raw": strings})
        return {n: tf.cast(out[f"src_{n}"], tf.int32) for n in modeling.INPUT_NAMES}


def check_matches_transform(tokenization: BertTokenization, transform: TransformPreprocessor, what: str,
                            where: str) -> None:
    """Stops the export when ``tokenization`` would give other ids than the transform graph: an export
    whose ``tokenize``/``vocab_file`` disagreed with the ids the encoder was trained on would embed
    users' text wrongly without any error."""
    probes = tf.constant(PROBE_TEXTS)
    want = transform(probes)
    got = tokenization(probes, seq_length=transform.seq_length)
    for name in modeling.INPUT_NAMES:
        if not bool(tf.reduce_all(tf.equal(want[name], got[name]))):
            raise ConfigError(f"{what} does not tokenise as the transform graph in {where} "
                              f"({name} differs on probe sentences): pass the vocabulary and casing the "
                              "tensorflow-transform job used")


def save_encoder(model: tf_keras.Model, export_path: str, vocab_file: str, lower_case: bool,
                 transform_output_dir: str = "") -> None:
    if vocab_file:
        model.vocab_file = tf.saved_model.Asset(vocab_file)
    model.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
    if transform_output_dir:
        model.text_preprocessor = TransformPreprocessor(transform_output_dir)
        if vocab_file:
            check_matches_transform(BertTokenization(vocab_file, lower_case), model.text_preprocessor,
                                    f"vocab_file {vocab_file} (do_lower_case={lower_case})", transform_output_dir)
    tf.saved_model.save(model, export_path)


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


def export_vocabulary(data_cfg: Any, vocab_file: str, lower_case: bool | None) -> tuple[str, bool]:
    """The vocabulary file and casing to export with: the given ones, else the run's data config's,
    the casing defaulting to what the training data's spec records; one line on a contradiction."""
    from trainer import data

    vocab = data.run_vocabulary(data_cfg, "task.train_data", vocab_file, lower_case)
    if vocab is None:
        return vocab_file, bool(lower_case if lower_case is not None else data_cfg.lower_case)
    return vocab.path, vocab.lower_case


def export(trainer: Any, export_type: str, export_path: str, vocab_file: str, lower_case: bool | None,
           pooler: str = "trained") -> str:
    """Writes one export of ``trainer``'s current weights (restore first) to ``export_path``."""
    if export_type not in EXPORT_TYPES:
        raise ConfigError(f"--export_type {export_type!r} is not one of {EXPORT_TYPES}")
    if pooler not in POOLERS:
        raise ConfigError(f"--pooler {pooler!r} is not one of {POOLERS}")
    data_cfg = trainer.cfg.task.train_data
    transform_dir = data_cfg.transform_output_dir
    vocab_file, lower_case = export_vocabulary(data_cfg, vocab_file, lower_case)
    if export_type == "preprocessing":
        save_preprocessing(export_path, vocab_file, lower_case, data_cfg.tokenizer, transform_dir)
        return export_path
    if export_type in ("classifier", "text_classifier"):
        if trainer.cfg.experiment != "bert/sentence_prediction":
            raise ConfigError(f"--export_type={export_type} needs a bert/sentence_prediction run, not "
                              f"{trainer.cfg.experiment}")
        from trainer.experiments import sentence_prediction

        save = (sentence_prediction.save_classifier if export_type == "classifier"
                else sentence_prediction.save_text_classifier)
        return save(trainer, export_path, vocab_file, lower_case)
    model = build_export_model(trainer.cfg.experiment, trainer.cfg.task, trainer.parts, export_type, pooler)
    save_encoder(model, export_path, vocab_file, lower_case, transform_dir)
    return export_path


def run_vocab_and_casing(model_dir: str, cfg: Any, vocab_flag: str, lower_flag: str) -> tuple[str, bool | None]:
    """The vocabulary and casing the export carries: the flags, else what the run recorded in its
    ``params.yaml`` (else the config's). An uncased vocabulary (no upper-case tokens) means lower-casing
    unless told otherwise, and a flag that contradicts the run or the vocabulary stops with one line:
    a wrong casing turns ``Hello World`` into ``[UNK] [UNK]`` without any error. A casing still unknown
    is None: ``export_vocabulary`` then takes the one the training data's spec records."""
    from trainer import checkpoints
    from trainer.convert_checkpoint import run_params

    run = run_params(model_dir).get("task", {}).get("train_data", {})
    vocab = vocab_flag or run.get("vocab_file", "") or cfg.task.train_data.vocab_file
    if vocab_flag and run.get("vocab_file") and not checkpoints.same_file(vocab_flag, run["vocab_file"]):
        raise ConfigError(f"--vocab_file {vocab_flag} is not the vocabulary the run in {model_dir} trained with "
                          f"({run['vocab_file']})")
    uncased = bool(vocab) and checkpoints.uncased_vocabulary(vocab)
    if not lower_flag:
        recorded = run.get("lower_case", cfg.task.train_data.lower_case)
        return vocab, True if uncased else recorded if recorded is None else bool(recorded)
    lower = lower_flag == "true"
    if uncased and not lower:
        raise ConfigError(f"--do_lower_case=false but {vocab} is an uncased vocabulary (no upper-case tokens): "
                          "capitalised words would become [UNK]")
    if run.get("vocab_file") and cfg.experiment == "labse/train" and lower != bool(run.get("lower_case")):
        raise ConfigError(f"--do_lower_case={lower_flag} contradicts the run in {model_dir}, which tokenised with "
                          f"lower_case={str(bool(run.get('lower_case'))).lower()}")
    return vocab, lower


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO)
    args = parse_early("export_tfhub", argv)

    def body() -> None:
        run_folder.check_writable_place(args.export_path, "--export_path")
        cfg = load_config(args.experiment, args.config_file, ",".join(args.params_override))
        vocab, lower = run_vocab_and_casing(args.model_dir, cfg, args.vocab_file, args.do_lower_case)
        if args.export_type == "preprocessing":
            vocab, lower = export_vocabulary(cfg.task.train_data, vocab, lower)
            save_preprocessing(args.export_path, vocab, lower, cfg.task.train_data.tokenizer,
                               cfg.task.train_data.transform_output_dir)
            return
        from trainer import train_lib

        trainer = train_lib.Trainer(cfg, args.model_dir or os.path.dirname(args.checkpoint_path),
                                    strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
        if args.checkpoint_path:
            # every weight of the model must come from the checkpoint (no silent partial load)
            trainer.read_checkpoint(args.checkpoint_path, "--checkpoint_path")
        else:
            trainer.restore_trained("trainer.export_tfhub")
        export(trainer, args.export_type, args.export_path, vocab, lower, args.pooler)

    return one_line_errors(body)


if __name__ == "__main__":
    sys.exit(main())
