"""``labse/distill`` (Reimers & Gurevych's multilingual distillation) on real data: FLORES-200 German-English
pairs whose English side the real all-MiniLM-L6-v2 embedded (its text_embedder export, as the data pipeline
writes it); the student starts as the same model, so its English side starts on the teacher and its German side
learns towards it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from test_trainer import write_records

import specs
from specs.errors import ConfigError
from trainer import experiments, export_tfhub, plan
from trainer.experiments.distill import mse_sums


def test_mse_sums_is_torch_mse_loss_times_the_batch():
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=(5, 7)).astype(np.float32)
    want = ((student - teacher) ** 2).mean() * 5  # torch.nn.MSELoss() averages over batch and dimensions
    assert float(mse_sums(tf.constant(student), tf.constant(teacher))) == pytest.approx(want, rel=1e-6)


def _fixed_embeddings(rows: dict[str, np.ndarray]):
    """A stand-in model: each side's ``default`` output is the row given for its first token id."""
    def model(inputs, training=False):
        return {"default": tf.constant(rows[int(inputs["input_word_ids"][0, 0])])}
    return model


def _side(first_id: int) -> dict[str, tf.Tensor]:
    return {f"input_{n}": tf.fill([3, 4], first_id) for n in ("word_ids", "mask", "type_ids")}


def test_ranking_weight_adds_labse_in_batch_softmax_to_the_two_mses():
    rng = np.random.default_rng(1)
    src, tgt, teacher = (rng.normal(size=(3, 8)).astype(np.float32) for _ in range(3))
    src, tgt = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (src, tgt))
    features = {**{f"src_{k}": v for k, v in _side(1).items()}, **{f"tgt_{k}": v for k, v in _side(2).items()},
                specs.TEACHER_EMBEDDING: tf.constant(teacher)}
    model = _fixed_embeddings({1: src, 2: tgt})
    plain = experiments.make_task(_config_without_source("unused", hidden=64))
    mixed = experiments.make_task(_config_without_source("unused", hidden=64, extra=",task.ranking_weight=0.5"))
    mse_loss, mse_stats = plain.step(model, features, True, 3)
    loss, stats = mixed.step(model, features, True, 3)

    def xent(q: np.ndarray, k: np.ndarray) -> float:  # scale 20, margin 0.3 on the diagonal: the defaults
        logits = 20.0 * (q @ k.T - 0.3 * np.eye(3))
        return float(sum(np.log(np.exp(r).sum()) - r[i] for i, r in enumerate(logits)))
    ranking = (xent(src, tgt) + xent(tgt, src)) / 2
    assert "ranking_sum" not in mse_stats
    assert float(stats["ranking_sum"]) == pytest.approx(ranking, rel=1e-5)
    assert float(loss) == pytest.approx(float(mse_loss) + 0.5 * ranking / 3, rel=1e-5)
    metrics = mixed.metrics({k: float(v) for k, v in stats.items()})
    assert set(metrics) == {"loss", "src_mse", "tgt_mse", "ranking_loss", "in_batch_src_to_tgt_accuracy",
                            "in_batch_tgt_to_src_accuracy"}
    assert metrics["ranking_loss"] == pytest.approx(ranking / 3, rel=1e-5)
    against_teacher = experiments.make_task(_config_without_source(
        "unused", hidden=64, extra=",task.ranking_weight=0.5,task.ranking_keys=teacher"))
    _, stats = against_teacher.step(model, features, True, 3)
    assert float(stats["ranking_sum"]) == pytest.approx((xent(src, teacher) + xent(teacher, src)) / 2, rel=1e-5)


@pytest.mark.parametrize(("extra", "message"), [
    (",task.ranking_weight=-0.1", r"task\.ranking_weight -0\.1 is negative"),
    (",task.ranking_keys=both", r"task\.ranking_keys 'both' is not one of student, teacher"),
])
def test_a_ranking_term_it_cannot_run_stops_at_start_up(extra, message):
    with pytest.raises(ConfigError, match=message):
        plan.resolve_init_source(_config_without_source("unused", hidden=64, extra=extra))


@pytest.fixture(scope="module")
def distillation_records(tmp_path_factory, shared_data, minilm):
    root = tmp_path_factory.mktemp("distill")
    assert export_tfhub.main(["--experiment=labse/train", f"--checkpoint_path={minilm}", "--export_type=text_embedder",
                              "--params_override=task.train_data.seq_length=128",
                              f"--export_path={root / 'teacher'}"]) == 0
    teacher = tf.saved_model.load(str(root / "teacher"))
    flores = shared_data / "translation" / "flores200_devtest"
    deu = (flores / "deu_Latn.devtest").read_text(encoding="utf-8").splitlines()[:48]
    eng = (flores / "eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:48]
    embeddings = teacher(tf.constant(eng)).numpy()
    rows = [{"src_raw": s, "tgt_raw": t, "src_lang": "deu", "tgt_lang": "eng", specs.TEACHER_EMBEDDING: e.tolist()}
            for s, t, e in zip(deu, eng, embeddings, strict=True)]
    spec = specs.distillation_pairs_spec(embeddings.shape[1], teacher="all-MiniLM-L6-v2")
    return root, write_records(root / "pairs", spec, rows)


def _config(minilm, data: str, **extra: str):
    override = (f"task.init_checkpoint={minilm},task.train_data.input_path={data},"
                f"task.validation_data.input_path={data},task.train_data.global_batch_size=16,"
                "task.validation_data.global_batch_size=16,runtime.distribution_strategy=one_device,"
                "trainer.train_steps=6,trainer.steps_per_loop=3,trainer.checkpoint_interval=6,"
                "trainer.optimizer_config.learning_rate.polynomial.initial_learning_rate=0.0001,"
                "trainer.optimizer_config.learning_rate.polynomial.decay_steps=6,"
                "trainer.optimizer_config.warmup.polynomial.warmup_steps=1")
    override += "".join(f",{k}={v}" for k, v in extra.items())
    cfg, _ = plan.resolve_init_source(plan.load_config("labse/distill", [], override))
    return cfg


@pytest.mark.slow
def test_student_starts_on_the_teacher_for_english_and_learns_german(minilm, distillation_records, tmp_path):
    _, data = distillation_records
    cfg = _config(minilm, data)
    assert cfg.task.model.pooling == "mean" and cfg.task.train_data.lower_case is True  # from the folder
    trainer = plan.trainer(cfg, str(tmp_path / "run"))
    trainer.restore()
    batch = next(iter(trainer.task.dataset("validation_data")))

    def mse() -> tuple[float, float]:
        _, stats = trainer.task.step(trainer.model, batch, False, 16)
        return float(stats["src_mse_sum"]) / 16, float(stats["tgt_mse_sum"]) / 16

    german, english = mse()
    assert english < 1e-9 < 1e-5 < german  # the student is the teacher: English is on it, German is not
    trainer.train()
    german_after, _ = mse()
    assert german_after < german


@pytest.mark.slow  # the module's records need the teacher's export
def test_a_teacher_of_another_size_or_plain_pairs_stop_at_start_up(distillation_records, tmp_path, shared_data):
    root, data = distillation_records
    tiny = _config_without_source(data, hidden=64)
    with pytest.raises(ConfigError, match="384 dimensions but the student's have 64"):
        experiments.make_task(tiny).dataset("train_data", check_only=True)
    src = (shared_data / "translation" / "flores200_devtest" / "deu_Latn.devtest").read_text().splitlines()[:4]
    plain = write_records(root / "plain", specs.TRANSLATION_PAIRS,
                          [{"src_raw": s, "tgt_raw": s, "src_lang": "deu", "tgt_lang": "eng"} for s in src])
    with pytest.raises(specs.SpecError, match="carry no teacher_embedding"):
        experiments.make_task(_config_without_source(plain, hidden=64)).dataset("train_data", check_only=True)


def _config_without_source(data: str, hidden: int, extra: str = ""):
    return plan.load_config("labse/distill", [], f"task.train_data.input_path={data},task.model.encoder.hidden_size="
                            f"{hidden},task.model.encoder.num_attention_heads=2,task.model.encoder.vocab_size=30522,"
                            f"task.train_data.vocab_file={_vocab()}{extra}")


def _vocab() -> str:
    from conftest import MINILM

    return str(MINILM / "vocab.txt")
