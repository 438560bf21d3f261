"""``bert/pretraining``: masked LM, plus next-sentence prediction when the records carry labels.

Everything this experiment is lives here: its config defaults, its data, model, training step and
metrics, and its export; the training loop (``trainer.train_lib``) is shared and knows none of it.
A task's ``step`` runs inside ``strategy.run`` on one replica and returns the loss whose gradient
to apply (already divided by the global batch, so replica gradients sum to the global mean) and a dict
of *sums* (loss sums, correct counts, example counts) that the loop adds over replicas and steps and
turns into metrics with ``metrics``.
"""

from __future__ import annotations

import copy
from typing import Any

import tensorflow as tf
import tf_keras

from trainer import checkpoint_layouts, data, losses, modeling
from trainer.config import _ENCODER, _RUNTIME, _TRAINER, _data_config
from trainer.experiments import BaseTask, export_encoder, unchanged

NAME = "bert/pretraining"

DEFAULTS: dict[str, Any] = {
    "task": {
        "init_checkpoint": "",  # any layout trainer.checkpoints reads (ours, Model Garden, Google BERT)
        "hub_module_url": "",  # or a TF Hub BERT encoder SavedModel (local or gs://) to start from
        "model": {"encoder": dict(_ENCODER), "num_classes": 2},
        # dynamic masking (records hold only ids and segments) draws this share of tokens
        "masking": {"masked_lm_prob": 0.15, "random_token_prob": 0.1, "keep_token_prob": 0.1},
        "train_data": _data_config(),
        "validation_data": _data_config(is_training=False, drop_remainder=False),
    },
    "trainer": copy.deepcopy(_TRAINER),
    "runtime": dict(_RUNTIME),
}


# Nothing to take from the data; the product is the encoder.
prepare = unchanged
export = export_encoder


class Task(BaseTask):
    """``bert/pretraining``: masked LM, plus next-sentence prediction when the records carry labels."""

    name = NAME
    # What task.init_checkpoint restores beside the encoder when the source has it.
    head_roles = checkpoint_layouts.MLM_ROLES + checkpoint_layouts.NSP_ROLES
    read_records = staticmethod(data.pretraining_dataset)

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
