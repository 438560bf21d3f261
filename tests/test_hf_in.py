"""Hugging Face and sentence-transformers folders in, checked against the third party's own code run in the
peer venv (torch 2.13.0 CPU, transformers, sentence-transformers): the real all-MiniLM-L6-v2 exported by
``trainer.export_tfhub --checkpoint_path=FOLDER`` gives sentence-transformers' own embeddings on real
sentences; a ``BertForMaskedLM`` written by transformers restores into ``bert/pretraining`` with its logits;
``labse/train`` starts from the folder with its pooling, vocabulary and casing; what this trainer cannot
reproduce stops at start-up with one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml
from test_interop import POSITIONS_MLM
from test_interop import _inputs as interop_inputs
from test_trainer import write_records

import specs
from specs.errors import ConfigError
from trainer import convert_checkpoint, export_tfhub, plan
from trainer.checkpoints import layouts
from trainer.checkpoints.opening import open_source
from trainer.checkpoints.restore import restore
from trainer.modeling import encoder as modeling

PEER_SCRIPTS = os.path.join(os.path.dirname(__file__), "peer_scripts")
FLORES_LANGS = ("eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "pol_Latn", "tur_Latn", "vie_Latn", "swh_Latn")


def run_peer(peer_python, script: str, *args: str) -> None:
    """The third party's own code, in the peer venv, offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([str(peer_python), os.path.join(PEER_SCRIPTS, script), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def real_sentences(shared_data, per_language: int = 25) -> list[str]:
    """200 FLORES-200 devtest sentences in 8 languages (Latin script, accents, long sentences)."""
    folder = shared_data / "translation" / "flores200_devtest"
    return [line for lang in FLORES_LANGS
            for line in (folder / f"{lang}.devtest").read_text(encoding="utf-8").splitlines()[:per_language]]


def cosines(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    return (ours * theirs).sum(axis=1)


@pytest.mark.slow
def test_minilm_export_gives_sentence_transformers_own_embeddings(minilm, peer_python, shared_data, tmp_path):
    from trainer.evaluation.embedder import Embedder

    sentences = real_sentences(shared_data)
    assert len(sentences) == 200
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    run_peer(peer_python, "st_encode.py", minilm, text, tmp_path / "theirs.npy")
    export = tmp_path / "export"
    assert export_tfhub.main(["--experiment=labse/train", f"--checkpoint_path={minilm}",
                              f"--export_path={export}"]) == 0
    embed = Embedder(str(export), seq_length=256)  # sentence-transformers' max_seq_length for this model
    assert bool(embed.encoder.do_lower_case.numpy()) is True  # from tokenizer_config.json
    assert open(embed.encoder.vocab_file.asset_path.numpy().decode(), encoding="utf-8").read() == (
        minilm / "vocab.txt").read_text(encoding="utf-8")
    theirs = np.load(tmp_path / "theirs.npy")
    similarity = cosines(embed(sentences), theirs)
    print(f"all-MiniLM-L6-v2, 200 FLORES sentences: min cosine {similarity.min():.7f}, mean {similarity.mean():.7f}")
    assert similarity.min() >= 0.9999
    # The text embedder: strings in, unit vectors out, the tokenisation inside (at the run's seq_length).
    assert export_tfhub.main(["--experiment=labse/train", f"--checkpoint_path={minilm}", "--export_type=text_embedder",
                              "--params_override=task.train_data.seq_length=256",
                              f"--export_path={tmp_path / 'text_embedder'}"]) == 0
    embedder = tf.saved_model.load(str(tmp_path / "text_embedder"))
    vectors = embedder(tf.constant(sentences)).numpy()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    served = embedder.signatures["serving_default"](texts=tf.constant(sentences[:3]))["embeddings"].numpy()
    np.testing.assert_allclose(served, vectors[:3], atol=1e-6)
    assert int(embedder.seq_length.numpy()) == 256 and bool(embedder.do_lower_case.numpy())
    assert cosines(vectors, theirs).min() >= 0.9999
    # Round trip: the folder written back as a sentence-transformers model gives the same embeddings there.
    converted = tmp_path / "converted"
    assert convert_checkpoint.main([f"--checkpoint_path={minilm}", f"--output_dir={converted}",
                                    "--layout=sentence_transformers"]) == 0
    modules = json.loads((converted / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((converted / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert json.loads((converted / "config.json").read_text())["hidden_act"] == "gelu"
    run_peer(peer_python, "st_encode.py", converted, text, tmp_path / "round_trip.npy")
    round_trip = cosines(np.load(tmp_path / "round_trip.npy"), theirs)
    print(f"all-MiniLM-L6-v2 -> polyembed -> sentence-transformers: min cosine {round_trip.min():.7f}")
    assert round_trip.min() >= 0.9999


@pytest.mark.slow
def test_masked_lm_written_by_transformers_restores_into_the_pretraining_head(peer_python, tmp_path):
    inputs = {name: value.numpy() for name, value in interop_inputs().items()}  # padded, two segments; vocab 120
    ids, mask, types = inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"]
    positions = POSITIONS_MLM.numpy()
    np.savez(tmp_path / "inputs.npz", masked_lm_positions=positions, **inputs)
    folder = tmp_path / "bert_for_masked_lm"
    run_peer(peer_python, "masked_lm.py", folder, tmp_path / "inputs.npz", tmp_path / "theirs.npy")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (folder / "vocab.txt").write_text("\n".join(specials + [f"w{i}" for i in range(115)]) + "\n", encoding="utf-8")
    cfg = plan.load_config("bert/pretraining", [], f"task.init_checkpoint={folder},task.train_data.seq_length=16,"
                           "task.validation_data.seq_length=16")
    cfg, source = plan.resolve_init_source(cfg)
    assert cfg.task.model.encoder.hidden_activation == "exact_gelu"  # transformers' "gelu" is the erf form
    assert cfg.task.model.encoder.num_layers == 2 and cfg.task.model.encoder.intermediate_size == 64
    model, _ = modeling.build_pretrainer(cfg.task)
    kept = restore(source, model.variables, cfg.task.model.encoder, layouts.MLM_ROLES + layouts.NSP_ROLES)
    assert set(kept) == {"pooler/kernel", "pooler/bias", *layouts.NSP_ROLES}  # BertForMaskedLM has neither
    ours = model({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types,
                  "masked_lm_positions": positions})["mlm_logits"].numpy()
    np.testing.assert_allclose(ours, np.load(tmp_path / "theirs.npy"), atol=1e-4, rtol=0)


def _copy(minilm, tmp_path, name: str, config: dict | None = None, pooling: dict | None = None,
          modules: list | None = None, weights: bool = True):
    """all-MiniLM-L6-v2 with one thing changed (the weights linked, not copied)."""
    folder = tmp_path / name
    shutil.copytree(minilm, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    if weights:
        os.symlink(minilm / "model.safetensors", folder / "model.safetensors")
    for path, change in (("config.json", config), ("1_Pooling/config.json", pooling)):
        if change:
            data = json.loads((folder / path).read_text())
            data.update(change)
            (folder / path).write_text(json.dumps(data))
    if modules is not None:
        (folder / "modules.json").write_text(json.dumps(modules))
    return folder


def test_what_cannot_be_reproduced_stops_with_one_line(minilm, tmp_path):
    st = "sentence_transformers.models."
    cases = {
        "xlm_roberta": (dict(config={"model_type": "xlm-roberta"}), "model_type 'xlm-roberta' is not supported"),
        "relative": (dict(config={"position_embedding_type": "relative_key"}),
                     "position_embedding_type 'relative_key' is not supported"),
        "eps": (dict(config={"layer_norm_eps": 1e-5}), "layer_norm_eps 1e-05 is not supported"),
        "act": (dict(config={"hidden_act": "quick_gelu"}), "hidden_act 'quick_gelu' is not supported"),
        "max_pooling": (dict(pooling={"pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True}),
                        "pooling max_tokens is not supported"),
        "raw_cls": (dict(pooling={"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}),
                    "cls pooling without a Tanh Dense"),
        "unknown_module": (dict(modules=[{"idx": 0, "name": "0", "path": "", "type": f"{st}Transformer"},
                                         {"idx": 1, "name": "1", "path": "1_Pooling", "type": f"{st}Pooling"},
                                         {"idx": 2, "name": "2", "path": "2_X", "type": f"{st}LayerNorm"}]),
                           f"module {st}LayerNorm after"),
        "torch_only": (dict(weights=False), "only pytorch_model.bin"),
    }
    for name, (change, message) in cases.items():
        folder = _copy(minilm, tmp_path, name, **change)
        if name == "torch_only":
            (folder / "pytorch_model.bin").write_bytes(b"not read")
        with pytest.raises(ConfigError) as e:
            open_source(str(folder))
        assert message in str(e.value), (name, str(e.value))
        assert "\n" not in str(e.value) and str(folder) in str(e.value)


def test_a_bad_folder_is_one_line_and_exit_2_from_the_command(minilm, tmp_path):
    folder = _copy(minilm, tmp_path, "xlm", config={"model_type": "xlm-roberta"})
    done = subprocess.run([sys.executable, "-m", "trainer.export_tfhub", "--experiment=labse/train",
                           f"--checkpoint_path={folder}", f"--export_path={tmp_path / 'out'}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --checkpoint_path {folder}: model_type 'xlm-roberta' is not supported (only bert)"]
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_an_explicit_activation_that_contradicts_the_folder_stops(minilm):
    cfg = plan.load_config("labse/train", [], f"task.init_checkpoint={minilm},"
                           "task.model.encoder.hidden_activation=gelu")
    with pytest.raises(ConfigError, match=r"hidden_activation=gelu contradicts .* \(exact_gelu\)"):
        plan.resolve_init_source(cfg)


@pytest.mark.slow
def test_labse_trains_from_minilm_with_its_pooling_vocabulary_and_casing(minilm, shared_data, tmp_path):
    """Two steps of labse/train from the real folder: params.yaml records what the folder decided."""
    tatoeba = shared_data / "translation" / "laser_tatoeba_v1"
    src = (tatoeba / "tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()[:64]
    tgt = (tatoeba / "tatoeba.deu-eng.eng").read_text(encoding="utf-8").splitlines()[:64]
    rows = [{"src_raw": s, "tgt_raw": t, "src_lang": "deu", "tgt_lang": "eng"} for s, t in zip(src, tgt, strict=True)]
    data = write_records(tmp_path / "pairs", specs.TRANSLATION_PAIRS, rows)
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "trainer.task", "--experiment=labse/train", "--mode=train",
                           f"--model_dir={run}", "--params_override="
                           f"task.init_checkpoint={minilm},task.train_data.input_path={data},"
                           "task.train_data.global_batch_size=8,task.train_data.seq_length=32,"
                           "task.logit_scale=20,task.logit_margin=0,task.bidirectional=false,"
                           "runtime.distribution_strategy=one_device,trainer.train_steps=2,trainer.steps_per_loop=1,"
                           "trainer.checkpoint_interval=2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    params = yaml.safe_load((run / "params.yaml").read_text())
    task = params["task"]
    assert task["model"]["pooling"] == "mean" and task["model"]["normalize"] is True
    assert task["model"]["encoder"]["hidden_size"] == 384 and task["model"]["encoder"]["num_layers"] == 6
    assert task["model"]["encoder"]["hidden_activation"] == "exact_gelu"
    assert task["train_data"]["vocab_file"] == str(minilm / "vocab.txt") and task["train_data"]["lower_case"] is True
