"""Optimizer and learning-rate schedule: AdamW with BERT's warm-up + polynomial decay, and a lazy
variant for large vocabularies.

``LazyAdamW`` (``trainer.optimizer_config.optimizer.adamw.lazy_sparse_updates``) updates only the rows
of an embedding table that the batch touched, moments and decoupled weight decay included, the way
LazyAdam does. Keras' AdamW rescales the whole table's moments on every step, so with a 120k-token
vocabulary that dense update costs more than the rest of a small model's step; the lazy form makes CPU
and GPU runs of small models practical. Rows a batch does not touch keep their moments instead of
decaying them, so it is not bit-for-bit Adam: off by default, on in the tiny configs. On TPU embedding
gradients arrive dense and the two are the same.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

from trainer.core.config import Params


class LazyAdamW(tf_keras.optimizers.AdamW):
    """AdamW whose sparse (``IndexedSlices``) updates touch only the gathered rows."""

    def _apply_weight_decay(self, variables: Any) -> None:
        """Decay is applied in ``update_step`` instead, to the rows being updated."""

    def _decay(self, variable: tf.Variable, rows: tf.Tensor) -> tf.Tensor:
        if self.weight_decay is None or not self._use_weight_decay(variable):
            return rows
        lr = tf.cast(self.learning_rate, variable.dtype)
        return rows - rows * tf.cast(self.weight_decay, variable.dtype) * lr

    def update_step(self, gradient: Any, variable: tf.Variable) -> None:
        if not isinstance(gradient, tf.IndexedSlices):
            variable.assign(self._decay(variable, variable))
            return super().update_step(gradient, variable)
        lr = tf.cast(self.learning_rate, variable.dtype)
        step = tf.cast(self.iterations + 1, variable.dtype)
        beta_1 = tf.cast(self.beta_1, variable.dtype)
        beta_2 = tf.cast(self.beta_2, variable.dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        key = self._var_key(variable)
        m = self._momentums[self._index_dict[key]]
        v = self._velocities[self._index_dict[key]]
        rows, where = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(gradient.values, where, tf.shape(rows)[0])
        m_rows = tf.gather(m, rows) * beta_1 + values * (1 - beta_1)
        v_rows = tf.gather(v, rows) * beta_2 + tf.square(values) * (1 - beta_2)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        var_rows = self._decay(variable, tf.gather(variable, rows))
        variable.scatter_update(tf.IndexedSlices(var_rows - alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon),
                                                 rows))


class WarmupPolynomialDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear (power 1) warm-up to the initial rate, then polynomial decay: BERT's schedule."""

    def __init__(self, initial: float, decay_steps: int, end: float, power: float, warmup_steps: int,
                 warmup_power: float) -> None:
        self.initial, self.decay_steps, self.end, self.power = initial, decay_steps, end, power
        self.warmup_steps, self.warmup_power = warmup_steps, warmup_power

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        progress = tf.minimum(step, float(self.decay_steps)) / max(float(self.decay_steps), 1.0)
        decayed = (self.initial - self.end) * (1.0 - progress) ** self.power + self.end
        if self.warmup_steps <= 0:
            return decayed
        warm = self.initial * (step / float(self.warmup_steps)) ** self.warmup_power
        return tf.where(step < self.warmup_steps, warm, decayed)

    def get_config(self) -> dict[str, Any]:
        return dict(initial=self.initial, decay_steps=self.decay_steps, end=self.end, power=self.power,
                    warmup_steps=self.warmup_steps, warmup_power=self.warmup_power)


def make_optimizer(trainer_cfg: Params, runtime: Params) -> tf_keras.optimizers.Optimizer:
    oc = trainer_cfg.optimizer_config
    warm = oc.warmup.polynomial if oc.warmup.type == "polynomial" else None
    if oc.learning_rate.type == "constant":
        lr = oc.learning_rate.constant.learning_rate
        schedule = WarmupPolynomialDecay(lr, 1, lr, 1.0, warm.warmup_steps if warm else 0,
                                         warm.power if warm else 1.0)
    else:
        p = oc.learning_rate.polynomial
        schedule = WarmupPolynomialDecay(p.initial_learning_rate, p.decay_steps, p.end_learning_rate, p.power,
                                         warm.warmup_steps if warm else 0, warm.power if warm else 1.0)
    a = oc.optimizer.adamw
    cls = LazyAdamW if a.lazy_sparse_updates else tf_keras.optimizers.AdamW
    opt = cls(learning_rate=schedule, weight_decay=a.weight_decay_rate, beta_1=a.beta_1,
                                    beta_2=a.beta_2, epsilon=a.epsilon, global_clipnorm=a.global_clipnorm or None)
    opt.exclude_from_weight_decay(var_names=list(a.exclude_from_weight_decay))
    if runtime.mixed_precision_dtype == "float16":
        opt = tf_keras.mixed_precision.LossScaleOptimizer(opt)
    return opt
