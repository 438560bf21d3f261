"""``convert_checkpoint --layout=hf`` and ``--layout=sentence_transformers`` checked by the third party's own
code: tiny ``labse/train`` runs (every weight random, so a swapped or missing mapping shows) with real BERT
vocabularies are converted, then loaded in the peer venv (``tests/peer_scripts/hf_embed.py``) by
``transformers.BertModel`` + ``AutoTokenizer`` and by ``SentenceTransformer``; their embeddings of 200 real
FLORES sentences in eight scripts must be our TF Hub export's ``default`` and their token ids ours. Refusals
are one line."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from trainer import convert_checkpoint, export_tfhub, plan
from trainer.core.run import write_params
from trainer.text.tokenization import BertTokenization

PEER_SCRIPT = os.path.join(os.path.dirname(__file__), "peer_scripts", "hf_embed.py")
PEER_PRETRAINING = os.path.join(os.path.dirname(__file__), "peer_scripts", "hf_pretraining.py")
SEQ = 48
FLORES = ("eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "ell_Grek", "zho_Hans", "jpn_Jpan", "hin_Deva")
MIN_COSINE = 0.9999
ATOL = 2e-5


def _sentences(shared_data) -> list[str]:
    """200 real sentences: 25 FLORES devtest lines in each of eight languages (accents, Greek's final sigma,
    CJK ideographs, Devanagari marks), many longer than SEQ tokens (so truncation is compared too)."""
    folder = shared_data / "translation" / "flores200_devtest"
    return [line for lang in FLORES
            for line in (folder / f"{lang}.devtest").read_text(encoding="utf-8").splitlines()[100:125]]


def _randomise(variables: list[tf.Variable], seed: int) -> None:
    """Every weight random (biases and layer norms too), so a swapped or missing mapping shows."""
    rng = np.random.default_rng(seed)
    for v in variables:
        scale = 0.5 if len(v.shape) == 1 else 0.2
        v.assign(rng.normal(1.0 if "gamma" in v.name else 0.0, scale, v.shape.as_list()).astype(np.float32))


def _run(folder, vocab: str, vocab_size: int, lower_case: bool, **model: str) -> None:
    """A tiny labse/train run's folder as the trainer leaves it (checkpoints/ckpt-1, params.yaml)."""
    encoder = dict(vocab_size=vocab_size, hidden_size=32, num_layers=2, num_attention_heads=2, intermediate_size=64,
                   max_position_embeddings=64, dropout_rate=0.0, attention_dropout_rate=0.05)
    parts = [f"task.model.encoder.{k}={v}" for k, v in encoder.items()]
    parts += [f"task.model.{k}={v}" for k, v in model.items()]
    parts += [f"task.{d}.{k}={v}" for d in ("train_data", "validation_data")
              for k, v in (("vocab_file", vocab), ("lower_case", str(lower_case).lower()), ("seq_length", SEQ))]
    cfg = plan.load_config("labse/train", [], ",".join([*parts, "runtime.distribution_strategy=one_device"]))
    trainer = plan.trainer(cfg, str(folder), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    _randomise(trainer.model.variables, seed=vocab_size)
    trainer.manager.save(checkpoint_number=1)
    write_params(str(folder), cfg)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


CASES = {  # vocabulary, casing, task.model overrides, the hidden_act config.json must say, the ST modules
    "mean_cased_exact_gelu": ("bert-base-multilingual-cased.vocab.txt", False,
                              dict(pooling="mean", normalize="false", **{"encoder.hidden_activation": "exact_gelu"}),
                              "gelu", ["Transformer", "Pooling"]),
    "cls_uncased_normalized": ("bert-base-uncased.vocab.txt", True, dict(pooling="cls", normalize="true"),
                               "gelu_pytorch_tanh", ["Transformer", "Pooling", "Dense", "Normalize"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_transformers_and_sentence_transformers_give_our_embeddings(case, tmp_path, shared_data, peer_python):
    import tensorflow_hub as hub

    vocab_name, lower_case, model, hidden_act, modules = CASES[case]
    vocab = str(shared_data / "vocab" / vocab_name)
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    run = tmp_path / "run"
    _run(run, vocab, vocab_size, lower_case, **model)

    export = str(tmp_path / "export")
    assert export_tfhub.main(["--experiment=labse/train", f"--model_dir={run}", f"--config_file={run}/params.yaml",
                              "--export_type=model", f"--export_path={export}"]) == 0
    for layout in ("hf", "sentence_transformers"):
        assert convert_checkpoint.main(["--model_dir", str(run), "--output_dir", str(tmp_path / layout),
                                        "--layout", layout]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["hidden_dropout_prob"] == 0.0 and config["attention_probs_dropout_prob"] == 0.05
    assert config["vocab_size"] == vocab_size and config["architectures"] == ["BertModel"]

    sentences = _sentences(shared_data)
    assert len(sentences) == 200
    inputs = BertTokenization(vocab, lower_case=lower_case)(tf.constant(sentences), seq_length=SEQ)
    ours = hub.load(export)(inputs, training=False)["default"].numpy()

    (tmp_path / "sentences.json").write_text(json.dumps(sentences, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "peer").mkdir()
    argv = [str(peer_python), PEER_SCRIPT, str(tmp_path / "sentences.json"), str(tmp_path / "peer"),
            f"--hf={tmp_path / 'hf'}", f"--st={tmp_path / 'sentence_transformers'}", f"--seq_length={SEQ}",
            f"--pooling={model['pooling']}"] + (["--normalize"] if model["normalize"] == "true" else [])
    done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"),
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["hf"]["missing"] == [] and report["hf"]["unexpected"] == []
    assert report["hf"]["hidden_act"] == hidden_act and report["hf"]["do_lower_case"] is lower_case
    assert report["st"] == {"modules": modules, "max_seq_length": SEQ}
    np.testing.assert_array_equal(np.load(tmp_path / "peer" / "hf_ids.npy"), inputs["input_word_ids"].numpy())
    for name in ("hf_emb", "st_emb"):
        got = np.load(tmp_path / "peer" / f"{name}.npy")
        cosines = _cosines(got, ours)
        print(f"{case} {name}: minimum cosine to our export over {len(cosines)} sentences {cosines.min():.7f}, "
              f"largest difference {np.abs(got - ours).max():.2e}")
        assert cosines.min() >= MIN_COSINE, (name, np.argsort(cosines)[:5], np.sort(cosines)[:5])
        # Closer than the cosine can tell: the other GELU (erf or tanh) moves these embeddings by about 1e-4
        # (measured) and leaves every cosine above 0.9999999.
        np.testing.assert_allclose(got, ours, atol=ATOL, rtol=0)


@pytest.fixture(scope="module")
def pretraining_run(tmp_path_factory):
    """A tiny bert/pretraining run (random weights, a small cased vocabulary in params.yaml), with our model's
    MLM and next-sentence logits on three rows of random ids (written as .npy beside it for the peer)."""
    root = tmp_path_factory.mktemp("pretraining")
    vocab = root / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n" + "".join(f"W{i}\n" for i in range(35)))
    shape = dict(vocab_size=40, hidden_size=8, num_layers=2, num_attention_heads=2, intermediate_size=16,
                 max_position_embeddings=16)
    cfg = plan.load_config("bert/pretraining", [], ",".join(
        [*(f"task.model.encoder.{k}={v}" for k, v in shape.items()), f"task.train_data.vocab_file={vocab}",
         "task.train_data.seq_length=16", "task.validation_data.seq_length=16",
         "runtime.distribution_strategy=one_device"]))
    trainer = plan.trainer(cfg, str(root / "run"), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    _randomise(trainer.model.variables, seed=3)
    trainer.manager.save(checkpoint_number=1)
    write_params(str(root / "run"), cfg)
    rng = np.random.default_rng(5)
    ids = rng.integers(5, 40, size=(3, 10)).astype(np.int32)
    mask = (np.arange(10)[None, :] < np.array([[10], [6], [3]])).astype(np.int32)
    inputs = {"input_word_ids": ids * mask, "input_mask": mask, "input_type_ids": (np.arange(10) >= 5) * mask,
              "masked_lm_positions": np.array([[1, 4], [2, 5], [0, 2]], np.int32)}
    out = trainer.model({k: tf.constant(v, tf.int32) for k, v in inputs.items()})
    for name, value in inputs.items():
        np.save(root / f"{name}.npy", value)
    return root, {"mlm_logits": out["mlm_logits"].numpy(), "nsp_logits": out["next_sentence"].numpy()}


@pytest.mark.slow
def test_bert_pretraining_run_is_bert_for_pretraining(pretraining_run, peer_python, tmp_path):
    """The heads travel as BertForPreTraining's (``bert.`` prefix, ``cls.*``, the decoder tied to the word
    embeddings, the pooler being the next-sentence dense layer) and give our logits; BertModel still loads
    every encoder weight."""
    root, ours = pretraining_run
    out = tmp_path / "hf"
    assert convert_checkpoint.main(["--model_dir", str(root / "run"), "--output_dir", str(out), "--layout", "hf"]) == 0
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    done = subprocess.run([str(peer_python), PEER_PRETRAINING, str(out), str(root)], capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["BertForPreTraining"] == {"missing": [], "unexpected": []} and report["tied"]
    assert report["BertModel"]["missing"] == [] and all(n.startswith("cls.") for n in report["BertModel"]["unexpected"])
    for name, value in ours.items():
        np.testing.assert_allclose(np.load(root / f"{name}.npy"), value, atol=ATOL, rtol=0)


def test_what_hugging_face_cannot_hold_is_one_line(pretraining_run, tmp_path, capsys):
    """A checkpoint whose bert_config.json names an activation Hugging Face has no name for, and one with no
    vocabulary for the tokenizer, stop with one line and write nothing; a known one is translated."""
    root, _ = pretraining_run
    tf1 = tmp_path / "tf1"
    assert convert_checkpoint.main(["--model_dir", str(root / "run"), "--output_dir", str(tf1), "--layout", "tf1"]) == 0
    capsys.readouterr()
    argv = ["--checkpoint_path", str(tf1 / "bert_model.ckpt"), "--layout", "hf"]

    (tf1 / "vocab.txt").unlink()
    assert convert_checkpoint.main([*argv, "--output_dir", str(tmp_path / "no_vocab")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--layout hf writes a tokenizer but" in err and "has no vocabulary" in err
    assert not (tmp_path / "no_vocab").exists()

    (tf1 / "vocab.txt").write_bytes((root / "vocab.txt").read_bytes())
    bert_config = json.loads((tf1 / "bert_config.json").read_text())
    (tf1 / "bert_config.json").write_text(json.dumps(dict(bert_config, hidden_act="gelu_fast")))
    assert convert_checkpoint.main([*argv, "--output_dir", str(tmp_path / "fast")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the hidden activation 'gelu_fast' has no Hugging Face hidden_act" in err
    assert not (tmp_path / "fast").exists()

    (tf1 / "bert_config.json").write_text(json.dumps(dict(bert_config, hidden_act="relu")))
    assert convert_checkpoint.main([*argv, "--output_dir", str(tmp_path / "relu")]) == 0
    assert json.loads((tmp_path / "relu" / "config.json").read_text())["hidden_act"] == "relu"
    assert json.loads((tmp_path / "relu" / "tokenizer_config.json").read_text())["do_lower_case"] is False
