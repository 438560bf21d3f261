"""Records written by Model Garden's own create_pretraining_data.py: refused without a spec (the refusal
names the one-liner), read by the trainer once ``python -m specs.describe`` wrote it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import specs
from specs import describe
from trainer import plan
from trainer.core import config
from trainer.experiments import bert_pretraining


@pytest.fixture(scope="module")
def mg_records(model_garden, shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mg_records")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), str(model_garden)]), TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-m", "official.nlp.data.create_pretraining_data",
                    f"--input_file={shared_data / 'text' / 'bert_sample_text.txt'}",
                    f"--output_file={folder / 'train.tfrecord'}",
                    f"--vocab_file={shared_data / 'vocab' / 'bert-base-uncased.vocab.txt'}", "--do_lower_case=true",
                    "--max_seq_length=64", "--max_predictions_per_seq=10", "--dupe_factor=1"],
                   check=True, env=env, capture_output=True)
    return folder


def _cfg(folder) -> config.Params:
    return plan.load_config("bert/pretraining", [], f"task.train_data.input_path={folder}/train.tfrecord,"
                              "task.train_data.seq_length=64,task.train_data.max_predictions_per_seq=10,"
                              "task.train_data.global_batch_size=4,"
                              # foreign records: no polyembed run folder, so no completion marker
                              "task.train_data.allow_incomplete=true")


@pytest.mark.slow
def test_model_garden_records_are_described_then_read(mg_records):
    cfg = _cfg(mg_records)
    with pytest.raises(specs.SpecError, match=r"python -m specs.describe --pretraining --max_seq_length N "):
        bert_pretraining.pretraining_dataset(cfg.task, cfg.task.train_data, "task.train_data", None, 0, check_only=True)

    wrong = specs.pretraining_spec(64, 20)
    with pytest.raises(specs.SpecError, match=r"feature 'masked_lm_positions' is int64\[10\] in the first record"):
        describe.check_records(wrong, [str(mg_records / "train.tfrecord")])

    assert describe.main(["--pretraining", "--max_seq_length", "64", "--max_predictions_per_seq", "10",
                          str(mg_records)]) == 0
    batch = next(iter(bert_pretraining.pretraining_dataset(cfg.task, cfg.task.train_data, "task.train_data", None, 0)))
    assert batch["input_word_ids"].shape == (4, 64) and batch["masked_lm_ids"].shape == (4, 10)
    assert describe.main(["--pretraining", "--max_seq_length", "128", str(mg_records)]) == 2  # never overwritten


@pytest.mark.slow
@pytest.mark.parametrize("compression,file_type,suffix", [("gzip", "tfrecord_compressed", ".tfrecord.gz"),
                                                          ("none", "tfrecord", ".tfrecord")])
def test_translation_pairs_compression_and_model_gardens_file_type(model_garden, shared_data, tmp_path,
                                                                   compression, file_type, suffix):
    """``--compression`` picks the shard format; Model Garden's LaBSE data loader reads each with the
    ``file_type`` docs/translation_pairs.md names."""
    from official.nlp.data import dual_encoder_dataloader

    from pipelines import translation_pairs
    from transforms.core import runtime

    tatoeba = shared_data / "translation" / "laser_tatoeba_v1"
    out = tmp_path / "out"
    runtime.run_pipeline("translation_pairs", [f"--input={tatoeba}/tatoeba.deu-eng.*", f"--output_dir={out}",
                                               "--split=train=1.0", f"--compression={compression}",
                                               "--no_stats_chart"], translation_pairs.build)
    shards = sorted((out / "train").glob("pairs-*"))
    assert shards and all(p.name.endswith(suffix) for p in shards)
    assert (shards[0].read_bytes()[:2] == b"\x1f\x8b") == (compression == "gzip")
    loader = dual_encoder_dataloader.DualEncoderDataLoader(dual_encoder_dataloader.DualEncoderDataConfig(
        input_path=f"{out}/train/pairs-*", file_type=file_type, global_batch_size=8, is_training=False,
        vocab_file=str(shared_data / "vocab" / "bert-base-multilingual-cased.vocab.txt"), lower_case=False,
        left_text_fields=("src_raw",), right_text_fields=("tgt_raw",), seq_length=32))
    batch = next(iter(loader.load()))
    assert batch["left_word_ids"].shape == (8, 32) and batch["right_word_ids"].shape == (8, 32)
