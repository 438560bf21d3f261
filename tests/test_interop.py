"""Encoders people already have, in and out: checkpoints and TF Hub modules written by the third party's
own code (Model Garden's BertEncoder / BertPretrainerV2 / export_tfhub, a TF1 ``Saver`` under Google BERT's
variable names) initialise this trainer's encoder to the same outputs, and what we write back is read by
Model Garden's own code to the same outputs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from specs.errors import ConfigError
from trainer import plan
from trainer.checkpoints import convert as ckpt_convert
from trainer.checkpoints import layouts as checkpoint_layouts
from trainer.checkpoints import restore as ckpt_restore
from trainer.checkpoints import sources as ckpt_sources
from trainer.core import config
from trainer.modeling import encoder as modeling
from trainer.text import vocabulary

V, H, LAYERS, HEADS, INNER, POSITIONS = 120, 32, 2, 2, 64, 16
TOL = 1e-5


def _cfg(experiment: str = "bert/pretraining", **encoder: int) -> config.Params:
    shape = dict(vocab_size=V, hidden_size=H, num_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=INNER,
                 max_position_embeddings=POSITIONS, dropout_rate=0.0, attention_dropout_rate=0.0)
    shape.update(encoder)
    override = ",".join(f"task.model.encoder.{k}={v}" for k, v in shape.items())
    return plan.load_config(experiment, [], override + ",task.train_data.seq_length=16,"
                              "task.validation_data.seq_length=16")


def _inputs() -> dict[str, tf.Tensor]:
    """Three rows of 10: full, padded after 6 and after 3; two segments in each row's real tokens."""
    rng = np.random.default_rng(7)
    ids = rng.integers(5, V, size=(3, 10)).astype(np.int32)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, length in enumerate((10, 6, 3)):
        mask[row, :length] = 1
        types[row, length // 2:length] = 1
    ids[mask == 0] = 0
    return {"input_word_ids": tf.constant(ids), "input_mask": tf.constant(mask), "input_type_ids": tf.constant(types)}


POSITIONS_MLM = tf.constant([[1, 4], [2, 5], [0, 2]], tf.int32)


def _randomise(variables: list[tf.Variable], seed: int = 0) -> None:
    """Every weight random (biases and layer norms too), so a swapped or missing mapping shows."""
    rng = np.random.default_rng(seed)
    for v in variables:
        scale = 0.5 if len(v.shape) == 1 else 0.2
        v.assign(rng.normal(1.0 if "gamma" in v.name else 0.0, scale, v.shape.as_list()).astype(np.float32))


@pytest.fixture(scope="module")
def mg(model_garden):
    """Model Garden's BertPretrainerV2 (BertEncoder + MLM + next-sentence head), all weights random."""
    from official.modeling import tf_utils
    from official.nlp.modeling import layers, models, networks

    encoder = networks.BertEncoder(vocab_size=V, hidden_size=H, num_layers=LAYERS, num_attention_heads=HEADS,
                                   intermediate_size=INNER, max_sequence_length=POSITIONS, type_vocab_size=2,
                                   dropout_rate=0.0, attention_dropout_rate=0.0,
                                   activation=tf_utils.get_activation("gelu"), dict_outputs=True)
    nsp = layers.ClassificationHead(inner_dim=H, num_classes=2, name="next_sentence")
    pretrainer = models.BertPretrainerV2(encoder_network=encoder, classification_heads=[nsp],
                                         mlm_activation=tf_utils.get_activation("gelu"))
    inputs = dict(_inputs(), masked_lm_positions=POSITIONS_MLM)
    pretrainer(inputs)
    _randomise(pretrainer.variables)
    out = pretrainer(inputs)
    enc_out = encoder(_inputs())
    return {"encoder": encoder, "pretrainer": pretrainer, "sequence_output": enc_out["sequence_output"].numpy(),
            "pooled_output": enc_out["pooled_output"].numpy(), "mlm_logits": out["mlm_logits"].numpy(),
            "next_sentence": out["next_sentence"].numpy()}


def _ours(experiment: str = "bert/pretraining"):
    cfg = _cfg(experiment)
    if experiment == "bert/pretraining":
        model, parts = modeling.build_pretrainer(cfg.task)
    else:
        model, parts = modeling.build_dual_encoder(cfg.task)
    return cfg, model, parts


def _assert_same_encoder(parts, reference) -> None:
    out = parts["encoder"](_inputs())
    np.testing.assert_allclose(out["sequence_output"].numpy(), reference["sequence_output"], atol=TOL, rtol=0)
    np.testing.assert_allclose(out["pooled_output"].numpy(), reference["pooled_output"], atol=TOL, rtol=0)


def _assert_same_pretrainer(model, reference) -> None:
    out = model(dict(_inputs(), masked_lm_positions=POSITIONS_MLM))
    np.testing.assert_allclose(out["mlm_logits"].numpy(), reference["mlm_logits"], atol=TOL, rtol=0)


def _restore(path: str, experiment: str = "bert/pretraining", hub: bool = False):
    cfg, model, parts = _ours(experiment)
    source = ckpt_sources.open_hub_module(path) if hub else ckpt_sources.open_checkpoint(path)
    heads = checkpoint_layouts.MLM_ROLES + checkpoint_layouts.NSP_ROLES if experiment == "bert/pretraining" else ()
    kept = ckpt_restore.restore(source, model.variables, cfg.task.model.encoder, heads)
    return source, model, parts, kept


# Google's BERT variable names, written here by hand from google-research/bert's modeling.py / run_pretraining.py
# (not from trainer.checkpoints), filled from Model Garden's weights.
def _google_names(mg) -> dict[str, np.ndarray]:
    encoder, pretrainer = mg["encoder"], mg["pretrainer"]
    by_name = {v.name.split(":")[0]: v.numpy() for v in pretrainer.variables}
    out = {"bert/embeddings/word_embeddings": by_name["word_embeddings/embeddings"],
           "bert/embeddings/token_type_embeddings": by_name["type_embeddings/embeddings"],
           "bert/embeddings/position_embeddings": by_name["position_embedding/embeddings"],
           "bert/embeddings/LayerNorm/gamma": by_name["embeddings/layer_norm/gamma"],
           "bert/embeddings/LayerNorm/beta": by_name["embeddings/layer_norm/beta"],
           "bert/pooler/dense/kernel": by_name["pooler_transform/kernel"],
           "bert/pooler/dense/bias": by_name["pooler_transform/bias"]}
    for i in range(LAYERS):
        mg_layer, tf1 = f"transformer/layer_{i}/", f"bert/encoder/layer_{i}/"
        for name in ("query", "key", "value"):
            out[f"{tf1}attention/self/{name}/kernel"] = by_name[f"{mg_layer}self_attention/{name}/kernel"].reshape(H, H)
            out[f"{tf1}attention/self/{name}/bias"] = by_name[f"{mg_layer}self_attention/{name}/bias"].reshape(H)
        out[f"{tf1}attention/output/dense/kernel"] = by_name[
            f"{mg_layer}self_attention/attention_output/kernel"].reshape(H, H)
        out[f"{tf1}attention/output/dense/bias"] = by_name[f"{mg_layer}self_attention/attention_output/bias"]
        for ours, theirs in (("attention/output/LayerNorm", "self_attention_layer_norm"),
                             ("output/LayerNorm", "output_layer_norm")):
            for w in ("gamma", "beta"):
                out[f"{tf1}{ours}/{w}"] = by_name[f"{mg_layer}{theirs}/{w}"]
        for ours, theirs in (("intermediate/dense", "intermediate"), ("output/dense", "output")):
            for w in ("kernel", "bias"):
                out[f"{tf1}{ours}/{w}"] = by_name[f"{mg_layer}{theirs}/{w}"]
    mlm = pretrainer.masked_lm
    out["cls/predictions/transform/dense/kernel"] = mlm.dense.kernel.numpy()
    out["cls/predictions/transform/dense/bias"] = mlm.dense.bias.numpy()
    out["cls/predictions/transform/LayerNorm/gamma"] = mlm.layer_norm.gamma.numpy()
    out["cls/predictions/transform/LayerNorm/beta"] = mlm.layer_norm.beta.numpy()
    out["cls/predictions/output_bias"] = mlm.bias.numpy()
    out["cls/seq_relationship/output_weights"] = np.zeros([2, H], np.float32)
    out["cls/seq_relationship/output_bias"] = np.zeros([2], np.float32)
    assert encoder is pretrainer.encoder_network
    return out


def _write_tf1(mg, folder: str, drop: str = "") -> str:
    """A TF1 checkpoint as Google's BERT writes it: tf.compat.v1 variables and a Saver, plus bert_config.json."""
    os.makedirs(folder, exist_ok=True)
    names = _google_names(mg)
    graph = tf.Graph()
    with graph.as_default():
        for name, value in names.items():
            if name != drop:
                tf.compat.v1.get_variable(name, initializer=tf.constant(value))
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.path.join(folder, "bert_model.ckpt"), write_meta_graph=False)
    os.remove(os.path.join(folder, "checkpoint"))  # Google's downloads hold no 'checkpoint' file
    with open(os.path.join(folder, "bert_config.json"), "w") as f:
        json.dump({"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                   "hidden_size": H, "initializer_range": 0.02, "intermediate_size": INNER,
                   "max_position_embeddings": POSITIONS, "num_attention_heads": HEADS,
                   "num_hidden_layers": LAYERS, "type_vocab_size": 2, "vocab_size": V}, f)
    return folder


@pytest.mark.slow
def test_model_garden_encoder_checkpoint(mg, tmp_path):
    path = tf.train.Checkpoint(encoder=mg["encoder"]).write(str(tmp_path / "mg" / "ckpt"))
    source, _, parts, kept = _restore(path)
    assert source.layout.name == "model_garden"
    _assert_same_encoder(parts, mg)
    # an encoder alone: heads stay fresh
    assert kept == list(checkpoint_layouts.MLM_ROLES + checkpoint_layouts.NSP_ROLES)


@pytest.mark.slow
def test_model_garden_pretrainer_checkpoints(mg, tmp_path):
    items = tf.train.Checkpoint(**mg["pretrainer"].checkpoint_items).write(str(tmp_path / "items" / "ckpt"))
    source, model, parts, kept = _restore(items)
    assert source.layout.name == "model_garden"
    _assert_same_encoder(parts, mg)
    _assert_same_pretrainer(model, mg)
    assert kept == ["nsp/logits/kernel", "nsp/logits/bias"]  # checkpoint_items hold only the head's pooler_dense

    run = tf.train.Checkpoint(model=mg["pretrainer"]).write(str(tmp_path / "run" / "ckpt"))
    source, model, parts, kept = _restore(run)
    assert source.layout.name == "model_garden_trainer" and kept == []
    _assert_same_encoder(parts, mg)
    _assert_same_pretrainer(model, mg)
    np.testing.assert_allclose(model(dict(_inputs(), masked_lm_positions=POSITIONS_MLM))["next_sentence"].numpy(),
                               mg["next_sentence"], atol=TOL, rtol=0)


@pytest.mark.slow
def test_google_tf1_checkpoint_both_experiments(mg, tmp_path):
    folder = _write_tf1(mg, str(tmp_path / "uncased_L-2_H-32_A-2"))
    for experiment in ("bert/pretraining", "labse/train"):
        source, model, parts, _ = _restore(folder, experiment)
        assert source.layout.name == "tf1" and source.config["num_attention_heads"] == HEADS
        _assert_same_encoder(parts, mg)
    _, model, _, _ = _restore(folder)
    _assert_same_pretrainer(model, mg)


@pytest.mark.slow
def test_tf1_checkpoint_was_silently_ignored_and_now_is_read(mg, tmp_path):
    """What ``task.init_checkpoint`` did before: ``read(...).expect_partial()`` matched nothing."""
    folder = _write_tf1(mg, str(tmp_path / "bert"))
    _, _, parts = _ours()
    before = [v.numpy().copy() for v in parts["encoder"].variables]
    tf.train.Checkpoint(encoder=parts["encoder"]).read(os.path.join(folder, "bert_model.ckpt")).expect_partial()
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, parts["encoder"].variables, strict=True))

    ckpt_restore.restore(ckpt_sources.open_checkpoint(folder), parts["encoder"].variables, _cfg().task.model.encoder)
    _assert_same_encoder(parts, mg)


@pytest.mark.slow
def test_trainer_init_checkpoint_and_start_up_errors(mg, tmp_path):
    from trainer import plan

    folder = _write_tf1(mg, str(tmp_path / "tf1"))
    cfg = plan.load_config("labse/train", [], _override(init_checkpoint=folder))
    trainer = plan.trainer(cfg, str(tmp_path / "run"), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    trainer.restore()
    _assert_same_encoder(trainer.parts, mg)

    with pytest.raises(ConfigError, match=r"^task.init_checkpoint .*bert/embeddings/word_embeddings has shape "
                                          r"\[120, 32\] but task.model.encoder gives \[30522, 32\]$"):
        plan.trainer(plan.load_config("labse/train", [], _override(init_checkpoint=folder, vocab_size=30522)),
                          str(tmp_path / "run2"), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    # shape keys no config file or override set come from the source (labse/train's defaults are LaBSE-base)
    cfg, _ = plan.resolve_init_source(plan.load_config("labse/train", [], f"task.init_checkpoint={folder},"
                                                              "task.train_data.seq_length=16,"
                                                              "task.validation_data.seq_length=16"))
    assert {k: cfg.task.model.encoder[k] for k in ("vocab_size", "hidden_size", "num_layers", "num_attention_heads",
                                                   "intermediate_size", "max_position_embeddings")} == dict(
        vocab_size=V, hidden_size=H, num_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=INNER,
        max_position_embeddings=POSITIONS)
    with pytest.raises(ConfigError, match=r"has 2 layers .* but task.model.encoder.num_layers is 3$"):
        plan.trainer(plan.load_config("labse/train", [], _override(init_checkpoint=folder, num_layers=3)),
                          str(tmp_path / "run3"), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))


def _override(init_checkpoint: str = "", hub_module_url: str = "", **encoder: int) -> str:
    shape = dict(vocab_size=V, hidden_size=H, num_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=INNER,
                 max_position_embeddings=POSITIONS, dropout_rate=0.0, attention_dropout_rate=0.0)
    shape.update(encoder)
    parts = [f"task.model.encoder.{k}={v}" for k, v in shape.items()]
    parts += ["task.train_data.seq_length=16", "task.validation_data.seq_length=16",
              "runtime.distribution_strategy=one_device"]
    if init_checkpoint:
        parts.append(f"task.init_checkpoint={init_checkpoint}")
    if hub_module_url:
        parts.append(f"task.hub_module_url={hub_module_url}")
    return ",".join(parts)


@pytest.mark.slow
def test_partial_and_foreign_checkpoints_stop_with_one_line(mg, tmp_path, capsys):
    partial = _write_tf1(mg, str(tmp_path / "partial"), drop="bert/encoder/layer_1/output/dense/bias")
    with pytest.raises(ConfigError) as e:
        _restore(partial)
    assert "has no layer_1/output/bias (looked for bert/encoder/layer_1/output/dense/bias)" in str(e.value)
    assert "\n" not in str(e.value)

    # the job: one line on stderr, exit 2, before any data is read
    from trainer import task

    assert task.main(["--experiment=labse/train", "--mode=train", f"--model_dir={tmp_path / 'run'}",
                      "--params_override=" + _override(init_checkpoint=partial)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: task.init_checkpoint ") and "has no layer_1/output/bias" in err
    assert err.count("\n") == 1

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable("resnet/conv1/kernel", shape=[3, 3])
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            foreign = tf.compat.v1.train.Saver().save(session, str(tmp_path / "foreign" / "model.ckpt"))
    with pytest.raises(ConfigError, match=r"^task.init_checkpoint .* is not a BERT encoder checkpoint this trainer "
                                          r"knows .*resnet/conv1/kernel\)$"):
        ckpt_sources.open_checkpoint(foreign)


@pytest.mark.slow
def test_own_checkpoint_round_trip_and_partial(tmp_path):
    _, model, parts = _ours()
    _randomise(model.variables, seed=3)
    reference = {k: v.numpy() for k, v in parts["encoder"](_inputs()).items() if k != "encoder_outputs"}
    reference["mlm_logits"] = model(dict(_inputs(), masked_lm_positions=POSITIONS_MLM))["mlm_logits"].numpy()
    path = tf.train.Checkpoint(model=model, **parts).write(str(tmp_path / "own" / "ckpt-1"))
    source, model2, parts2, kept = _restore(path)
    assert source.layout.name == "polyembed" and kept == []
    _assert_same_encoder(parts2, reference)
    _assert_same_pretrainer(model2, reference)
    # a labse run starting from a bert/pretraining run: the encoder only
    _, _, dual_parts, _ = _restore(path, "labse/train")
    _assert_same_encoder(dual_parts, reference)

    partial = {r: v for r, v in ckpt_restore.read_roles(source, checkpoint_layouts.encoder_roles(LAYERS)).items()
               if r != "pooler/bias"}
    with pytest.raises(ConfigError, match="has no pooler/bias"):
        written = ckpt_convert.write(checkpoint_layouts.POLYEMBED, partial, LAYERS, str(tmp_path / "partial" / "c"))
        _restore(written)


@pytest.mark.slow
def test_hub_module_exported_by_model_garden(mg, tmp_path):
    from official.legacy.bert import configs as mg_configs
    from official.nlp.tools import export_tfhub_lib

    path = tf.train.Checkpoint(encoder=mg["encoder"]).save(str(tmp_path / "mg" / "ckpt"))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"[unused{i}]\n" for i in range(V)))
    bert_config = mg_configs.BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=LAYERS,
                                        num_attention_heads=HEADS, intermediate_size=INNER,
                                        max_position_embeddings=POSITIONS, type_vocab_size=2, hidden_act="gelu")
    export = str(tmp_path / "hub")
    export_tfhub_lib.export_model(export, bert_config=bert_config, model_checkpoint_path=path, with_mlm=False,
                                  vocab_file=str(vocab), do_lower_case=True)
    source, _, parts, _ = _restore(export, "labse/train", hub=True)
    assert source.layout.name == "hub_model_garden"
    assert source.lower_case is True and source.vocab_file.endswith("vocab.txt")
    _assert_same_encoder(parts, mg)

    from trainer import plan  # the Trainer: task.hub_module_url, its vocabulary and casing as defaults

    cfg = plan.load_config("labse/train", [], _override(hub_module_url=export))
    trainer = plan.trainer(cfg, str(tmp_path / "run"), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    assert trainer.cfg.task.train_data.lower_case is True
    assert trainer.cfg.task.train_data.vocab_file == source.vocab_file
    trainer.restore()
    _assert_same_encoder(trainer.parts, mg)


@pytest.mark.slow
def test_hub_module_exported_by_us(tmp_path):
    from trainer.export import encoder as export_encoder
    from trainer.modeling import encoder as modeling

    cfg, model, parts = _ours("labse/train")
    _randomise(model.variables, seed=5)
    reference = {k: v.numpy() for k, v in parts["encoder"](_inputs()).items() if k != "encoder_outputs"}
    export_model = export_encoder.build_export_model(cfg.task, parts, "model", "trained", modeling.build_dual_encoder)
    export_encoder.save_encoder(export_model, str(tmp_path / "hub"), "", False)
    source, _, parts2, _ = _restore(str(tmp_path / "hub"), "labse/train", hub=True)
    assert source.layout.name == "hub_polyembed"
    _assert_same_encoder(parts2, reference)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A bert/pretraining run's model_dir as the trainer leaves it (checkpoints/ckpt-N, params.yaml), random
    weights; returns the folder and our model's outputs."""
    from trainer import plan

    folder = tmp_path_factory.mktemp("run")
    cfg = plan.load_config("bert/pretraining", [], _override())
    trainer = plan.trainer(cfg, str(folder), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    _randomise(trainer.model.variables, seed=11)
    trainer.manager.save(checkpoint_number=1)
    (folder / "params.yaml").write_text(config.to_yaml(cfg))
    parts = trainer.parts
    reference = {k: v.numpy() for k, v in parts["encoder"](_inputs()).items() if k != "encoder_outputs"}
    out = trainer.model(dict(_inputs(), masked_lm_positions=POSITIONS_MLM))
    reference["mlm_logits"] = out["mlm_logits"].numpy()
    # what Model Garden's --copy_pooler_dense_to_encoder / TF1's pooler give: the next-sentence dense layer
    first = parts["encoder"](_inputs())["sequence_output"][:, 0]
    reference["nsp_pooled"] = parts["nsp"].dense(first).numpy()
    return folder, reference


def _mg_encoder(bert_config_file: str):
    from official.legacy.bert import configs as mg_configs
    from official.nlp.tools import export_tfhub_lib

    bert_config = mg_configs.BertConfig.from_json_file(bert_config_file)
    return bert_config, export_tfhub_lib.get_bert_encoder(bert_config)


@pytest.mark.slow
def test_converted_back_to_model_garden_is_read_and_exported_by_model_garden(model_garden, run_dir, tmp_path):
    import tensorflow_hub as hub
    from official.nlp.tools import export_tfhub_lib

    from trainer import convert_checkpoint

    folder, reference = run_dir
    out = tmp_path / "mg"
    assert convert_checkpoint.main(["--model_dir", str(folder), "--output_dir", str(out),
                                    "--layout", "model_garden"]) == 0
    bert_config, encoder = _mg_encoder(str(out / "bert_config.json"))
    prefix = tf.train.latest_checkpoint(str(out))
    tf.train.Checkpoint(encoder=encoder).restore(prefix).assert_existing_objects_matched()
    got = encoder(_inputs())
    np.testing.assert_allclose(got["sequence_output"].numpy(), reference["sequence_output"], atol=TOL, rtol=0)
    np.testing.assert_allclose(got["pooled_output"].numpy(), reference["pooled_output"], atol=TOL, rtol=0)

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"[unused{i}]\n" for i in range(V)))
    export = str(tmp_path / "hub")
    export_tfhub_lib.export_model(export, bert_config=bert_config, model_checkpoint_path=prefix, with_mlm=True,
                                  copy_pooler_dense_to_encoder=True, vocab_file=str(vocab), do_lower_case=True)
    module = hub.load(export)
    got = module.mlm(dict(_inputs(), masked_lm_positions=POSITIONS_MLM))
    np.testing.assert_allclose(got["sequence_output"].numpy(), reference["sequence_output"], atol=TOL, rtol=0)
    np.testing.assert_allclose(got["pooled_output"].numpy(), reference["nsp_pooled"], atol=TOL, rtol=0)
    np.testing.assert_allclose(got["mlm_logits"].numpy(), reference["mlm_logits"], atol=TOL, rtol=0)


@pytest.mark.slow
def test_converted_back_to_tf1_is_read_by_model_gardens_tf1_converter(model_garden, run_dir, tmp_path):
    from official.nlp.tools import tf2_bert_encoder_checkpoint_converter as mg_converter

    from trainer import convert_checkpoint

    folder, reference = run_dir
    out = tmp_path / "tf1"
    assert convert_checkpoint.main(["--model_dir", str(folder), "--output_dir", str(out), "--layout", "tf1"]) == 0
    names = {name for name, _ in tf.train.list_variables(str(out / "bert_model.ckpt"))}
    assert {"bert/embeddings/word_embeddings", "bert/encoder/layer_1/attention/self/query/kernel",
            "cls/predictions/output_bias", "cls/seq_relationship/output_weights"} <= names
    bert_config, encoder = _mg_encoder(str(out / "bert_config.json"))
    mg_converter.convert_checkpoint(bert_config, str(tmp_path / "v2" / "ckpt"), str(out / "bert_model.ckpt"),
                                    checkpoint_model_name="encoder")
    converted = tf.train.latest_checkpoint(str(tmp_path / "v2"))
    tf.train.Checkpoint(encoder=encoder).restore(converted).assert_existing_objects_matched()
    got = encoder(_inputs())
    np.testing.assert_allclose(got["sequence_output"].numpy(), reference["sequence_output"], atol=TOL, rtol=0)
    np.testing.assert_allclose(got["pooled_output"].numpy(), reference["nsp_pooled"], atol=TOL, rtol=0)


@pytest.mark.slow
def test_vocabulary_and_casing_travel_with_the_checkpoint(mg, tmp_path, shared_data):
    from trainer import plan

    folder = _write_tf1(mg, str(tmp_path / "multi_uncased"))
    (tmp_path / "multi_uncased" / "vocab.txt").write_text("[PAD]\n[UNK]\n" + "".join(f"w{i}\n" for i in range(V - 2)))
    cfg = plan.load_config("labse/train", [], _override(init_checkpoint=folder))
    cfg, source = plan.resolve_init_source(cfg)
    assert cfg.task.train_data.vocab_file == source.vocab_file == os.path.join(folder, "vocab.txt")
    assert cfg.task.train_data.lower_case is True and cfg.task.validation_data.lower_case is True
    assert "lower_case: true" in config.to_yaml(cfg)  # what a run records in its params.yaml
    explicit = plan.load_config("labse/train", [], _override(init_checkpoint=folder) +
                                  ",task.train_data.lower_case=false")
    with pytest.raises(ConfigError, match=r"^task.train_data.lower_case=false contradicts task.init_checkpoint .*"
                                          r"\(do_lower_case=true\)$"):
        plan.resolve_init_source(explicit)

    vocab = shared_data / "vocab"
    assert vocabulary.uncased_vocabulary(str(vocab / "bert-base-uncased.vocab.txt"))
    assert not vocabulary.uncased_vocabulary(str(vocab / "bert-base-multilingual-cased.vocab.txt"))


def test_export_takes_vocabulary_and_casing_from_the_run(tmp_path, shared_data):
    from trainer import plan

    uncased = str(shared_data / "vocab" / "bert-base-uncased.vocab.txt")
    cased = str(shared_data / "vocab" / "bert-base-cased.vocab.txt")
    cfg = plan.load_config("bert/pretraining", [], f"task.train_data.vocab_file={uncased}")
    (tmp_path / "params.yaml").write_text(config.to_yaml(cfg))
    # before: no --do_lower_case meant cased, and `Hello World` became [UNK] [UNK]
    assert plan.run_vocab_and_casing(str(tmp_path), plan.load_config("bert/pretraining"), "", "") == (
        uncased, True)
    with pytest.raises(ConfigError, match=r"^--do_lower_case=false but .* is an uncased vocabulary"):
        plan.run_vocab_and_casing(str(tmp_path), cfg, "", "false")
    with pytest.raises(ConfigError, match=r"^--vocab_file .* is not the vocabulary the run in"):
        plan.run_vocab_and_casing(str(tmp_path), cfg, cased, "")
