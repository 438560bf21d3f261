"""``labse/distill``: multilingual knowledge distillation (Reimers & Gurevych, 2020, "Making Monolingual
Sentence Embeddings Multilingual"). A student encoder learns to map a sentence and its translation onto a
teacher's embedding of the sentence: mean squared error between the student's sentence embedding of each
side (``src`` and ``tgt``) and ``teacher_embedding``, the teacher's embedding of the pair's English side,
written into the records by the data pipeline (``specs.distillation_pairs_spec``). Student and teacher are
any encoders the trainer reads (the student through ``task.init_checkpoint``, with its pooling and
normalisation; the teacher was applied when the records were written), as sentence-transformers'
``MSELoss`` recipe does.

``task.ranking_weight`` > 0 adds ``labse/train``'s additive-margin in-batch softmax (``logit_scale``,
``logit_margin``, ``bidirectional``, ``cross_replica_negatives``, as there), times the weight, to the two MSEs:
the ranking term pulls each source nearest its own pair's English among the batch's, where the MSE only pulls it
towards it. ``task.ranking_keys`` says whose English: ``student`` (the student's ``tgt`` embeddings, LaBSE's loss
between the two sides, which moves the English side too) or ``teacher`` (the fixed ``teacher_embedding``s, so
only the source side moves and the English side answers to its MSE alone). The terms differ in size: with
unit vectors (all-MiniLM-L6-v2's 384) each MSE is about 1e-3, as ``MSELoss`` takes it (a mean over dimensions),
and the ranking loss a few units, so a weight of 1e-3 makes them alike.

The data, model, export and evaluation (retrieval precision@1 both ways) are ``labse/train``'s; only the
records' spec and the training step differ.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

import specs
from specs.errors import ConfigError
from trainer.core.config import ENCODER, Params, data_config, experiment_defaults
from trainer.core.data import open_input
from trainer.experiments import labse

NAME = "labse/distill"
RANKING_KEYS = ("student", "teacher")

DEFAULTS: dict[str, Any] = experiment_defaults(
    model={"encoder": dict(ENCODER), "normalize": True, "pooling": "cls"},
    train_data=data_config(seq_length=128, lower_case=None),
    validation_data=data_config(seq_length=128, lower_case=None, is_training=False, drop_remainder=False),
    ranking_weight=0.0, ranking_keys="student", logit_scale=20.0, logit_margin=0.3, bidirectional=True,
    cross_replica_negatives=True,
)


def prepare(cfg: Params) -> Params:
    """``labse/train``'s (trim_padding), after refusing a negative ``task.ranking_weight`` or another
    ``task.ranking_keys`` at start-up."""
    if cfg.task.ranking_weight < 0:
        raise ConfigError(f"task.ranking_weight {cfg.task.ranking_weight} is negative (0 turns the ranking term off)")
    if cfg.task.ranking_keys not in RANKING_KEYS:
        raise ConfigError(f"task.ranking_keys {cfg.task.ranking_keys!r} is not one of {', '.join(RANKING_KEYS)}")
    return labse.prepare(cfg)

export = labse.export


def distillation_dataset(task_cfg: Any, data_cfg: Any, key: str, input_context: tf.distribute.InputContext | None,
                         seed: int, check_only: bool = False) -> tf.data.Dataset | None:
    """``labse/train``'s tokenised pairs plus ``teacher_embedding`` (float32 ``[teacher_dim]``), whose size
    must be the student's sentence embedding's (``task.model.encoder.hidden_size``)."""
    files, found, where = open_input(data_cfg, key)
    if data_cfg.transform_output_dir:
        raise ConfigError(f"{key}.transform_output_dir: labse/distill reads raw text pairs with teacher embeddings, "
                          "not materialised tokens")
    dim = found.params.get("teacher_dim")
    if not isinstance(dim, int) or specs.TEACHER_EMBEDDING not in found.names:
        raise specs.SpecError(f"{where}: the records carry no {specs.TEACHER_EMBEDDING} (spec {found.name!r}); "
                              "write them with a teacher (pipelines.translation_pairs --teacher=EXPORT)")
    hidden = task_cfg.model.encoder.hidden_size
    if dim != hidden:
        raise ConfigError(f"{where}: the teacher's embeddings have {dim} dimensions but the student's have {hidden} "
                          "(task.model.encoder.hidden_size)")
    expected = specs.distillation_pairs_spec(dim)
    return labse.raw_pairs(task_cfg, data_cfg, key, input_context, seed, check_only, files, found, where, expected)


def mse_sums(student: tf.Tensor, teacher: tf.Tensor) -> tf.Tensor:
    """Per example, the mean over dimensions of the squared error (``torch.nn.MSELoss``'s terms), summed
    over this replica's examples: divided by the global batch it is MSELoss's mean."""
    error = tf.cast(student, tf.float32) - tf.cast(teacher, tf.float32)
    return tf.reduce_sum(tf.reduce_mean(tf.square(error), axis=-1))


class Task(labse.Task):
    """``labse/distill``: the student's both sides against the teacher's embedding of the English side."""

    name = NAME
    read_records = staticmethod(distillation_dataset)

    def step(self, model: tf_keras.Model, features: dict[str, tf.Tensor], training: bool,
             global_batch: int) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        teacher = features[specs.TEACHER_EMBEDDING]
        src = model(labse.side(features, "src"), training=training)["default"]
        tgt = model(labse.side(features, "tgt"), training=training)["default"]
        src_sum, tgt_sum = mse_sums(src, teacher), mse_sums(tgt, teacher)
        stats = {"src_mse_sum": src_sum, "tgt_mse_sum": tgt_sum, "examples": tf.cast(tf.shape(src)[0], tf.float32)}
        loss_sum = src_sum + tgt_sum
        if self.task.ranking_weight > 0:
            ranking = self.in_batch(src, teacher if self.task.ranking_keys == "teacher" else tgt)
            stats["ranking_sum"] = ranking.pop("loss_sum")
            stats.update(ranking)  # the correct counts
            loss_sum += self.task.ranking_weight * stats["ranking_sum"]
        stats["loss_sum"] = loss_sum
        return loss_sum / global_batch, stats

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums["examples"], 1.0)
        out = {"loss": sums["loss_sum"] / n, "src_mse": sums["src_mse_sum"] / n, "tgt_mse": sums["tgt_mse_sum"] / n}
        if "ranking_sum" in sums:  # labse/train's metrics of the ranking term
            ranking = super().metrics({**sums, "loss_sum": sums["ranking_sum"]})
            out["ranking_loss"] = ranking.pop("loss")
            out.update(ranking)
        return out
