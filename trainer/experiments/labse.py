"""``labse/train``: the LaBSE dual encoder (shared weights, additive-margin bidirectional in-batch
softmax). Its config defaults, data, model, step, metrics and export live here; the loop is
``trainer.core.loop`` (see ``trainer.experiments.bert_pretraining`` for the step contract).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

import specs
from specs.errors import ConfigError
from trainer.core.config import ENCODER, Params, data_config, experiment_defaults
from trainer.core.data import check_complete, make_dataset, open_input
from trainer.experiments.base import BaseTask, export_encoder
from trainer.modeling import encoder as modeling
from trainer.modeling import losses
from trainer.text.tokenization import BertTokenization, trim_to_longest
from trainer.text.vocabulary import data_vocabulary, find_vocab

PAIR_TOKEN_FEATURES = tuple(f"{side}_{name}" for side in ("src", "tgt")
                            for name in modeling.INPUT_NAMES)


def pairs_dataset(task_cfg: Any, data_cfg: Any, key: str, input_context: tf.distribute.InputContext | None,
                  seed: int, check_only: bool = False) -> tf.data.Dataset | None:
    """Dual-encoder batches: ``src_*`` and ``tgt_*`` BERT inputs of ``seq_length`` (int32), tokenised
    here from ``src_raw``/``tgt_raw`` or read as materialised by a tensorflow-transform run."""
    files, found, where = open_input(data_cfg, key)
    if data_cfg.transform_output_dir:
        return _transformed_pairs(data_cfg, key, input_context, seed, check_only, files, found, where)
    return raw_pairs(task_cfg, data_cfg, key, input_context, seed, check_only, files, found, where,
                     specs.text_pair_spec(2))


def _transformed_pairs(data_cfg: Any, key: str, input_context: tf.distribute.InputContext | None, seed: int,
                       check_only: bool, files: list[str], found: specs.FeatureSpec,
                       where: str) -> tf.data.Dataset | None:
    """The token features a tensorflow-transform run materialised, read through its transformed schema."""
    L = data_cfg.seq_length
    check_complete(data_cfg, key, "transform_output_dir")  # the transform graph of a finished run only
    import tensorflow_transform as tft

    tft_output = tft.TFTransformOutput(data_cfg.transform_output_dir)
    parsing = tft_output.transformed_feature_spec()
    for name in PAIR_TOKEN_FEATURES:
        if name not in parsing:
            raise specs.SpecError(f"feature {name!r} is missing in the transformed schema of "
                                  f"{data_cfg.transform_output_dir} (found: {', '.join(sorted(parsing))})")
        shape = list(getattr(parsing[name], "shape", []) or [])
        if shape != [L]:
            raise specs.SpecError(f"feature {name!r} in {data_cfg.transform_output_dir} has shape {shape}, "
                                  f"expected [{L}] ({key}.seq_length)")
    data_vocabulary(data_cfg, dict(found.params), where, key)
    if check_only:
        return None
    parsing = {n: parsing[n] for n in PAIR_TOKEN_FEATURES}
    return make_dataset(files, data_cfg, input_context, seed, parse_batch=lambda s: {
        k: tf.cast(v, tf.int32) for k, v in tf.io.parse_example(s, parsing).items()})


def raw_pairs(task_cfg: Any, data_cfg: Any, key: str, input_context: tf.distribute.InputContext | None, seed: int,
              check_only: bool, files: list[str], found: specs.FeatureSpec, where: str,
              expected: specs.FeatureSpec) -> tf.data.Dataset | None:
    """``src_raw``/``tgt_raw`` tokenised here with the run's vocabulary (checked against the data's spec);
    ``expected``'s features other than the raw texts and languages are passed through as parsed (e.g.
    ``labse/distill``'s teacher embedding)."""
    L = data_cfg.seq_length
    found.require(expected, where=where)
    vocab = data_vocabulary(data_cfg, dict(found.params), where, key, find_vocab(data_cfg, files, key))
    tokenizer = BertTokenization(vocab, implementation=data_cfg.tokenizer)
    trim = bool(data_cfg.get("trim_padding"))
    if vocab.size > task_cfg.model.encoder.vocab_size:
        raise ConfigError(f"{key}.vocab_file {vocab.path} has {vocab.size} tokens, more than "
                          f"task.model.encoder.vocab_size {task_cfg.model.encoder.vocab_size}")
    if check_only:
        return None
    parsing = expected.tf_parsing_spec()
    passed = [n for n in parsing if n not in ("src_raw", "tgt_raw", "src_lang", "tgt_lang")]

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, parsing)
        out = {name: parsed[name] for name in passed}
        for side in ("src", "tgt"):
            packed = tokenizer(parsed[f"{side}_raw"], seq_length=L)
            packed = trim_to_longest(packed) if trim else packed
            for k, v in packed.items():
                out[f"{side}_{k}"] = tf.ensure_shape(v, [None, None if trim else L])
        return out

    return make_dataset(files, data_cfg, input_context, seed, parse_batch=parse)


NAME = "labse/train"

DEFAULTS: dict[str, Any] = experiment_defaults(
    model={"encoder": dict(ENCODER, vocab_size=501153), "normalize": True, "pooling": "cls"},
    train_data=data_config(seq_length=64, lower_case=False),
    validation_data=data_config(seq_length=64, lower_case=False, is_training=False, drop_remainder=False),
    logit_scale=100.0, logit_margin=0.3, bidirectional=True, cross_replica_negatives=True,
)


export = export_encoder  # the product is the encoder


def prepare(cfg: Params) -> Params:
    """``trim_padding`` decided once for the run where no config set it: on, unless the run is on TPU
    (XLA compiles one static shape per program, so a batch's length must not vary there)."""
    data = cfg.as_dict()
    tpu = cfg.runtime.distribution_strategy == "tpu"
    for section in ("train_data", "validation_data"):
        if data["task"][section].get("trim_padding") is None:
            data["task"][section]["trim_padding"] = not tpu
        elif tpu and data["task"][section]["trim_padding"]:
            raise ConfigError(f"task.{section}.trim_padding=true varies the batch's length, which a TPU cannot "
                              "compile (runtime.distribution_strategy=tpu)")
    return Params(data, cfg.explicit)


def side(features: dict[str, tf.Tensor], side: str) -> dict[str, tf.Tensor]:
    return {n: features[f"{side}_{n}"] for n in modeling.INPUT_NAMES}


class Task(BaseTask):
    """``labse/train``: a shared encoder, additive-margin bidirectional in-batch softmax, and with
    ``cross_replica_negatives`` every replica's embeddings gathered so each pair competes against
    the whole global batch."""

    name = NAME
    read_records = staticmethod(pairs_dataset)
    vocab_beside_data = True
    export_model = staticmethod(modeling.build_dual_encoder)  # the export keeps the normalised pooled output

    def build_model(self) -> tuple[tf_keras.Model, dict[str, Any]]:
        return modeling.build_dual_encoder(self.task)

    def step(self, model: tf_keras.Model, features: dict[str, tf.Tensor], training: bool,
             global_batch: int) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        src = model(side(features, "src"), training=training)["pooled_output"]
        tgt = model(side(features, "tgt"), training=training)["pooled_output"]
        stats = self.in_batch(src, tgt)
        stats["examples"] = tf.cast(tf.shape(src)[0], tf.float32)
        return stats["loss_sum"] / global_batch, stats

    def in_batch(self, src: tf.Tensor, tgt: tf.Tensor) -> dict[str, tf.Tensor]:
        """The additive-margin in-batch softmax of this replica's ``src``/``tgt`` embeddings against the
        global batch's (``cross_replica_negatives``) or this replica's: ``loss_sum`` and the correct counts
        (``src_to_tgt_correct``, and ``tgt_to_src_correct`` when ``bidirectional``)."""
        if self.task.cross_replica_negatives:
            all_src, offset = losses.gather_from_replicas(src)
            all_tgt, _ = losses.gather_from_replicas(tgt)
        else:
            all_src, all_tgt, offset = src, tgt, tf.constant(0, tf.int32)
        out = losses.in_batch_softmax_loss_sum(src, tgt, all_src, all_tgt, offset, self.task.logit_scale,
                                               self.task.logit_margin, self.task.bidirectional)
        return {"loss_sum" if k == "loss" else k: v for k, v in out.items()}

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums["examples"], 1.0)
        out = {"loss": sums["loss_sum"] / n, "in_batch_src_to_tgt_accuracy": sums["src_to_tgt_correct"] / n}
        if "tgt_to_src_correct" in sums:
            out["in_batch_tgt_to_src_accuracy"] = sums["tgt_to_src_correct"] / n
        return out

    def evaluate(self, model: tf_keras.Model, strategy: tf.distribute.Strategy, dataset: Any,
                 steps: int) -> dict[str, float]:
        """Retrieval precision@1 in both directions over all validation pairs (embeddings on the host)."""

        @tf.function(reduce_retracing=True)  # trimmed batches vary in length: one trace for all of them
        def run(features: dict[str, tf.Tensor]) -> tuple[Any, Any]:
            def embed(f: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
                return (model(side(f, "src"), training=False)["pooled_output"],
                        model(side(f, "tgt"), training=False)["pooled_output"])
            return strategy.run(embed, args=(features,))

        srcs, tgts = [], []
        for i, features in enumerate(dataset):
            if 0 <= steps <= i:
                break
            s, t = run(features)
            srcs += [np.asarray(x) for x in strategy.experimental_local_results(s)]
            tgts += [np.asarray(x) for x in strategy.experimental_local_results(t)]
        if not srcs:
            return {}
        src, tgt = np.concatenate(srcs), np.concatenate(tgts)
        return {"retrieval_precision_at_1_src_to_tgt": losses.retrieval_precision_at_1(src, tgt),
                "retrieval_precision_at_1_tgt_to_src": losses.retrieval_precision_at_1(tgt, src),
                "validation_pairs": float(len(src))}
