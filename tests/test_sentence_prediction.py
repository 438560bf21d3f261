"""``bert/sentence_prediction`` end to end on CPU: a tiny BERT fine-tuned a few steps on records that
``pipelines.finetune_data`` writes from real GLUE subsets (SST-2 classification, STS-B regression);
evaluation sees every dev example exactly once and its metrics are ``trainer.evaluation.metrics`` on the gathered
predictions; predict writes one TSV row per test example; init from a checkpoint; the exports give the
model's outputs; config defaults and contradictions from ``meta_data.json``; the experiment registry."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from pipelines import finetune_data
from trainer import experiments, plan, task
from trainer.core import config, loop
from trainer.evaluation import metrics
from trainer.experiments import sentence_prediction as sp
from transforms.core import runtime

SEQ = 32
TINY = "trainer/configs/sentence_prediction_tiny.yaml"


def _head(src: pathlib.Path, dst: pathlib.Path, n: int) -> None:
    """The first ``n`` lines of a real GLUE file (the shared STS-B files have no header)."""
    dst.write_bytes(b"".join(src.read_bytes().splitlines(keepends=True)[:n]))


def _finetune_data(shared_data: pathlib.Path, root: pathlib.Path, name: str, train: int, dev: int,
                   test_from_dev: bool = False) -> tuple[pathlib.Path, int, int]:
    glue = root / f"{name}_tsv"
    glue.mkdir()
    _head(shared_data / "glue" / name / "train.tsv", glue / "train.tsv", train + 1)
    _head(shared_data / "glue" / name / "dev.tsv", glue / "dev.tsv", dev + 1)
    n_test = 0
    if test_from_dev:  # GLUE's test layout (index, sentence; no label) made of SST-2 dev sentences
        rows = (shared_data / "glue" / name / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:41]
        (glue / "test.tsv").write_text("index\tsentence\n" + "".join(
            f"{i}\t{r.split(chr(9))[0]}\n" for i, r in enumerate(rows)), encoding="utf-8")
        n_test = len(rows)
    out = root / name
    runtime.run_pipeline("finetune_data", [f"--task={name}", f"--input_data_dir={glue}",
                                           f"--vocab_file={shared_data / 'vocab' / 'bert-base-uncased.vocab.txt'}",
                                           "--do_lower_case=true", f"--max_seq_length={SEQ}", f"--output_dir={out}"],
                         finetune_data.build)
    meta = json.loads((out / "meta_data.json").read_text())
    assert meta.get("test_data_size", 0) == n_test
    return out, meta["eval_data_size"], n_test


pytestmark = pytest.mark.slow  # ~5 minutes on 2 cores: tiny models, but several runs and exports


@pytest.fixture(scope="module")
def glue(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("sentence_prediction")
    sst, sst_dev, sst_test = _finetune_data(shared_data, root, "SST-2", 300, 150, test_from_dev=True)
    sts, sts_dev, _ = _finetune_data(shared_data, root, "STS-B", 300, 100)
    return {"root": root, "sst": sst, "sst_dev": sst_dev, "sst_test": sst_test, "sts": sts, "sts_dev": sts_dev}


def _override(out: pathlib.Path, steps: int = 8, **extra: str) -> str:
    items = {"task.train_data.input_path": f"{out}/train/*", "task.validation_data.input_path": f"{out}/dev/*",
             "task.validation_data.global_batch_size": "32", "task.train_data.global_batch_size": "16",
             "trainer.train_steps": str(steps), "trainer.steps_per_loop": "4", "trainer.checkpoint_interval": "4",
             "trainer.validation_interval": "4", **extra}
    return ",".join(f"{k}={v}" for k, v in items.items())


def _trainer(out: pathlib.Path, model_dir: pathlib.Path, **extra: str) -> loop.Trainer:
    cfg = plan.load_config(sp.NAME, [TINY], _override(out, **extra))
    return plan.trainer(cfg, str(model_dir))


@pytest.fixture(scope="module")
def sst_run(glue, tmp_path_factory):
    """One classification run on SST-2 (8 steps), trained once: the classification test evaluates,
    predicts and exports it, the init test restores its encoder from the checkpoint it wrote."""
    model_dir = tmp_path_factory.mktemp("sst_run") / "run"
    trainer = _trainer(glue["sst"], model_dir)
    first = trainer.train()
    return trainer, model_dir, first


def test_registry_lists_the_four_experiments():
    assert set(experiments.NAMES) == {"bert/pretraining", "labse/train", "labse/distill", "bert/sentence_prediction"}
    for name in experiments.NAMES:
        m = experiments.module(name)
        assert m.NAME == name and m.Task.name == name and callable(m.export) and callable(m.prepare)
        assert plan.load_config(name).experiment == name
    from trainer.launch import vertex as submit
    assert set(submit.EXPERIMENTS) == set(experiments.NAMES)


def test_defaults_from_meta_data_and_contradictions(glue):
    cfg, _ = plan.resolve_init_source(plan.load_config(sp.NAME, [TINY], _override(glue["sst"])))
    assert cfg.task.model.num_classes == 2 and cfg.task.train_data.seq_length == SEQ
    assert cfg.task.label_names == ["0", "1"] and cfg.task.validation_data.label_type == "int"
    assert cfg.task.train_data.vocab_file.endswith("bert-base-uncased.vocab.txt") and cfg.task.train_data.lower_case
    reg, _ = plan.resolve_init_source(plan.load_config(sp.NAME, [TINY], _override(glue["sts"])))
    assert reg.task.model.num_classes == 1 and reg.task.train_data.label_type == "float"
    assert reg.task.metric_type == "pearson_spearman_corr"
    for bad, what in (("task.model.num_classes=3", "num_classes=3 contradicts"),
                      ("task.train_data.seq_length=64", "seq_length=64 contradicts"),
                      ("task.metric_type=pearson", "metric_type 'pearson' is not one of")):
        with pytest.raises(config.ConfigError, match=what):
            plan.resolve_init_source(plan.load_config(sp.NAME, [TINY], _override(glue["sst"]) + "," + bad))


def test_classification_trains_evaluates_every_dev_example_and_predicts(glue, sst_run, tmp_path):
    trainer, run, first = sst_run
    assert np.isfinite(first["loss"]) and "accuracy" in first
    result = trainer.evaluate()
    # every dev example once: the gathered ids are exactly the dev rows
    dataset = trainer.strategy.distribute_datasets_from_function(
        lambda ctx: trainer.task.dataset("validation_data", ctx))
    got = trainer.task.gather(trainer.model, trainer.strategy, dataset)
    assert got["example_id"].tolist() == list(range(glue["sst_dev"]))
    # 150 dev rows in batches of 32: five batches of one static shape, the last padded with weight 0
    batches = list(trainer.task.dataset("validation_data"))
    assert trainer.task.dataset("validation_data").element_spec["input_word_ids"].shape == (32, SEQ)
    assert [int(b["is_real_example"].numpy().sum()) for b in batches] == [32, 32, 32, 32, 22]
    assert result["examples"] == glue["sst_dev"]
    predictions = np.argmax(got["logits"], axis=-1)
    assert result["accuracy"] == metrics.accuracy(got["label_ids"], predictions)
    assert result["f1"] == metrics.f1(got["label_ids"], predictions)
    assert result["matthews_corrcoef"] == metrics.matthews_corrcoef(got["label_ids"], predictions)
    assert result["metric"] == result["accuracy"]
    written = json.loads((run / "eval" / "metrics-8.json").read_text())
    assert written["accuracy"] == result["accuracy"] and written["step"] == 8
    assert json.loads((run / "best_checkpoint" / "best.json").read_text())["step"] == 8

    # predict over the test split (no labels): one row per test example, label names
    common = ["--experiment=bert/sentence_prediction", f"--model_dir={run}", f"--config_file={TINY}",
              f"--params_override={_override(glue['sst'])}"]
    tsv = tmp_path / "test.tsv"
    assert task.main([*common, "--mode=predict", "--params_override=task.validation_data.input_path="
                      f"{glue['sst']}/test/*,task.predict_output_path={tsv}"]) == 0
    rows = tsv.read_text().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 1 + glue["sst_test"]
    assert [r.split("\t")[0] for r in rows[1:]] == [str(i) for i in range(glue["sst_test"])]
    assert {r.split("\t")[1] for r in rows[1:]} <= {"0", "1"}

    # export: the classifier over the encoder inputs and over strings give the model's logits
    assert task.main([*common, "--mode=export"]) == 0
    batch = next(iter(trainer.task.dataset("validation_data")))
    inputs = {n: batch[n] for n in ("input_word_ids", "input_mask", "input_type_ids")}
    want = trainer.model(inputs, training=False)["logits"].numpy()
    exported = tf.saved_model.load(str(run / "export" / "classifier"))
    np.testing.assert_allclose(exported.signatures["serving_default"](**inputs)["logits"].numpy(), want,
                               atol=1e-5)
    # the same classifier from the export command, as TF Hub users call it
    from trainer import export_tfhub

    assert export_tfhub.main(["--experiment=bert/sentence_prediction", f"--model_dir={run}",
                              f"--config_file={TINY}", f"--params_override={_override(glue['sst'])}",
                              "--export_type=classifier", f"--export_path={tmp_path / 'hub_classifier'}"]) == 0
    hub_classifier = tf.saved_model.load(str(tmp_path / "hub_classifier"))
    np.testing.assert_allclose(hub_classifier.signatures["serving_default"](**inputs)["logits"].numpy(), want,
                               atol=1e-5)
    text = tf.saved_model.load(str(run / "export" / "text_classifier"))
    sentences = [r.split("\t")[0] for r in (glue["root"] / "SST-2_tsv" / "dev.tsv").read_text(
        encoding="utf-8").splitlines()[1:5]]
    from_text = text(tf.constant(sentences))["logits"].numpy()
    np.testing.assert_allclose(from_text, want[:4], atol=1e-5)
    from trainer.text.tokenization import BertTokenization

    packed = BertTokenization(trainer.cfg.task.train_data.vocab_file, True)(
        tf.constant(sentences[:2]), tf.constant(sentences[2:]), seq_length=SEQ)
    np.testing.assert_allclose(text.classify_pairs(tf.constant(sentences[:2]), tf.constant(sentences[2:]))[
        "logits"].numpy(), trainer.model(packed, training=False)["logits"].numpy(), atol=1e-5)


def test_regression_trains_and_scores_with_correlations(glue, tmp_path):
    trainer = _trainer(glue["sts"], tmp_path / "run")
    assert np.isfinite(trainer.train()["loss"])
    result = trainer.evaluate()
    dataset = trainer.strategy.distribute_datasets_from_function(
        lambda ctx: trainer.task.dataset("validation_data", ctx))
    got = trainer.task.gather(trainer.model, trainer.strategy, dataset)
    assert got["example_id"].tolist() == list(range(glue["sts_dev"])) and result["examples"] == glue["sts_dev"]
    scores = got["logits"][:, 0]
    assert result["pearson"] == metrics.pearson(got["label_ids"], scores)
    assert result["spearman"] == metrics.spearman(got["label_ids"], scores)
    assert result["metric"] == result["pearson_spearman_corr"]


def test_init_from_a_checkpoint_restores_the_encoder(glue, sst_run, tmp_path):
    first, run, _ = sst_run
    encoder = first.parts["encoder"]  # its weights are those of the last checkpoint (no step after it)
    second = _trainer(glue["sts"], tmp_path / "ft", **{"task.init_checkpoint": str(run / "checkpoints")})
    second.restore()
    for a, b in zip(encoder.weights, second.parts["encoder"].weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
