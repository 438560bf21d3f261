"""Every job once, end to end, on a small real input: the daily lane's (`make test-fast`) guard that each
command still runs, through the same entry points users call.

The thorough tests of each job are marked slow; without this file the fast lane ran no pipeline at all,
and so passed on Beam 2.78, which broke three of them at run time. Each run here checks what any run must
give: exit 0, a balanced account, the completion marker written last, and the outputs it names.
"""

from __future__ import annotations

import glob
import json
import pathlib

import pytest

from pipelines import dedup, finetune_data, inspect, pretrain_data, stackexchange, translation_pairs, vocab
from specs import run_folder
from transforms.core import runtime

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
TEXT = SAMPLES / "text" / "cycling.multilingual.txt"
DUMP = SAMPLES / "stackexchange" / "cycling.example.stackexchange.com"


def _complete(folder: pathlib.Path) -> None:
    """The run's account balanced and produced records, its completion marker was written, and every
    output the marker names exists (a file, a folder holding files, or a glob matching files)."""
    marker = json.loads((folder / run_folder.COMPLETE_FILE).read_text())
    summary = json.loads((folder / runtime.SUMMARY_FILE).read_text())
    assert summary["balanced"] and not runtime.produced_nothing(summary)
    assert marker["outputs"]
    for what, path in marker["outputs"].items():
        found = [pathlib.Path(p) for p in glob.glob(path)]
        assert any(f.is_file() or any(p.is_file() for p in f.rglob("*")) for f in found), (what, path)


@pytest.mark.parametrize("name, build, flags", [
    ("stackexchange", stackexchange.build, [f"--input={DUMP}", "--dedup=near"]),
    ("translation_pairs", translation_pairs.build, [f"--input={SAMPLES / 'translation'}/*.tsv"]),
    ("dedup", dedup.build, [f"--input={SAMPLES / 'text' / 'cycling.multilingual.jsonl'}", "--text_fields=text"]),
    ("vocab", vocab.build, [f"--input_patterns={TEXT}", "--vocab_size=400", "--min_word_count=1",
                            "--min_token_count=1"]),
])
def test_each_beam_job_runs_once(tmp_path, name, build, flags):
    out = tmp_path / name
    assert runtime.main(name, build, [*flags, f"--output_dir={out}"]) == 0
    _complete(out)


def test_pretrain_data_then_inspect_then_train(tmp_path, shared_data, capsys):
    """The pretraining records, read back by ``inspect`` and by the trainer for a few steps."""
    out, vocab_file = tmp_path / "pretrain", shared_data / "vocab" / "bert-base-multilingual-cased.vocab.txt"
    argv = [f"--input_patterns={TEXT}", f"--output_dir={out}", "--max_seq_length=64",
            "--max_predictions_per_seq=10", "--dupe_factor=1", f"--vocab_file={vocab_file}", "--do_lower_case=false"]
    assert runtime.main("pretrain_data", pretrain_data.build, argv) == 0
    _complete(out)
    assert inspect.main([str(out), "--num_examples=1", "--histogram="]) == 0
    assert "mask" in capsys.readouterr().out.lower()

    from trainer import task

    model_dir = tmp_path / "bert"
    overrides = ",".join([f"task.model.encoder.vocab_size={sum(1 for _ in vocab_file.open())}",
                          f"task.train_data.input_path={out}/pretrain-*", "task.train_data.seq_length=64",
                          "task.train_data.max_predictions_per_seq=10", "task.train_data.global_batch_size=8",
                          "trainer.train_steps=2", "trainer.steps_per_loop=2", "trainer.checkpoint_interval=2"])
    assert task.main(["--experiment=bert/pretraining", "--mode=train", f"--model_dir={model_dir}",
                      f"--config_file={REPO / 'trainer' / 'configs' / 'bert_tiny.yaml'}",
                      f"--params_override={overrides}"]) == 0
    assert list((model_dir / "checkpoints").glob("ckpt-2.*")), sorted(p.name for p in model_dir.rglob("*"))


def test_finetune_data_runs_once(tmp_path, shared_data):
    out = tmp_path / "mrpc"
    argv = ["--task=MRPC", f"--input_data_dir={shared_data / 'glue' / 'MRPC'}", "--max_seq_length=64",
            f"--vocab_file={shared_data / 'vocab' / 'bert-base-uncased.vocab.txt'}", f"--output_dir={out}"]
    assert finetune_data.main(argv) == 0
    _complete(out)
    assert list((out / "train").iterdir()) and list((out / "dev").iterdir())
