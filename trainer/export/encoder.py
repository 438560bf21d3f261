"""The TF Hub encoder export (``model``, ``model_with_mlm``): a float32 copy of the trained encoder with
TF Hub's outputs and the chosen pooler, ``vocab_file`` and ``do_lower_case`` attached, and a
tensorflow-transform run's graph as ``text_preprocessor`` when the run trained on its tokens. It is
handed the trained parts and the builder of the model to save; it knows no experiment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras

from specs.errors import ConfigError
from trainer.export.preprocessing import TransformPreprocessor, check_matches_transform
from trainer.modeling import encoder as modeling
from trainer.text.tokenization import BertTokenization


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


def build_export_model(task_cfg: Any, parts: dict[str, Any], export_type: str, pooler: str,
                       build: Callable[[Any], tuple[tf_keras.Model, dict[str, Any]]] | None = None) -> tf_keras.Model:
    """A float32 copy of the trained encoder (whatever precision it trained in) with TF Hub's outputs;
    ``build``: the model to save around the encoder (the experiment's, e.g. the dual encoder with its
    normalised pooled output), else the bare encoder."""
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy("float32")
    try:
        enc_cfg = task_cfg.model.encoder
        if export_type == "model_with_mlm" and "mlm" not in parts:
            raise ConfigError("--export_type=model_with_mlm needs a bert/pretraining checkpoint")
        if build is not None:
            model, new_parts = build(task_cfg)
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

