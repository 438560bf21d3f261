"""The trainer refuses what it cannot use (issue 22), on ``finetune_data`` runs of real GLUE subsets:
each case ends with exit 2 and one line naming the flag, key or file, writes nothing, never hangs
and never runs on random weights; two runs with one seed are identical."""

from __future__ import annotations

import os
import pathlib
import shutil

import numpy as np
import pytest
from test_sentence_prediction import TINY, _finetune_data, _override

from pipelines import finetune_data
from specs import run_folder
from trainer import convert_checkpoint, plan, task
from trainer.experiments import sentence_prediction as sp

pytestmark = pytest.mark.slow  # every test reads the module fixture's three finetune_data runs (~7 s) or trains


@pytest.fixture(scope="module")
def glue(tmp_path_factory, shared_data):
    """SST-2, RTE (other labels) and STS-B (regression) records, small."""
    root = tmp_path_factory.mktemp("refusals")
    return {name: _finetune_data(shared_data, root, name, 48, 40, test_from_dev=name == "SST-2")[0]
            for name in ("SST-2", "RTE", "STS-B")}


@pytest.fixture(scope="module")
def sst_run(glue, tmp_path_factory):
    """An SST-2 run trained 4 steps, with its checkpoint and params.yaml."""
    model_dir = tmp_path_factory.mktemp("sst_run") / "run"
    assert task.main(_args(glue["SST-2"], model_dir, "train", steps=4)) == 0
    return model_dir


def _args(out: pathlib.Path, model_dir: pathlib.Path, mode: str, steps: int = 4, **extra: str) -> list[str]:
    return ["--experiment=bert/sentence_prediction", f"--mode={mode}", f"--model_dir={model_dir}",
            f"--config_file={TINY}", f"--params_override={_override(out, steps=steps, **extra)}"]


def _refused(capsys: pytest.CaptureFixture, code: int) -> str:
    """Exit 2 and no traceback; returns the error line (the last on stderr)."""
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err[-3000:]
    return err.strip().splitlines()[-1]


def test_an_unfinished_finetune_data_run_is_refused_before_its_meta_data(glue, tmp_path, capsys):
    """A killed run: no completion marker, Beam's hidden temp folder beside the shards, no meta data.
    Before: the train/* glob met the temp folder (traceback) or meta data missing gave a label_type error."""
    killed = tmp_path / "killed"
    shutil.copytree(glue["SST-2"], killed)
    (killed / run_folder.COMPLETE_FILE).unlink()
    (killed / "meta_data.json").unlink()
    (killed / "train" / ".temp-finetune-1").mkdir()
    (killed / "train" / ".temp-finetune-1" / "part").write_bytes(b"x")
    line = _refused(capsys, task.main(_args(killed, tmp_path / "run", "train")))
    assert line == (f"error: task.train_data.input_path {killed}/train/*: the run in {killed} did not finish (no "
                    f"{run_folder.COMPLETE_FILE}); rerun it (task.train_data.allow_incomplete=true reads the partial "
                    "data anyway)")
    assert not (tmp_path / "run").exists()


def test_an_empty_train_split_is_refused_instead_of_hanging(glue, shared_data, tmp_path, capsys):
    """A header-only train.tsv, made with --allow_empty (finetune_data refuses it otherwise): before,
    training waited forever for a first batch at 100% CPU."""
    src = tmp_path / "sst"
    src.mkdir()
    (src / "train.tsv").write_text("sentence\tlabel\n", encoding="utf-8")
    shutil.copy(shared_data / "glue" / "SST-2" / "dev.tsv", src / "dev.tsv")
    out = tmp_path / "out"
    assert finetune_data.main(["--task=SST-2", f"--input_data_dir={src}", "--max_seq_length=32",
                               f"--vocab_file={shared_data / 'vocab' / 'bert-base-uncased.vocab.txt'}",
                               f"--output_dir={out}", "--allow_empty"]) == 0
    capsys.readouterr()
    line = _refused(capsys, task.main(_args(out, tmp_path / "run", "train")))
    assert line.startswith("error: task.train_data.input_path holds no record (") and f"{out}/train/" in line
    assert not (tmp_path / "run").exists()


def test_an_input_path_of_folders_names_them(glue, tmp_path, capsys):
    """input_path=OUT/* (the run folder, not OUT/train/*): before, "no schema.pbtxt next to the data"
    and a specs.describe hint for records that are ours."""
    line = _refused(capsys, task.main(_args(glue["SST-2"], tmp_path / "run", "train",
                                            **{"task.train_data.input_path": f"{glue['SST-2']}/*"})))
    assert line == (f"error: task.train_data.input_path names folders, not record files ({glue['SST-2']}/dead_letter): "
                    f"name the records inside, e.g. {glue['SST-2']}/dead_letter/*")
    assert not (tmp_path / "run").exists()


def test_validation_records_of_another_task_are_refused(glue, tmp_path, capsys):
    """SST-2 (labels 0, 1) trained and validated on RTE dev (entailment, not_entailment); before, it ran
    and reported an accuracy."""
    args = _args(glue["SST-2"], tmp_path / "run", "train_and_eval",
                 **{"task.validation_data.input_path": f"{glue['RTE']}/dev/*"})
    line = _refused(capsys, task.main(args))
    assert line == (f"error: task.label_names: {glue['RTE']}/meta_data.json gives ['entailment', 'not_entailment'] "
                    f"but {glue['SST-2']}/meta_data.json gives ['0', '1'] (the records are another task's)")
    assert not (tmp_path / "run").exists()


def test_eval_and_export_without_a_checkpoint_refuse_random_weights(glue, tmp_path, capsys):
    """Before: eval scored random weights ("eval at step 0") and export wrote a random classifier."""
    for mode in ("eval", "export", "predict"):
        line = _refused(capsys, task.main(_args(glue["SST-2"], tmp_path / "run", mode)))
        assert line == f"error: --mode={mode}: no checkpoint in {tmp_path}/run/checkpoints (train first: --mode=train)"
    assert not (tmp_path / "run").exists()


def test_a_one_label_classification_is_refused(shared_data, tmp_path, capsys):
    """Records whose meta data has one label (--max_labels=1 keeps the first one found): before, a
    1-class task the trainer took for regression and refused for its label type."""
    rows = (shared_data / "glue" / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:41]
    train = tmp_path / "train.tsv"
    train.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    assert finetune_data.main([f"--train_files={train}", "--text_a_field=0", "--label_field=1", "--max_labels=1",
                               f"--vocab_file={shared_data / 'vocab' / 'bert-base-uncased.vocab.txt'}",
                               "--max_seq_length=32", f"--output_dir={out}"]) == 0
    capsys.readouterr()
    args = ["--experiment=bert/sentence_prediction", "--mode=train", f"--model_dir={tmp_path}/run",
            f"--config_file={TINY}", f"--params_override=task.train_data.input_path={out}/train/*"]
    line = _refused(capsys, task.main(args))
    assert line == f"error: {out}/meta_data.json: num_labels is 1; a classification needs at least two labels"
    assert not (tmp_path / "run").exists()


def test_labse_refuses_the_transform_graph_of_an_unfinished_run(glue, tmp_path, capsys):
    """task.train_data.transform_output_dir of a run that did not finish (before: read as it was)."""
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / run_folder.STARTED_FILE).write_text('{"job": "translation_pairs"}')
    args = ["--experiment=labse/train", "--mode=train", f"--model_dir={tmp_path}/run",
            "--config_file=trainer/configs/labse_tiny.yaml",
            f"--params_override=task.train_data.input_path={glue['SST-2']}/train/*,"
            f"task.train_data.transform_output_dir={killed}"]
    line = _refused(capsys, task.main(args))
    assert line == (f"error: task.train_data.transform_output_dir {killed}: the run in {killed} did not finish (no "
                    f"{run_folder.COMPLETE_FILE}); rerun it (task.train_data.allow_incomplete=true reads the partial "
                    "data anyway)")
    assert not (tmp_path / "run").exists()


def test_regression_trains_without_validation_data(glue):
    """STS-B with no validation data; before: refused for task.validation_data.label_type=int."""
    override = f"task.train_data.input_path={glue['STS-B']}/train/*"
    cfg, _ = plan.resolve_init_source(plan.load_config(sp.NAME, [TINY], override))
    assert cfg.task.model.num_classes == 1 and cfg.task.validation_data.label_type == "float"


def test_convert_checkpoint_names_the_flag_typed_and_a_file_in_the_way(glue, tmp_path, capsys):
    line = _refused(capsys, convert_checkpoint.main([f"--model_dir={glue['SST-2']}", f"--output_dir={tmp_path}/o",
                                                     "--layout=tf1"]))
    assert line.startswith(f"error: --model_dir {glue['SST-2']} is a directory without one checkpoint in it")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    line = _refused(capsys, convert_checkpoint.main([f"--model_dir={glue['SST-2']}", f"--output_dir={a_file}",
                                                     "--layout=tf1"]))
    assert line == f"error: --output_dir {a_file} is a file, not a folder"
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_predicting_another_tasks_records_with_a_run_is_refused(glue, sst_run, tmp_path, capsys):
    """RTE records predicted with an SST-2 run; before, predictions.tsv got RTE's label names."""
    args = ["--experiment=bert/sentence_prediction", "--mode=predict", f"--model_dir={sst_run}",
            f"--config_file={TINY}", f"--params_override=task.validation_data.input_path={glue['RTE']}/dev/*,"
                                     f"task.predict_output_path={tmp_path}/p.tsv"]
    line = _refused(capsys, task.main(args))
    assert line == (f"error: task.label_names=['entailment', 'not_entailment'] but the run in {sst_run} was trained "
                    f"with ['0', '1'] ({sst_run}/params.yaml): the data is another task's")
    assert not (tmp_path / "p.tsv").exists()
    # a predictions file that is a folder: one line before the work (before: a traceback after it)
    line = _refused(capsys, task.main(_args(glue["SST-2"], sst_run, "predict",
                                            **{"task.predict_output_path": str(tmp_path)})))
    assert line == f"error: task.predict_output_path {tmp_path} is a folder; name the TSV file to write"


@pytest.mark.slow
def test_a_truncated_or_missing_checkpoint_is_one_line_everywhere(glue, sst_run, tmp_path, capsys):
    """Before: ``IndexError: Read less bytes than requested`` from init, resume, predict and convert."""
    run = tmp_path / "run"
    shutil.copytree(sst_run, run)
    data_file = next((run / "checkpoints").glob("ckpt-4.data-*"))
    with open(data_file, "r+b") as f:
        f.truncate(os.path.getsize(data_file) // 2)
    prefix = f"{run}/checkpoints/ckpt-4"
    cannot = "cannot read the checkpoint (IndexError: Read less bytes than requested)"
    line = _refused(capsys, task.main(_args(glue["SST-2"], run, "predict")))
    assert line == f"error: checkpoint {prefix}: {cannot}"
    line = _refused(capsys, task.main(_args(glue["SST-2"], run, "train", steps=8)))  # resume
    assert line == f"error: checkpoint {prefix}: {cannot}"
    line = _refused(capsys, task.main(_args(glue["SST-2"], tmp_path / "new", "train",
                                            **{"task.init_checkpoint": str(run)})))
    assert line == f"error: task.init_checkpoint {run}: {cannot}"
    assert not (tmp_path / "new").exists()
    line = _refused(capsys, convert_checkpoint.main([f"--model_dir={run}", f"--output_dir={tmp_path}/tf1",
                                                     "--layout=tf1"]))
    assert line == f"error: --model_dir {run}: {cannot}"
    data_file.unlink()
    line = _refused(capsys, task.main(_args(glue["SST-2"], run, "eval")))
    assert line.startswith(f"error: checkpoint {prefix}: cannot read the checkpoint (") and "No such file" in line
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in sst_run.iterdir())


@pytest.mark.slow
def test_two_runs_with_one_seed_have_identical_weights_and_eval_loss(glue, tmp_path):
    """Before: the classifier head was not seeded (eval loss 0.69339 vs 0.69394 with trainer.seed 42)."""
    results = []
    for name in ("a", "b"):
        cfg = plan.load_config(sp.NAME, [TINY], _override(glue["SST-2"], steps=4,
                                                             **{"task.train_data.deterministic": "true"}))
        trainer = plan.trainer(cfg, str(tmp_path / name))
        initial = [w.copy() for w in trainer.model.get_weights()]
        trainer.train()
        results.append((initial, trainer.model.get_weights(), trainer.evaluate()["loss"]))
    (init_a, final_a, loss_a), (init_b, final_b, loss_b) = results
    assert all(np.array_equal(x, y) for x, y in zip(init_a, init_b, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(final_a, final_b, strict=True))
    assert loss_a == loss_b


# --- more of the same kinds, in the other trainer commands --------------------------------------

def test_folders_that_are_files_and_missing_models_are_one_line(glue, shared_data, tmp_path, capsys):
    """--model_dir or --export_path naming a file (before: a traceback at the first write); an absent
    --model or --tsv, and a --pairs file pair that gives nothing to score, refused before the model is
    loaded (before: tracebacks)."""
    from trainer import evaluate, export_tfhub, similarity

    a_file = tmp_path / "file"
    a_file.write_text("x")
    line = _refused(capsys, task.main(_args(glue["SST-2"], a_file, "train")))
    assert line == f"error: --model_dir {a_file} is a file, not a folder"
    line = _refused(capsys, export_tfhub.main(["--experiment=bert/sentence_prediction", f"--model_dir={tmp_path}",
                                               f"--export_path={a_file}/x", "--export_type=classifier"]))
    assert line == f"error: --export_path {a_file}/x is inside {a_file}, which is a file, not a folder"
    tatoeba = shared_data / "translation" / "laser_tatoeba_v1"
    pair = f"--pairs={tatoeba}/tatoeba.deu-eng.deu:{tatoeba}/tatoeba.deu-eng.eng"
    line = _refused(capsys, evaluate.main([f"--model={tmp_path}/none", pair, "--max_lines=5"]))
    assert line.startswith(f"error: --model {tmp_path}/none: cannot load a SavedModel there (")
    line = _refused(capsys, similarity.main([f"--model={tmp_path}/none", f"--tsv={tmp_path}/none.tsv"]))
    assert line == f"trainer.similarity: error: --tsv {tmp_path}/none.tsv does not exist"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    line = _refused(capsys, evaluate.main([f"--model={tmp_path}/none", f"--pairs={empty}:{tatoeba}/tatoeba.deu-eng.eng",
                                           "--max_lines=5"]))
    assert line == (f"error: {empty} and {tatoeba}/tatoeba.deu-eng.eng give 0 and 5 lines to score (after "
                    "--skip_lines/--max_lines): line i of one must translate line i of the other")
