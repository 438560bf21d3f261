"""``bert/pretraining``: masked LM, plus next-sentence prediction when the records carry labels.

Everything this experiment is lives here: its config defaults, its data, model, training step and
metrics, and its export; the training loop (``trainer.core.loop``) is shared and knows none of it.
A task's ``step`` runs inside ``strategy.run`` on one replica and returns the loss whose gradient
to apply (already divided by the global batch, so replica gradients sum to the global mean) and a dict
of *sums* (loss sums, correct counts, example counts) that the loop adds over replicas and steps and
turns into metrics with ``metrics``.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

import specs
from trainer.checkpoints import layouts
from trainer.core.config import ENCODER, data_config, experiment_defaults
from trainer.core.data import make_dataset, open_input
from trainer.experiments.base import BaseTask, export_encoder, unchanged
from trainer.modeling import encoder as modeling
from trainer.modeling import losses
from trainer.text.tokenization import SpecialTokens
from trainer.text.vocabulary import special_tokens


def pretraining_expected_spec(data_cfg: Any, found: specs.FeatureSpec) -> tuple[specs.FeatureSpec, bool]:
    """What the experiment needs of the records, and whether they were written unmasked."""
    dynamic = "masked_lm_positions" not in found.names
    expected = specs.pretraining_spec(data_cfg.seq_length, data_cfg.max_predictions_per_seq,
                                      v2_names=data_cfg.use_v2_feature_names, dynamic_masking=dynamic)
    if not data_cfg.use_next_sentence_label:
        expected = specs.FeatureSpec(expected.name, tuple(f for f in expected.features
                                                          if f.name != "next_sentence_labels"), expected.params)
    return expected, dynamic


def dynamic_mask(ids: tf.Tensor, seed: tf.Tensor, special: SpecialTokens, vocab_size: int,
                 max_predictions: int, masked_lm_prob: float, random_token_prob: float,
                 keep_token_prob: float) -> dict[str, tf.Tensor]:
    """BERT's masking of one unmasked sequence, drawn from ``seed``: ``round(n * prob)`` (at least 1,
    at most ``max_predictions``) of the tokens other than [CLS]/[SEP]/[PAD] are predicted; of those,
    ``random_token_prob`` become a random id, ``keep_token_prob`` stay, the rest become [MASK]."""
    ids = tf.cast(ids, tf.int32)
    length = tf.shape(ids)[0]
    real = tf.not_equal(ids, special.padding_id)
    candidate = real & tf.not_equal(ids, special.start_of_sequence_id) & tf.not_equal(ids, special.end_of_segment_id)
    n_real = tf.reduce_sum(tf.cast(real, tf.float32))
    n_pred = tf.cast(tf.round(n_real * masked_lm_prob), tf.int32)
    n_pred = tf.minimum(tf.minimum(tf.maximum(n_pred, 1), max_predictions),
                        tf.reduce_sum(tf.cast(candidate, tf.int32)))
    seeds = tf.random.experimental.stateless_split(seed, 3)
    scores = tf.random.stateless_uniform([length], seeds[0])
    scores = tf.where(candidate, scores, -1.0)
    chosen = tf.sort(tf.math.top_k(scores, k=tf.minimum(max_predictions, length)).indices[:n_pred])
    labels = tf.gather(ids, chosen)
    action = tf.random.stateless_uniform([n_pred], seeds[1])
    random_ids = tf.random.stateless_uniform([n_pred], seeds[2], minval=0, maxval=vocab_size, dtype=tf.int32)
    replacement = tf.where(action < random_token_prob, random_ids,
                           tf.where(action < random_token_prob + keep_token_prob, labels, special.mask_id))
    masked = tf.tensor_scatter_nd_update(ids, chosen[:, tf.newaxis], replacement)
    pad = max_predictions - n_pred
    return {
        "input_word_ids": masked,
        "masked_lm_positions": tf.pad(chosen, [[0, pad]]),
        "masked_lm_ids": tf.pad(labels, [[0, pad]]),
        "masked_lm_weights": tf.pad(tf.ones([n_pred], tf.float32), [[0, pad]]),
    }


def pretraining_dataset(task_cfg: Any, data_cfg: Any, key: str, input_context: tf.distribute.InputContext | None,
                        seed: int, check_only: bool = False) -> tf.data.Dataset | None:
    """MLM(+NSP) batches with the model's feature names (int32; weights float32)."""
    files, found, where = open_input(data_cfg, key)
    expected, dynamic = pretraining_expected_spec(data_cfg, found)
    found.require(expected, where=where)
    special = special_tokens(data_cfg, found, where, key)
    if check_only:
        return None
    ids_name = "input_word_ids" if data_cfg.use_v2_feature_names else "input_ids"
    segs_name = "input_type_ids" if data_cfg.use_v2_feature_names else "segment_ids"
    parsing = {k: v for k, v in expected.tf_parsing_spec().items()}
    vocab_size = task_cfg.model.encoder.vocab_size

    def rename(parsed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = {"input_word_ids": tf.cast(parsed[ids_name], tf.int32),
               "input_type_ids": tf.cast(parsed[segs_name], tf.int32)}
        for name in ("input_mask", "masked_lm_positions", "masked_lm_ids", "next_sentence_labels"):
            if name in parsed:
                out[name] = tf.cast(parsed[name], tf.int32)
        if "masked_lm_weights" in parsed:
            out["masked_lm_weights"] = parsed["masked_lm_weights"]
        return out

    if not dynamic:
        return make_dataset(files, data_cfg, input_context, seed,
                            parse_batch=lambda s: rename(tf.io.parse_example(s, parsing)))
    m = task_cfg.masking

    def parse_and_mask(serialized: tf.Tensor, element: tf.Tensor) -> dict[str, tf.Tensor]:
        out = rename(tf.io.parse_single_example(serialized, parsing))
        out["input_mask"] = tf.cast(tf.not_equal(out["input_word_ids"], special.padding_id), tf.int32)
        out.update(dynamic_mask(out["input_word_ids"], element, special, vocab_size, data_cfg.max_predictions_per_seq,
                                m.masked_lm_prob, m.random_token_prob, m.keep_token_prob))
        return out

    return make_dataset(files, data_cfg, input_context, seed, parse_one=parse_and_mask)


NAME = "bert/pretraining"

DEFAULTS: dict[str, Any] = experiment_defaults(
    model={"encoder": dict(ENCODER), "num_classes": 2},
    train_data=data_config(),
    validation_data=data_config(is_training=False, drop_remainder=False),
    # dynamic masking (records hold only ids and segments) draws this share of tokens
    masking={"masked_lm_prob": 0.15, "random_token_prob": 0.1, "keep_token_prob": 0.1},
)


# Nothing to take from the data; the product is the encoder.
prepare = unchanged
export = export_encoder


class Task(BaseTask):
    """``bert/pretraining``: masked LM, plus next-sentence prediction when the records carry labels."""

    name = NAME
    # What task.init_checkpoint restores beside the encoder when the source has it.
    head_roles = layouts.MLM_ROLES + layouts.NSP_ROLES
    read_records = staticmethod(pretraining_dataset)

    def build_model(self) -> tuple[tf_keras.Model, dict[str, Any]]:
        return modeling.build_pretrainer(self.task)

    def step(self, model: tf_keras.Model, features: dict[str, tf.Tensor], training: bool,
             global_batch: int) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        inputs = {n: features[n] for n in (*modeling.INPUT_NAMES, "masked_lm_positions")}
        out = model(inputs, training=training)
        mlm_sum, mlm_correct = losses.masked_lm_loss_sum(features["masked_lm_ids"], out["mlm_logits"],
                                                         features["masked_lm_weights"])
        weight = tf.reduce_sum(features["masked_lm_weights"])
        ctx = tf.distribute.get_replica_context()
        global_weight = ctx.all_reduce(tf.distribute.ReduceOp.SUM, weight) if ctx else weight
        loss = mlm_sum / tf.maximum(global_weight, 1.0)
        examples = tf.cast(tf.shape(features["input_word_ids"])[0], tf.float32)
        stats = {"mlm_loss_sum": mlm_sum, "mlm_correct": mlm_correct, "mlm_weight": weight, "examples": examples}
        if self.task.train_data.use_next_sentence_label and "next_sentence_labels" in features:
            nsp_sum, nsp_correct = losses.classification_loss_sum(features["next_sentence_labels"],
                                                                  out["next_sentence"])
            loss += nsp_sum / global_batch
            stats.update(nsp_loss_sum=nsp_sum, nsp_correct=nsp_correct)
        return loss, stats

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        weight = max(sums["mlm_weight"], 1.0)
        out = {"mlm_loss": sums["mlm_loss_sum"] / weight, "masked_lm_accuracy": sums["mlm_correct"] / weight}
        if "nsp_loss_sum" in sums:
            n = max(sums["examples"], 1.0)
            out.update(next_sentence_loss=sums["nsp_loss_sum"] / n, next_sentence_accuracy=sums["nsp_correct"] / n)
            out["loss"] = out["mlm_loss"] + out["next_sentence_loss"]
        else:
            out["loss"] = out["mlm_loss"]
        return out

    def evaluate(self, model: tf_keras.Model, strategy: tf.distribute.Strategy, dataset: Any,
                 steps: int) -> dict[str, float]:
        """MLM (and NSP) loss and accuracy summed over the validation batches."""
        batch = self.task.validation_data.global_batch_size

        @tf.function
        def run(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            _, stats = strategy.run(lambda f: self.step(model, f, False, batch), args=(features,))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in stats.items()}

        sums: dict[str, float] = {}
        for i, features in enumerate(dataset):
            if 0 <= steps <= i:
                break
            for k, v in run(features).items():
                sums[k] = sums.get(k, 0.0) + float(v)
        return self.metrics(sums) if sums else {}
