"""The tensorflow-transform path end to end on CPU: ``pipelines.translation_pairs --materialize_tokens``
on a real Tatoeba sample, ``labse/train`` trained on the token records it wrote (through
``transform_output_dir``), and exports that embed the job's own transform graph: the preprocessing
export gives the very ids the job materialised, the encoder's ``text_preprocessor`` makes the trained
model's embeddings from raw strings, and a vocabulary that tokenises differently stops the export."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from test_trainer import first_loss, small_vocab

import specs
from pipelines import translation_pairs
from specs.translation import tokenized_pairs_spec
from trainer import export_tfhub, plan
from trainer.core import config
from trainer.export import preprocessing
from trainer.modeling import encoder as modeling
from transforms.core import runtime

# Each test here takes over ~30 s (a whole job or a training run): not in the fast lane.
pytestmark = pytest.mark.slow

LANGS = ("deu", "fra", "spa", "ita")
SEQ = 24
STEPS = 80  # as in test_trainer's LaBSE run: at 40 the in-batch accuracy could stay near chance


def _ordered_records(directory, parsing: dict) -> dict[str, np.ndarray]:
    """Every record of a split's shards, in shard order (raw and token shards hold the same pairs in
    the same order: the job sorts both by the same seeded key)."""
    paths = sorted(str(p) for p in directory.glob("pairs-*.tfrecord.gz"))
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]
    return {k: v.numpy() for k, v in tf.io.parse_example(serialized, parsing).items()}


@pytest.fixture(scope="module")
def materialized(tmp_path_factory, shared_data):
    """The translation-pairs job with --materialize_tokens over 4 Tatoeba languages (400 lines each)."""
    root = tmp_path_factory.mktemp("tft")
    tatoeba = shared_data / "translation" / "laser_tatoeba_v1"
    inputs, texts = [], []
    for lang in LANGS:
        for side in (lang, "eng"):
            lines = (tatoeba / f"tatoeba.{lang}-eng.{side}").read_text(encoding="utf-8").splitlines()[:400]
            path = root / f"sample.{lang}-eng.{side}"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            inputs.append(str(path))
            texts += lines
    vocab = small_vocab(texts, root / "vocab.txt")
    out = root / "out"
    summary = runtime.run_pipeline("translation_pairs", [
        f"--input={','.join(inputs)}", f"--output_dir={out}", f"--vocab_file={vocab}", "--materialize_tokens",
        f"--seq_length={SEQ}", "--split=train=0.85,validation=0.15", "--num_shards=2", "--no_stats_chart"],
        translation_pairs.build)
    assert summary["balanced"]
    return {"out": out, "tokens": out / "tokens", "vocab": vocab,
            "vocab_size": len((root / "vocab.txt").read_text(encoding="utf-8").splitlines())}


def test_materialized_tokens_are_the_trainers_tokenisation_in_the_raw_order(materialized):
    """Every split's token records are ``trainer.text.tokenization`` of its raw records, record for record
    in the raw shards' order, and the job's transform graph (as a Keras layer) gives the same ids."""
    import tensorflow_transform as tft

    from trainer.text.tokenization import BertTokenization

    tokens = materialized["tokens"]
    spec = tokenized_pairs_spec(SEQ)
    output = tft.TFTransformOutput(str(tokens))
    assert output.transformed_feature_spec() == spec.tf_parsing_spec()
    tokenization = BertTokenization(materialized["vocab"], lower_case=False)
    layer = output.transform_features_layer()
    for split in ("train", "validation"):
        raw = _ordered_records(materialized["out"] / split, specs.TRANSLATION_PAIRS.tf_parsing_spec())
        got = _ordered_records(tokens / split, spec.tf_parsing_spec())
        assert len(got["src_input_word_ids"]) == len(raw["src_raw"]) > 0
        from_layer = layer({"src_raw": tf.constant(raw["src_raw"]), "tgt_raw": tf.constant(raw["tgt_raw"])})
        for side in ("src", "tgt"):
            want = tokenization(tf.constant(raw[f"{side}_raw"]), seq_length=SEQ, out_dtype=tf.int64)
            for name, value in want.items():
                np.testing.assert_array_equal(got[f"{side}_{name}"], value.numpy(), err_msg=f"{split} {side}_{name}")
                np.testing.assert_array_equal(from_layer[f"{side}_{name}"].numpy(), value.numpy())


def test_labse_trains_on_materialized_tokens_and_exports_the_transform_graph(materialized, tmp_path):
    import tensorflow_hub as hub

    from trainer.evaluation import embedder

    tokens = materialized["tokens"]
    override = ",".join([
        f"task.model.encoder.vocab_size={materialized['vocab_size']}", "task.model.encoder.hidden_size=64",
        "task.model.encoder.intermediate_size=128", "task.model.encoder.max_position_embeddings=64",
        "runtime.distribution_strategy=one_device", "trainer.max_to_keep=2",
        f"task.train_data.input_path={tokens}/train/pairs-*", f"task.train_data.transform_output_dir={tokens}",
        f"task.validation_data.input_path={tokens}/validation/pairs-*",
        f"task.validation_data.transform_output_dir={tokens}",
        f"task.train_data.vocab_file={materialized['vocab']}",  # only the export's vocab_file asset
        f"task.train_data.seq_length={SEQ}", f"task.validation_data.seq_length={SEQ}",
        "task.train_data.global_batch_size=32", "task.train_data.deterministic=true",
        f"trainer.train_steps={STEPS}", "trainer.steps_per_loop=20",
        f"trainer.checkpoint_interval={STEPS}",
        "trainer.optimizer_config.learning_rate.polynomial.initial_learning_rate=0.005",
        f"trainer.optimizer_config.learning_rate.polynomial.decay_steps={STEPS}",
        "trainer.optimizer_config.warmup.polynomial.warmup_steps=5"])
    cfg = plan.load_config("labse/train", ["trainer/configs/labse_tiny.yaml"], override)
    model_dir = tmp_path / "run"
    trainer = plan.trainer(cfg, str(model_dir))
    metrics = trainer.train()
    assert trainer.step == STEPS
    assert metrics["loss"] < first_loss(model_dir) - 0.1
    assert metrics["in_batch_src_to_tgt_accuracy"] > 2 / 32
    raw = _ordered_records(materialized["out"] / "validation", specs.TRANSLATION_PAIRS.tf_parsing_spec())
    want = _ordered_records(tokens / "validation", tokenized_pairs_spec(SEQ).tf_parsing_spec())
    n = len(raw["src_raw"])
    assert trainer.evaluate()["validation_pairs"] == n > 100  # validation reads the token records too

    # The exports, written by the command line from the run's own params.yaml.
    common = ["--experiment=labse/train", f"--model_dir={model_dir}", f"--config_file={model_dir}/params.yaml"]
    pre_dir, enc_dir = str(tmp_path / "pre"), str(tmp_path / "enc")
    assert export_tfhub.main([*common, "--export_type=preprocessing", f"--export_path={pre_dir}"]) == 0
    assert export_tfhub.main([*common, "--export_type=model", f"--export_path={enc_dir}"]) == 0
    pre, enc = hub.load(pre_dir), hub.load(enc_dir)

    # Raw strings through the exported transform graph give exactly the ids the job materialised, and
    # TF Hub's tokenize + bert_pack_inputs (over the vocab_file) agree with them.
    for side in ("src", "tgt"):
        strings = tf.constant(raw[f"{side}_raw"])
        called, via_text = pre(strings), enc.text_preprocessor(strings)
        packed = pre.bert_pack_inputs([pre.tokenize(strings)], seq_length=SEQ)
        for name in modeling.INPUT_NAMES:
            np.testing.assert_array_equal(called[name].numpy(), want[f"{side}_{name}"], err_msg=f"{side}_{name}")
            np.testing.assert_array_equal(via_text[name].numpy(), want[f"{side}_{name}"])
            np.testing.assert_array_equal(packed[name].numpy(), want[f"{side}_{name}"])
    assert pre.tokenize.get_special_tokens_dict()["vocab_size"].numpy() == materialized["vocab_size"]

    # Embeddings of the same sentences: the trained model on the materialised records vs. the reloaded
    # export on the raw strings (through its text_preprocessor), with hub.load and hub.KerasLayer.
    features = {n: tf.constant(want[f"src_{n}"][:16], tf.int32) for n in modeling.INPUT_NAMES}
    trained = trainer.model(features, training=False)["pooled_output"].numpy()
    sentences = tf.constant(raw["src_raw"][:16])
    from_export = enc(enc.text_preprocessor(sentences), training=False)["pooled_output"].numpy()
    np.testing.assert_allclose(from_export, trained, atol=1e-5)
    layer = hub.KerasLayer(enc_dir)
    np.testing.assert_allclose(layer(pre(sentences))["default"].numpy(), trained, atol=1e-5)

    # trainer.evaluate tokenises through the encoder's transform graph when it has one.
    embed = embedder.Embedder(enc_dir, seq_length=128)
    np.testing.assert_allclose(embed([s.decode() for s in raw["src_raw"][:16]]), trained, atol=1e-5)

    # A vocabulary that tokenises otherwise than the transform graph stops the export with one line.
    bert_vocab = str(materialized["vocab"]).replace("vocab.txt", "other_vocab.txt")
    lines = open(materialized["vocab"], encoding="utf-8").read().splitlines()
    open(bert_vocab, "w", encoding="utf-8").write("\n".join(lines[:5] + lines[40:]) + "\n")
    with pytest.raises(config.ConfigError, match=r"does not tokenise as the transform graph in .*tokens"):
        preprocessing.save_preprocessing(str(tmp_path / "bad"), bert_vocab, False, "fast", str(tokens))
