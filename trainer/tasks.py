"""The two experiments as tasks: what model to build, what data to read, what loss to minimise and
what to measure. The training loop (``trainer.train_lib``) is shared and knows none of this.

A task's ``step`` runs inside ``strategy.run`` on one replica and returns the loss whose gradient
to apply (already divided by the global batch, so replica gradients sum to the global mean) and a dict
of *sums* (loss sums, correct counts, example counts) that the loop adds over replicas and steps and
turns into metrics with ``metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from trainer import checkpoints, data, losses, modeling


class PretrainingTask:
    """``bert/pretraining``: masked LM, plus next-sentence prediction when the records carry labels."""

    name = "bert/pretraining"
    # What task.init_checkpoint restores beside the encoder when the source has it.
    head_roles = checkpoints.MLM_ROLES + checkpoints.NSP_ROLES

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.task = cfg.task

    def build_model(self) -> tuple[tf_keras.Model, dict[str, Any]]:
        return modeling.build_pretrainer(self.task)

    def dataset(self, section: str, input_context: tf.distribute.InputContext | None = None,
                check_only: bool = False, start_step: int = 0) -> tf.data.Dataset | None:
        """``start_step``: the step a resumed run starts at (see ``data.input_seed``)."""
        return data.pretraining_dataset(self.task, self.task[section], f"task.{section}", input_context,
                                        data.input_seed(self.cfg.trainer.seed, start_step), check_only)

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


def _side(features: dict[str, tf.Tensor], side: str) -> dict[str, tf.Tensor]:
    return {n: features[f"{side}_{n}"] for n in modeling.INPUT_NAMES}


class DualEncoderTask:
    """``labse/train``: a shared encoder, additive-margin bidirectional in-batch softmax, and with
    ``cross_replica_negatives`` every replica's embeddings gathered so each pair competes against
    the whole global batch."""

    name = "labse/train"
    head_roles: tuple[str, ...] = ()

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.task = cfg.task

    def build_model(self) -> tuple[tf_keras.Model, dict[str, Any]]:
        return modeling.build_dual_encoder(self.task)

    def dataset(self, section: str, input_context: tf.distribute.InputContext | None = None,
                check_only: bool = False, start_step: int = 0) -> tf.data.Dataset | None:
        """``start_step``: the step a resumed run starts at (see ``data.input_seed``)."""
        return data.pairs_dataset(self.task, self.task[section], f"task.{section}", input_context,
                                  data.input_seed(self.cfg.trainer.seed, start_step), check_only)

    def step(self, model: tf_keras.Model, features: dict[str, tf.Tensor], training: bool,
             global_batch: int) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        src = model(_side(features, "src"), training=training)["pooled_output"]
        tgt = model(_side(features, "tgt"), training=training)["pooled_output"]
        if self.task.cross_replica_negatives:
            all_src, offset = losses.gather_from_replicas(src)
            all_tgt, _ = losses.gather_from_replicas(tgt)
        else:
            all_src, all_tgt, offset = src, tgt, tf.constant(0, tf.int32)
        out = losses.in_batch_softmax_loss_sum(src, tgt, all_src, all_tgt, offset, self.task.logit_scale,
                                               self.task.logit_margin, self.task.bidirectional)
        stats = {"loss_sum": out["loss"], "src_to_tgt_correct": out["src_to_tgt_correct"],
                 "examples": tf.cast(tf.shape(src)[0], tf.float32)}
        if "tgt_to_src_correct" in out:
            stats["tgt_to_src_correct"] = out["tgt_to_src_correct"]
        return out["loss"] / global_batch, stats

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums["examples"], 1.0)
        out = {"loss": sums["loss_sum"] / n, "in_batch_src_to_tgt_accuracy": sums["src_to_tgt_correct"] / n}
        if "tgt_to_src_correct" in sums:
            out["in_batch_tgt_to_src_accuracy"] = sums["tgt_to_src_correct"] / n
        return out

    def evaluate(self, model: tf_keras.Model, strategy: tf.distribute.Strategy, dataset: Any,
                 steps: int) -> dict[str, float]:
        """Retrieval precision@1 in both directions over all validation pairs (embeddings on the host)."""

        @tf.function
        def run(features: dict[str, tf.Tensor]) -> tuple[Any, Any]:
            def embed(f: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
                return (model(_side(f, "src"), training=False)["pooled_output"],
                        model(_side(f, "tgt"), training=False)["pooled_output"])
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


TASKS = {PretrainingTask.name: PretrainingTask, DualEncoderTask.name: DualEncoderTask}
