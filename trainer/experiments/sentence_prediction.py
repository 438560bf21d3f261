"""``bert/sentence_prediction``: fine-tuning a BERT encoder for sentence (pair) classification or
regression on the records ``pipelines.finetune_data`` writes (Model Garden's sentence-prediction
records), as Model Garden's ``sentence_prediction`` task does.

- Model: the encoder (initialised from ``task.init_checkpoint`` or ``task.hub_module_url`` by
  ``trainer.core.loop`` like every experiment) and a head: dropout over the encoder's pooled output
  (``task.model.use_encoder_pooler: true``, Model Garden's default) or a dense/tanh over [CLS], then
  ``task.model.num_classes`` logits; ``num_classes: 1`` is regression (mean squared error).
- Defaults from the data (``prepare``): ``num_classes``, ``seq_length``, ``label_type``, the label
  names and the vocabulary/casing come from the ``meta_data.json`` next to the records (else the spec);
  an explicit setting that contradicts them stops at start-up with one line.
- Evaluation: every validation record once, in batches of one static size (the last one zero-padded,
  its padding rows ``is_real_example = 0`` and excluded, so a TPU evaluates the whole dev set),
  predictions gathered on the host and scored with ``trainer.evaluation.metrics``: accuracy, F1 (two classes) and
  Matthews correlation, or Pearson, Spearman and their mean. ``task.metric_type`` names the one the
  loop keeps the best checkpoint by.
- ``predict``: a GLUE submission TSV (``index<TAB>prediction``, label names for classification).
- ``export``: the classifier as a SavedModel over the TF Hub encoder inputs, and one over raw strings
  with the run's tokenisation inside (``trainer.text.tokenization``, as the preprocessing export).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from specs import run_folder
from specs.errors import ConfigError
from specs.finetune import sentence_prediction_spec
from trainer.core import data
from trainer.core.config import ENCODER, TRAINER, Params, data_config, experiment_defaults
from trainer.evaluation import metrics
from trainer.experiments.base import BaseTask
from trainer.export.classifier import save_classifier, save_text_classifier
from trainer.modeling import encoder as modeling

log = logging.getLogger("trainer")

NAME = "bert/sentence_prediction"
META_DATA_FILE = "meta_data.json"
CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews_corrcoef")
REGRESSION_METRICS = ("pearson", "spearman", "pearson_spearman_corr")

_TRAINER_FT = copy.deepcopy(TRAINER)
_TRAINER_FT.update(train_steps=1000, validation_interval=200, checkpoint_interval=200)
_TRAINER_FT["optimizer_config"]["learning_rate"]["polynomial"].update(initial_learning_rate=3e-5, decay_steps=1000)
_TRAINER_FT["optimizer_config"]["warmup"]["polynomial"]["warmup_steps"] = 100

DEFAULTS: dict[str, Any] = experiment_defaults(
    model={
        "encoder": dict(ENCODER),
        "num_classes": 2,  # 1: regression; default: the data's meta_data.json
        "dropout_rate": 0.1,  # before the logits
        "use_encoder_pooler": True,  # false: a dense/tanh over [CLS] of the sequence output
    },
    train_data=data_config(label_type="int", include_example_id=False),
    validation_data=data_config(is_training=False, drop_remainder=False, label_type="int", include_example_id=True),
    trainer=_TRAINER_FT,
    # accuracy | f1 | matthews_corrcoef (classification), pearson | spearman | pearson_spearman_corr
    # (regression): what evaluation summarises and the best checkpoint is chosen by
    metric_type="accuracy",
    label_names=[],  # the label list in id order (default: meta_data.json's "labels")
    predict_output_path="",  # --mode=predict's TSV (default <model_dir>/predictions.tsv)
)


def find_meta_data(files: list[str]) -> str:
    """The ``meta_data.json`` ``finetune_data`` wrote for these records: next to them or one folder
    up (``OUT/meta_data.json`` beside ``OUT/train/``), or ``""``."""
    directory = os.path.dirname(files[0])
    for candidate in (directory, os.path.dirname(directory), os.path.dirname(os.path.dirname(directory))):
        path = os.path.join(candidate, META_DATA_FILE)
        if tf.io.gfile.exists(path):
            return path
    return ""


def _set(cfg: dict[str, Any], explicit: frozenset[str], taken: dict[str, tuple[Any, str]], key: str, value: Any,
         source: str) -> None:
    """``key`` (dotted) defaults to ``value``; an explicit setting that differs stops with one line, and
    so does another data section that gave the key another value (``taken``: value and source per
    key): train, validation and predict records must be one task's (the same labels in the same order)."""
    *path, last = key.split(".")
    node = cfg
    for name in path:
        node = node[name]
    if key in explicit and node[last] != value:
        raise ConfigError(f"{key}={node[last]!r} contradicts {source} ({value!r})")
    if key in taken and taken[key][0] != value:
        raise ConfigError(f"{key}: {source} gives {value!r} but {taken[key][1]} gives {taken[key][0]!r} (the "
                          "records are another task's)")
    taken[key] = (value, source)
    node[last] = value


def prepare(cfg: Params) -> Params:
    """``cfg`` with the data's meta data (else its spec) as defaults for ``num_classes``, ``seq_length``,
    ``label_type``, ``label_names``, ``vocab_file`` and ``lower_case``; checks ``metric_type``. Each
    section's data that is reachable is opened (``data.open_input``: finished run, spec, records)
    before its meta data is read."""
    out = cfg.as_dict()
    taken: dict[str, tuple[Any, str]] = {}
    for section in ("train_data", "validation_data"):
        input_path = cfg.task[section].input_path
        if not any(tf.io.gfile.glob(p.strip()) for p in input_path.split(",") if p.strip()):
            continue  # no data here (an export elsewhere); a mode that reads it refuses it (Task.dataset)
        files, found, _ = data.open_input(cfg.task[section], f"task.{section}")
        meta_path = find_meta_data(files)
        if meta_path:
            with tf.io.gfile.GFile(meta_path) as f:
                meta = json.load(f)
            regression = meta.get("label_type") == "float" or meta.get("task_type") == "bert_regression"
            num_classes = 1 if regression else int(meta["num_labels"])
            if num_classes < 2 and not regression:
                raise ConfigError(f"{meta_path}: num_labels is {num_classes}; a classification needs at least two "
                                  "labels")
            _set(out, cfg.explicit, taken, "task.model.num_classes", num_classes, meta_path)
            _set(out, cfg.explicit, taken, f"task.{section}.label_type", "float" if regression else "int", meta_path)
            if "max_seq_length" in meta:
                _set(out, cfg.explicit, taken, f"task.{section}.seq_length", int(meta["max_seq_length"]), meta_path)
            if meta.get("labels") and not regression:
                _set(out, cfg.explicit, taken, "task.label_names", [str(x) for x in meta["labels"]], meta_path)
            if "do_lower_case" in meta:
                _set(out, cfg.explicit, taken, f"task.{section}.lower_case", bool(meta["do_lower_case"]), meta_path)
            vocab = meta.get("vocab_file", "")
            if vocab and not out["task"][section]["vocab_file"] and tf.io.gfile.exists(vocab):
                out["task"][section]["vocab_file"] = vocab
        elif found.name == "sentence_prediction" and "max_seq_length" in found.params:
            # no meta data: the spec says the length and label type
            where = f"the spec next to task.{section}.input_path"
            _set(out, cfg.explicit, taken, f"task.{section}.seq_length", int(found.params["max_seq_length"]), where)
            _set(out, cfg.explicit, taken, f"task.{section}.label_type", found.params.get("label_type", "int"),
                 where)
    task = out["task"]
    regression = task["model"]["num_classes"] == 1
    for section in ("train_data", "validation_data"):
        if not task[section]["input_path"] and f"task.{section}.label_type" not in cfg.explicit:
            task[section]["label_type"] = "float" if regression else "int"  # no data: the task's type
        if (task[section]["label_type"] == "float") != regression:
            raise ConfigError(f"task.{section}.label_type={task[section]['label_type']} but task.model.num_classes="
                              f"{task['model']['num_classes']} (1 is regression, with float labels)")
    if task["model"]["num_classes"] < 1:
        raise ConfigError(f"task.model.num_classes must be positive, got {task['model']['num_classes']}")
    allowed = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    if "task.metric_type" not in cfg.explicit and regression:
        task["metric_type"] = "pearson_spearman_corr"
    if task["metric_type"] not in allowed:
        raise ConfigError(f"task.metric_type {task['metric_type']!r} is not one of {', '.join(allowed)} "
                          f"({'regression' if regression else 'classification'})")
    if task["metric_type"] == "f1" and task["model"]["num_classes"] != 2:
        raise ConfigError("task.metric_type f1 is the positive class's F1: it needs task.model.num_classes 2")
    if task["label_names"] and len(task["label_names"]) != task["model"]["num_classes"] and not regression:
        raise ConfigError(f"task.label_names has {len(task['label_names'])} names but task.model.num_classes is "
                          f"{task['model']['num_classes']}")
    return Params(out, cfg.explicit)


def scores(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> dict[str, float]:
    """Every metric of the task type (``trainer.evaluation.metrics``); the mean of Pearson and Spearman is Model
    Garden's ``pearson_spearman_corr``."""
    if num_classes == 1:
        p, s = metrics.pearson(labels, predictions), metrics.spearman(labels, predictions)
        return {"pearson": p, "spearman": s, "pearson_spearman_corr": (p + s) / 2}
    out = {"accuracy": metrics.accuracy(labels, predictions),
           "matthews_corrcoef": metrics.matthews_corrcoef(labels, predictions)}
    if num_classes == 2:
        out["f1"] = metrics.f1(labels, predictions)
    return out


class Head(tf_keras.layers.Layer):
    """Dropout then logits over the pooled output, or over a dense/tanh of [CLS]; logits in float32."""

    def __init__(self, num_classes: int, dropout_rate: float, use_encoder_pooler: bool, hidden_size: int,
                 initializer_range: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        init = tf_keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.use_encoder_pooler = use_encoder_pooler
        self.dense = None if use_encoder_pooler else tf_keras.layers.Dense(
            hidden_size, activation="tanh", kernel_initializer=init, name="pooler_dense")
        self.dropout = tf_keras.layers.Dropout(dropout_rate)
        self.out_proj = tf_keras.layers.Dense(num_classes, kernel_initializer=init, dtype=tf.float32, name="logits")

    def call(self, pooled: tf.Tensor, sequence: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = pooled if self.dense is None else self.dense(sequence[:, 0])
        return self.out_proj(self.dropout(x, training=training))


def build_classifier(task_cfg: Any) -> tuple[tf_keras.Model, dict[str, Any]]:
    """Encoder inputs -> ``{"logits": [batch, num_classes]}``; parts ``encoder`` and ``classifier``."""
    m = task_cfg.model
    encoder = modeling.build_encoder(m.encoder)
    inputs = {n: tf_keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in modeling.INPUT_NAMES}
    out = encoder(inputs)
    head = Head(m.num_classes, m.dropout_rate, m.use_encoder_pooler, m.encoder.hidden_size,
                m.encoder.initializer_range, name="classifier")
    logits = head(out["pooled_output"], out["sequence_output"])
    return tf_keras.Model(inputs, {"logits": logits}, name="bert_classifier"), {"encoder": encoder, "classifier": head}


def _inputs(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {n: features[n] for n in modeling.INPUT_NAMES}


class Task(BaseTask):
    """Fine-tuning one encoder + head on sentence-prediction records (no head roles: a pretraining
    checkpoint's heads are not this task's)."""

    name = NAME
    run_keys = ("task.model.num_classes", "task.label_names")  # another task's records are not this run's
    best_metric_key = "metric"  # the loop keeps the checkpoint with the highest ``metric`` (task.metric_type)

    @property
    def exports(self) -> dict[str, Any]:
        """The exports this experiment offers beside the encoder's (``--export_type``)."""
        return {"classifier": classifier_export, "text_classifier": text_classifier_export}

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.num_classes = cfg.task.model.num_classes
        self.regression = self.num_classes == 1

    def build_model(self) -> tuple[tf_keras.Model, dict[str, Any]]:
        return build_classifier(self.task)

    def dataset(self, section: str, input_context: tf.distribute.InputContext | None = None,
                check_only: bool = False, start_step: int = 0) -> tf.data.Dataset | None:
        """Batches with the encoder's input names (int32), ``label_ids``, ``is_real_example`` and
        ``example_id``; the records' spec must be the sentence-prediction spec of ``seq_length``."""
        data_cfg, key = self.task[section], f"task.{section}"
        files, found, where = data.open_input(data_cfg, key)
        expected = sentence_prediction_spec(data_cfg.seq_length, data_cfg.label_type == "float")
        found.require(expected, where=where)
        if check_only:
            return None
        parsing = expected.tf_parsing_spec()
        label_dtype = tf.float32 if self.regression else tf.int32

        def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            p = tf.io.parse_example(serialized, parsing)
            return {"input_word_ids": tf.cast(p["input_ids"], tf.int32),
                    "input_mask": tf.cast(p["input_mask"], tf.int32),
                    "input_type_ids": tf.cast(p["segment_ids"], tf.int32),
                    "label_ids": tf.cast(p["label_ids"], label_dtype),
                    "is_real_example": tf.cast(p["is_real_example"], tf.float32),
                    "example_id": p["example_id"]}

        return data.make_dataset(files, data_cfg, input_context, data.input_seed(self.cfg.trainer.seed, start_step),
                                 parse_batch=parse, pad_final_batch=not data_cfg.is_training)

    def step(self, model: tf_keras.Model, features: dict[str, tf.Tensor], training: bool,
             global_batch: int) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        logits = tf.cast(model(_inputs(features), training=training)["logits"], tf.float32)
        weight = features["is_real_example"]
        if self.regression:
            per_example = tf.square(logits[:, 0] - features["label_ids"])
            stats = {}
        else:
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(features["label_ids"], logits)
            correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), features["label_ids"]), tf.float32)
            stats = {"correct": tf.reduce_sum(correct * weight)}
        loss_sum = tf.reduce_sum(per_example * weight)
        stats.update(loss_sum=loss_sum, examples=tf.reduce_sum(weight))
        return loss_sum / global_batch, stats

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums["examples"], 1.0)
        out = {"loss": sums["loss_sum"] / n}
        if "correct" in sums:
            out["accuracy"] = sums["correct"] / n
        return out

    def gather(self, model: tf_keras.Model, strategy: tf.distribute.Strategy, dataset: Any,
               steps: int = -1) -> dict[str, np.ndarray]:
        """Every real example's ``example_id``, ``label_ids`` and ``logits`` (on the host, by id)."""

        @tf.function
        def run(features: dict[str, tf.Tensor]) -> Any:
            def forward(f: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
                return {"logits": tf.cast(model(_inputs(f), training=False)["logits"], tf.float32),
                        **{k: f[k] for k in ("example_id", "label_ids", "is_real_example")}}
            return strategy.run(forward, args=(features,))

        parts: dict[str, list[np.ndarray]] = {"logits": [], "example_id": [], "label_ids": [], "is_real_example": []}
        for i, features in enumerate(dataset):
            if 0 <= steps <= i:
                break
            out = run(features)
            for k, v in out.items():
                parts[k] += [np.asarray(x) for x in strategy.experimental_local_results(v)]
        if not parts["logits"]:
            return {}
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        real = arrays.pop("is_real_example") > 0
        arrays = {k: v[real] for k, v in arrays.items()}
        order = np.argsort(arrays["example_id"], kind="stable")
        arrays = {k: v[order] for k, v in arrays.items()}
        ids = arrays["example_id"]
        if len(ids) > 1 and np.any(ids[1:] == ids[:-1]):
            raise ValueError(f"example_id {int(ids[1:][ids[1:] == ids[:-1]][0])} occurs more than once in the "
                             "validation data")
        return arrays

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return logits[:, 0] if self.regression else np.argmax(logits, axis=-1)

    def evaluate(self, model: tf_keras.Model, strategy: tf.distribute.Strategy, dataset: Any,
                 steps: int) -> dict[str, float]:
        """The metrics over every validation example (``steps`` -1, the default) with the loss;
        ``metric`` is the ``task.metric_type`` one."""
        got = self.gather(model, strategy, dataset, steps)
        if not got:
            return {}
        logits, labels = got["logits"], got["label_ids"]
        out = scores(labels, self.predictions(logits), self.num_classes)
        if self.regression:
            out["loss"] = float(np.mean(np.square(logits[:, 0] - labels)))
        else:
            shifted = logits - logits.max(axis=-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            out["loss"] = float(-np.mean(log_probs[np.arange(len(labels)), labels.astype(np.int64)]))
        out["examples"] = float(len(labels))
        out["metric"] = out[self.task.metric_type]
        return out


def predict(trainer: Any) -> str:
    """``--mode=predict``: the restored model over ``task.validation_data`` (point it at the test
    records) as a GLUE submission TSV: ``index<TAB>prediction``, one row per real example in id order,
    label names for classification (``task.label_names``, else ids), scores for regression."""
    task: Task = trainer.task
    path = trainer.cfg.task.predict_output_path or os.path.join(trainer.dirs.model, "predictions.tsv")
    if tf.io.gfile.isdir(path):  # one line before the work, not a traceback after it
        raise ConfigError(f"task.predict_output_path {path} is a folder; name the TSV file to write")
    run_folder.check_writable_place(os.path.dirname(path) or ".", "task.predict_output_path")
    task.dataset("validation_data", check_only=True)
    dataset = trainer.strategy.distribute_datasets_from_function(lambda ctx: task.dataset("validation_data", ctx))
    got = task.gather(trainer.model, trainer.strategy, dataset)
    names = list(trainer.cfg.task.label_names)
    rows = ["index\tprediction"]
    if got:
        for example_id, p in zip(got["example_id"], task.predictions(got["logits"]), strict=True):
            value = f"{float(p):.6g}" if task.regression else (names[int(p)] if names else str(int(p)))
            rows.append(f"{int(example_id)}\t{value}")
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    log.info("wrote %d predictions to %s", len(rows) - 1, path)
    return path


def _float32_classifier(trainer: Any) -> tf_keras.Model:
    """A float32 copy of the trained classifier (whatever precision it trained in)."""
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy("float32")
    try:
        model, _ = build_classifier(trainer.cfg.task)
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)
    model.set_weights(trainer.model.get_weights())
    return model


def classifier_export(trainer: Any, path: str, vocab_file: str, lower_case: bool) -> str:
    """``--export_type=classifier``: the trained classifier over TF Hub's encoder inputs."""
    return save_classifier(_float32_classifier(trainer), path, vocab_file, lower_case)


def text_classifier_export(trainer: Any, path: str, vocab_file: str, lower_case: bool) -> str:
    """``--export_type=text_classifier``: the trained classifier over raw strings."""
    data_cfg = trainer.cfg.task.train_data
    return save_text_classifier(_float32_classifier(trainer), path, vocab_file, lower_case, data_cfg.seq_length,
                                data_cfg.tokenizer)


def export_classifier(trainer: Any, export_dir: str, vocab_file: str, lower_case: bool) -> list[str]:
    """``classifier/`` (``classifier_export``) and, when the run's vocabulary is known,
    ``text_classifier/`` (``text_classifier_export``); loadable with ``tf.saved_model.load`` /
    ``hub.load``. Returns the paths written."""
    written = [classifier_export(trainer, os.path.join(export_dir, "classifier"), vocab_file, lower_case)]
    if vocab_file:
        written.append(text_classifier_export(trainer, os.path.join(export_dir, "text_classifier"), vocab_file,
                                              lower_case))
    else:
        log.info("no vocabulary known for the run (task.train_data.vocab_file): text_classifier not exported")
    return written


def export(trainer: Any, export_dir: str, vocab_file: str, lower_case: bool) -> list[str]:
    """``--mode=export``: the classifier exports (``export_classifier``)."""
    return export_classifier(trainer, export_dir, vocab_file, lower_case)

