"""The training loop every experiment shares: distribution strategy, precision policy, optimizer,
checkpoints (with optimizer state, resumable after a kill), TensorBoard summaries and evaluation. It is
handed the experiment's task and the init source (``trainer.plan`` makes both) and knows no experiment.

Where the run's files go: ``trainer.core.run``. The global step is the optimizer's iteration counter,
so a restored checkpoint resumes at its step with the optimizer's moments as they were.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import tensorflow as tf
import tf_keras

from specs.errors import ConfigError
from trainer.checkpoints.restore import restore
from trainer.checkpoints.sources import Source, reading
from trainer.core.config import Params
from trainer.core.optimization import make_optimizer
from trainer.core.run import PARAMS_FILE, Dirs, dotted, run_params, write_params

log = logging.getLogger("trainer")


def write_scalars(writer: tf.summary.SummaryWriter, step: int, values: dict[str, float]) -> None:
    """Scalars in TensorBoard's format, written with TensorFlow's own summary op so the trainer does
    not need the tensorboard package installed (TF 2.21 no longer depends on it)."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()
    with writer.as_default(step=step):
        for k, v in values.items():
            tf.summary.write(k, tf.constant(v, tf.float32), metadata=metadata)
    writer.flush()


def make_strategy(runtime: Params, tpu_flag: str = "") -> tf.distribute.Strategy:
    """TPUStrategy (``--tpu`` or ``runtime.tpu``; "local" on a Vertex TPU VM), MirroredStrategy over the
    visible GPUs (or CPU), or one device."""
    kind = "tpu" if tpu_flag else runtime.distribution_strategy
    if kind == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_flag or runtime.tpu or "local")
        if (tpu_flag or runtime.tpu) not in ("local", ""):
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if runtime.num_gpus:
            gpus = gpus[:runtime.num_gpus]
        devices = [d.name for d in gpus] or None
        if devices is None and len(tf.config.list_logical_devices("CPU")) > 1:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def set_precision(runtime: Params) -> None:
    """bfloat16 on TPU (or a CPU with bfloat16 instructions) and float16 on GPU (with loss scaling) by
    ``runtime.mixed_precision_dtype``."""
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
    tf_keras.mixed_precision.set_global_policy(policy[runtime.mixed_precision_dtype])


class Trainer:
    """Builds everything for one experiment and runs train / eval / train_and_eval."""

    def __init__(self, cfg: Params, task: Any, model_dir: str, tpu: str = "",
                 strategy: tf.distribute.Strategy | None = None, init_source: Source | None = None) -> None:
        """``task``: the experiment's ``Task`` for ``cfg``; ``init_source``: the checkpoint or TF Hub
        module ``cfg`` starts from (``trainer.plan.resolve_init_source``), or None."""
        self.dirs = Dirs.from_env(model_dir)
        self.cfg = cfg
        self.init_source = init_source
        self.task = task
        set_precision(cfg.runtime)
        self.strategy = strategy or make_strategy(cfg.runtime, tpu)
        # Every initialiser and dropout layer without a seed of its own (the encoder's, every head's)
        # draws from this: two runs with the same trainer.seed start from the same weights.
        tf_keras.utils.set_random_seed(cfg.trainer.seed)
        with self.strategy.scope():
            self.model, self.parts = self.task.build_model()
            self.optimizer = make_optimizer(cfg.trainer, cfg.runtime)
            inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
            inner.build(self.model.trainable_variables)
        self._writers: dict[str, tf.summary.SummaryWriter] = {}
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, **self.parts)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.dirs.checkpoints,
                                                  max_to_keep=cfg.trainer.max_to_keep,
                                                  step_counter=self.optimizer.iterations,
                                                  checkpoint_interval=cfg.trainer.checkpoint_interval)

    def _writer(self, name: str) -> tf.summary.SummaryWriter:
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self.dirs.summaries, name))
        return self._writers[name]

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore(self) -> None:
        """The latest checkpoint of this run, else ``task.init_checkpoint`` / ``task.hub_module_url``
        (every encoder weight, and the task's heads where the source has them; see
        ``trainer.checkpoints.restore``), else fresh weights."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.read_checkpoint(latest)
            log.info("restored %s at step %d", latest, self.step)
        elif self.init_source is not None:
            restore(self.init_source, self.model.variables, self.cfg.task.model.encoder,
                                self.task.head_roles)

    def restore_trained(self, what: str) -> None:
        """For eval, predict and export: the run's latest checkpoint, which must exist (random weights
        are never scored, predicted with or exported)."""
        latest = self.manager.latest_checkpoint
        if not latest:
            raise ConfigError(f"{what}: no checkpoint in {self.dirs.checkpoints} (train first: --mode=train)")
        self.read_checkpoint(latest)
        log.info("restored %s at step %d", latest, self.step)

    def read_checkpoint(self, path: str, flag: str = "") -> None:
        """Every object of the model (and the optimizer with the step) from ``path``: the run's own
        latest checkpoint, or the one ``flag`` names (read without its save counter). The config must
        agree with the run's ``params.yaml`` on the task's ``run_keys``, and a checkpoint that cannot be
        read stops with one line (``checkpoints.reading``)."""
        self.check_run_params()
        with reading(f"{flag} {path}" if flag else f"checkpoint {path}"):
            (self.checkpoint.read if flag else self.checkpoint.restore)(path).assert_existing_objects_matched()

    def check_run_params(self) -> None:
        """Refuses a config that contradicts the run it reads on a key the task names in ``run_keys``
        (``bert/sentence_prediction``: the label names and class count): another task's records would
        be scored, or predicted with this run's labels."""
        path = os.path.join(self.dirs.model, PARAMS_FILE)
        keys = self.task.run_keys
        run = run_params(self.dirs.model) if keys else {}
        if not run:
            return
        ours = self.cfg.as_dict()
        for key in keys:
            node, theirs = dotted(ours, key), dotted(run, key)
            if theirs is not None and node != theirs:
                raise ConfigError(f"{key}={node!r} but the run in {self.dirs.model} was trained with {theirs!r} "
                                  f"({path}): the data is another task's")

    def make_train_steps(self) -> Any:
        task, model, opt, strategy = self.task, self.model, self.optimizer, self.strategy
        global_batch = self.cfg.task.train_data.global_batch_size
        scaled = isinstance(opt, tf_keras.mixed_precision.LossScaleOptimizer)

        def replica_step(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            with tf.GradientTape() as tape:
                loss, stats = task.step(model, features, True, global_batch)
                to_diff = opt.get_scaled_loss(loss) if scaled else loss
            variables = model.trainable_variables
            grads = tape.gradient(to_diff, variables)
            if scaled:
                grads = opt.get_unscaled_gradients(grads)
            # Pretraining leaves the encoder's own pooler unused (the NSP head has its dense layer,
            # as in Model Garden); it is exported as chosen by --pooler, not trained here.
            opt.apply_gradients([(g, v) for g, v in zip(grads, variables, strict=True) if g is not None])
            stats = dict(stats)
            stats["step_loss"] = loss
            return stats

        def one_step(iterator: Any) -> dict[str, tf.Tensor]:
            per_replica = strategy.run(replica_step, args=(next(iterator),))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

        @tf.function
        def train_steps(iterator: Any, n: tf.Tensor) -> dict[str, tf.Tensor]:
            """``n`` (>= 1) steps in one call; returns the stats summed over replicas and steps."""
            totals = one_step(iterator)
            for _ in tf.range(n - 1):
                step = one_step(iterator)
                totals = {k: totals[k] + step[k] for k in totals}
            return totals

        return train_steps

    def train(self, evaluate_every: int = 0) -> dict[str, float]:
        """Trains to ``trainer.train_steps``, checkpointing every ``checkpoint_interval`` steps (and at
        the end), logging metrics and examples/s every ``steps_per_loop``; with ``evaluate_every``
        also evaluates at that interval."""
        tc = self.cfg.trainer
        self.task.dataset("train_data", check_only=True)
        self.restore()
        start_step = self.step
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: self.task.dataset("train_data", ctx, start_step=start_step))
        iterator = iter(dataset)
        train_steps = self.make_train_steps()
        write_params(self.dirs.model, self.cfg)
        metrics: dict[str, float] = {}
        batch = self.cfg.task.train_data.global_batch_size
        while self.step < tc.train_steps:
            step = self.step
            boundaries = [tc.train_steps, (step // tc.steps_per_loop + 1) * tc.steps_per_loop,
                          (step // tc.checkpoint_interval + 1) * tc.checkpoint_interval]
            if evaluate_every:
                boundaries.append((step // evaluate_every + 1) * evaluate_every)
            n = min(boundaries) - step
            start = time.time()
            # The first call includes tracing; the loop's length is a tensor, so it is traced once.
            totals = {k: float(v) for k, v in train_steps(iterator, tf.constant(n)).items()}
            elapsed = time.time() - start
            metrics = self.task.metrics(totals)
            metrics["step_loss"] = totals["step_loss"] / n
            metrics["examples_per_second"] = n * batch / max(elapsed, 1e-9)
            metrics["learning_rate"] = float(self._learning_rate())
            write_scalars(self._writer("train"), self.step, metrics)
            log.info("step %d: %s", self.step, json.dumps({k: round(v, 5) for k, v in metrics.items()}))
            self.manager.save(checkpoint_number=self.step, check_interval=True)
            if evaluate_every and self.step % evaluate_every == 0 and self.step < tc.train_steps:
                self.evaluate()
        self.manager.save(checkpoint_number=self.step, check_interval=False)
        return metrics

    def _keep_if_best(self, key: str, metrics: dict[str, float]) -> None:
        best_dir = os.path.join(self.dirs.model, "best_checkpoint")
        best_json = os.path.join(best_dir, "best.json")
        if tf.io.gfile.exists(best_json):
            with tf.io.gfile.GFile(best_json) as f:
                best = json.load(f)[key]
            if not (metrics[key] > best or (best != best and metrics[key] == metrics[key])):  # NaN: any number wins
                return
        path = self.checkpoint.write(os.path.join(best_dir, "ckpt"))
        with tf.io.gfile.GFile(best_json, "w") as f:
            json.dump({"step": self.step, "checkpoint": path, **metrics}, f, indent=1)

    def _learning_rate(self) -> tf.Tensor:
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        lr = inner.learning_rate
        return lr(self.optimizer.iterations) if callable(lr) else lr

    def evaluate(self) -> dict[str, float]:
        """Validation metrics of the current weights, written to the ``eval`` summaries and to
        ``<model_dir>/eval/metrics-STEP.json``; a task with ``best_metric_key`` also keeps the
        checkpoint with its highest value in ``<model_dir>/best_checkpoint/`` (``best.json`` says which)."""
        if not self.cfg.task.validation_data.input_path:
            return {}
        self.task.dataset("validation_data", check_only=True)
        dataset = self.strategy.distribute_datasets_from_function(
            lambda ctx: self.task.dataset("validation_data", ctx))
        metrics = self.task.evaluate(self.model, self.strategy, dataset, self.cfg.trainer.validation_steps)
        write_scalars(self._writer("eval"), self.step, metrics)
        tf.io.gfile.makedirs(os.path.join(self.dirs.model, "eval"))
        with tf.io.gfile.GFile(os.path.join(self.dirs.model, "eval", f"metrics-{self.step}.json"), "w") as f:
            json.dump({"step": self.step, **metrics}, f, indent=1)
        key = getattr(self.task, "best_metric_key", "")
        if key in metrics:
            self._keep_if_best(key, metrics)
        log.info("eval at step %d: %s", self.step, json.dumps({k: round(v, 5) for k, v in metrics.items()}))
        return metrics
