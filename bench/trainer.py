"""Trainer throughput: training examples/s of the real train step (``trainer.core.loop``), the input
pipeline's examples/s on records like the pipelines write, their ratio (above 1: input keeps up), peak
memory and, on a GPU, model FLOP utilisation.

    python bench/trainer.py --shapes=base            # BERT-base: MLM seq 128, dual encoder seq 64
    python bench/trainer.py --shapes=tiny --steps=20  # the CPU test models
    python bench/trainer.py --tatoeba --workdir=/tmp/tatoeba  # the real check: train, export, score
    python bench/trainer.py --vs_model_garden --shapes=tiny --steps=20  # Model Garden's BertEncoder vs ours

``--tatoeba`` is the issue's real check: a small dual encoder trained from scratch on CPU on Tatoeba
pairs (``--langs``, all but the first ``--held_out`` lines of each, plus ``--extra_langs``; no pair sharing
a sentence with a held-out line), optionally with a vocabulary learned from those pairs (``--vocab_size``),
killed at ``--max_train_seconds`` if it runs longer, exported as a TF Hub encoder and scored with
``python -m trainer.evaluate`` on the held-out lines (retrieval P@1 among them, both ways). It prints one
JSON line: pair counts, wall times, the machine's load averages at start and end, and the mean P@1.

FLOPs per example count matmuls only (training = 3x forward): per token ``2 * matmul params`` of the
encoder plus attention ``4 * seq * hidden`` per layer; the MLM head adds ``2 * (hidden^2 + hidden *
vocab)`` per predicted position; the dual encoder runs two sequences per example plus the global-batch
similarity matrix. MFU divides achieved FLOP/s by the accelerator's dense bf16 peak (table below).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

import specs
from specs import run_folder
from trainer import plan
from trainer.core import config

# Dense bf16 tensor-core peaks (FLOP/s) by substring of the device name.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10G": 125e12, "V100": 125e12,
             "T4": 65e12}
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def encoder_flops_per_sequence(enc: config.Params, seq: int) -> float:
    h, i, n = enc.hidden_size, enc.intermediate_size, enc.num_layers
    matmul_params = n * (4 * h * h + 2 * h * i) + h * h  # attention projections, FFN, pooler
    return 2.0 * matmul_params * seq + n * 4.0 * seq * seq * h


def flops_per_example(experiment: str, cfg: config.Params) -> float:
    enc, data = cfg.task.model.encoder, cfg.task.train_data
    if experiment == "bert/pretraining":
        forward = encoder_flops_per_sequence(enc, data.seq_length)
        forward += data.max_predictions_per_seq * 2.0 * (enc.hidden_size ** 2 + enc.hidden_size * enc.vocab_size)
    else:
        forward = 2 * encoder_flops_per_sequence(enc, data.seq_length)
        forward += 2 * 2.0 * data.global_batch_size * enc.hidden_size  # both similarity directions
    return 3.0 * forward


def write_records(directory: Path, experiment: str, cfg: config.Params, n: int, vocab: str) -> str:
    data = cfg.task.train_data
    rng = np.random.default_rng(0)
    if experiment == "bert/pretraining":
        spec = specs.pretraining_spec(data.seq_length, data.max_predictions_per_seq)
        L, P = data.seq_length, data.max_predictions_per_seq
        records = []
        for _ in range(n):
            ids = rng.integers(1000, cfg.task.model.encoder.vocab_size, L).tolist()
            pos = sorted(rng.choice(np.arange(1, L - 1), P, replace=False).tolist())
            records.append(spec.encode({"input_ids": ids, "segment_ids": [0] * (L // 2) + [1] * (L - L // 2),
                                        "input_mask": [1] * L, "masked_lm_positions": pos,
                                        "masked_lm_ids": [ids[p] for p in pos], "masked_lm_weights": [1.0] * P,
                                        "next_sentence_labels": [int(rng.integers(2))]}))
    else:
        spec = specs.TRANSLATION_PAIRS
        tatoeba = SHARED / "translation" / "laser_tatoeba_v1"
        lines = []
        for lang in ("deu", "fra", "rus", "cmn"):
            src = (tatoeba / f"tatoeba.{lang}-eng.{lang}").read_text(encoding="utf-8").splitlines()
            tgt = (tatoeba / f"tatoeba.{lang}-eng.eng").read_text(encoding="utf-8").splitlines()
            lines += list(zip(src, tgt, strict=True))
        records = [spec.encode({"src_raw": s, "tgt_raw": t, "src_lang": "x", "tgt_lang": "eng"})
                   for s, t in (lines[i % len(lines)] for i in range(n))]
    return write_shards(directory, spec, records)


def write_shards(directory: Path, spec: specs.FeatureSpec, records: list[bytes]) -> str:
    """Four GZIP TFRecord shards with the spec beside them, as the pipelines write them; returns
    the file pattern."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / specs.SCHEMA_FILE).write_text(spec.to_schema_text())
    (directory / specs.SPEC_FILE).write_text(spec.to_json())
    for shard in range(4):
        with tf.io.TFRecordWriter(str(directory / f"part-{shard}.tfrecord.gz"), "GZIP") as w:
            for r in records[shard::4]:
                w.write(r)
    run_folder.write_complete(str(directory), "bench", {}, {})  # a finished run, as the trainer requires
    return str(directory / "part-*")


def measure(experiment: str, yaml_file: str, args: argparse.Namespace, workdir: Path) -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    precision = args.precision or ("bfloat16" if gpus else "float32")
    vocab = str(SHARED / "vocab" / "bert-base-multilingual-cased.vocab.txt")
    override = (f"runtime.distribution_strategy={'mirrored' if gpus else 'one_device'},"
                f"runtime.mixed_precision_dtype={precision},trainer.train_steps=1000000,"
                f"task.train_data.vocab_file={vocab},task.train_data.shuffle_buffer_size=1000")
    if args.batch_size:
        override += f",task.train_data.global_batch_size={args.batch_size}"
    if experiment == "labse/train":
        override += ",task.model.encoder.vocab_size=119547"
    cfg = plan.load_config(experiment, [yaml_file], override)
    data_dir = workdir / experiment.replace("/", "_")
    path = write_records(data_dir, experiment, cfg, args.records, vocab)
    cfg = plan.load_config(experiment, [yaml_file], override + f",task.train_data.input_path={path}")
    trainer = plan.trainer(cfg, str(workdir / ("run_" + experiment.replace("/", "_"))))
    batch = cfg.task.train_data.global_batch_size

    # Input pipeline alone (parse, tokenise, mask, batch) on this host.
    ds = trainer.task.dataset("train_data")
    it = iter(ds)
    for _ in range(3):
        next(it)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < args.input_seconds:
        next(it)
        n += batch
    input_eps = n / (time.perf_counter() - start)

    # The train step on one batch held in device memory, so only the model is measured.
    one = next(iter(ds))
    fixed = trainer.strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(one).repeat().with_options(tf.data.Options()))
    iterator = iter(fixed)
    train_steps = trainer.make_train_steps()
    train_steps(iterator, tf.constant(args.warmup_steps))  # trace, compile, warm up
    start = time.perf_counter()
    out = train_steps(iterator, tf.constant(args.steps))
    float(out["step_loss"])
    elapsed = time.perf_counter() - start
    model_eps = args.steps * batch / elapsed
    result = {"experiment": experiment, "config": yaml_file, "device": gpus[0].name if gpus else "cpu",
              "precision": precision, "global_batch": batch, "seq_length": cfg.task.train_data.seq_length,
              "train_examples_per_s": round(model_eps, 2), "step_ms": round(1000 * elapsed / args.steps, 1),
              "input_examples_per_s_host": round(input_eps, 1),
              "input_to_model_ratio": round(input_eps / model_eps, 2),
              "cpu_cores": os.cpu_count(),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    flops = flops_per_example(experiment, cfg)
    result["model_tflops_per_example"] = round(flops / 1e12, 6)
    result["achieved_tflops_per_s"] = round(flops * model_eps / 1e12, 3)
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        result["gpu"] = name
        result["peak_gpu_mem_mib"] = round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)
        result["mfu"] = round(flops * model_eps / (peak * len(gpus)), 4) if peak else None
    else:
        result["mfu"] = "n/a (CPU; measure on a GPU)"
    return result


def tatoeba_pairs(tatoeba: Path, langs: list[str], extra: list[str], held_out: int) -> tuple[list, dict]:
    """Training pairs ``(lang, src, eng)``: all but the first ``held_out`` lines of every scored
    language, plus the extra languages, minus any pair sharing a sentence with a held-out line. The
    English side repeats across language files (88,877 lines, 69,241 distinct), so without that filter
    a held-out English sentence could be trained on through another language."""
    def read(lang: str) -> list[tuple[str, str]]:
        src = (tatoeba / f"tatoeba.{lang}-eng.{lang}").read_text(encoding="utf-8").splitlines()
        tgt = (tatoeba / f"tatoeba.{lang}-eng.eng").read_text(encoding="utf-8").splitlines()
        return list(zip(src, tgt, strict=True))

    held: set[str] = set()
    for lang in langs:
        held.update(s for pair in read(lang)[:held_out] for s in pair)
    pairs, dropped = [], 0
    for lang in langs + extra:
        for s, t in read(lang)[held_out:] if lang in langs else read(lang):
            if s in held or t in held:
                dropped += 1
            else:
                pairs.append((lang, s, t))
    return pairs, {"dropped_sharing_a_held_out_sentence": dropped}


def learn_vocab(work: Path, pairs: list, vocab_size: int, lower_case: bool) -> str:
    """A WordPiece vocabulary of ``vocab_size`` learned by ``pipelines.vocab`` from the training pairs
    only (one text file per language, English deduplicated), so the held-out lines play no part."""
    import subprocess

    text_dir = work / "vocab_text"
    text_dir.mkdir(parents=True, exist_ok=True)
    by_lang: dict[str, dict[str, None]] = {}
    for lang, s, t in pairs:
        by_lang.setdefault(lang, {})[s] = None
        by_lang.setdefault("eng", {})[t] = None
    for lang, lines in by_lang.items():
        (text_dir / f"{lang}.txt").write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pipelines.vocab", f"--input_patterns={text_dir}/*.txt",
                    f"--output_dir={work}/vocab", f"--vocab_size={vocab_size}", r"--language_pattern=/(\w+)\.txt$",
                    "--min_word_count=1", "--min_token_count=2", *(["--do_lower_case"] if lower_case else [])],
                   check=True, cwd=Path(__file__).resolve().parent.parent)
    return str(work / "vocab" / "vocab.txt")


def tatoeba_check(args: argparse.Namespace) -> None:
    """Writes the Tatoeba records the way the translation-pair pipeline does (TRANSLATION_PAIRS, GZIP,
    spec beside), optionally learns a vocabulary from them, then runs the trainer, the export and the
    evaluator as a user would."""
    import subprocess

    work = Path(args.workdir)
    tatoeba = SHARED / "translation" / "laser_tatoeba_v1"
    langs = [x for x in args.langs.split(",") if x]
    if args.extra_langs == "all":
        extra = sorted(p.name.split(".")[1][:3] for p in tatoeba.glob("tatoeba.*-eng.eng"))
        extra = [x for x in extra if x not in langs]
    else:
        extra = [x for x in args.extra_langs.split(",") if x]
    pairs, filtered = tatoeba_pairs(tatoeba, langs, extra, args.held_out)
    spec = specs.TRANSLATION_PAIRS
    rows = [spec.encode({"src_raw": s, "tgt_raw": t, "src_lang": lang, "tgt_lang": "eng"}) for lang, s, t in pairs]
    train_pattern = write_shards(work / "pairs" / "train", spec, rows)
    start = time.time()
    if args.vocab_size:
        vocab = learn_vocab(work, pairs, args.vocab_size, args.lower_case)
        vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    else:
        vocab, vocab_size = str(SHARED / "vocab" / "bert-base-multilingual-cased.vocab.txt"), 119547
    vocab_wall = round(time.time() - start, 1)
    override = (f"task.train_data.input_path={train_pattern},task.train_data.vocab_file={vocab},"
                f"task.model.encoder.vocab_size={vocab_size},task.train_data.seq_length={args.seq_length},"
                f"task.train_data.lower_case={str(args.lower_case).lower()},"
                f"trainer.train_steps={args.train_steps},"
                f"trainer.optimizer_config.learning_rate.polynomial.decay_steps={args.train_steps},"
                f"trainer.checkpoint_interval={max(1, args.train_steps // 10)},"
                f"task.train_data.global_batch_size={args.batch_size}")
    if args.params_override:
        override += "," + args.params_override
    py = sys.executable
    steps = [
        [py, "-m", "trainer.task", "--experiment=labse/train", "--mode=train", f"--model_dir={work}/run",
         "--config_file=trainer/configs/labse_tiny.yaml", f"--params_override={override}"],
        [py, "-m", "trainer.export_tfhub", "--experiment=labse/train", f"--model_dir={work}/run",
         "--config_file=trainer/configs/labse_tiny.yaml", f"--params_override={override}",
         f"--export_path={work}/export"],
        [py, "-m", "trainer.evaluate", f"--model={work}/export", f"--tatoeba_dir={tatoeba}", f"--langs={args.langs}",
         f"--max_lines={args.held_out}", f"--seq_length={args.seq_length}", f"--output_json={work}/tatoeba.json"],
    ]
    times, load_at_start = [], os.getloadavg()  # 1, 5, 15-minute load averages of the (shared) machine
    for i, cmd in enumerate(steps):
        start = time.time()
        try:
            subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parent.parent,
                           timeout=(args.max_train_seconds or None) if i == 0 else None)
        except subprocess.TimeoutExpired:  # killed at the limit: the latest checkpoint is exported
            pass
        times.append(round(time.time() - start, 1))
    trained_steps = int(tf.train.latest_checkpoint(str(work / "run" / "checkpoints")).rsplit("-", 1)[1])
    mean = json.loads((work / "tatoeba.json").read_text())["mean"]
    print(json.dumps({"train_pairs": len(rows), **filtered, "held_out_per_language": args.held_out,
                      "langs": args.langs, "extra_langs": len(extra), "vocab_size": vocab_size,
                      "vocab_wall_s": vocab_wall, "params_override": args.params_override,
                      "train_steps": args.train_steps, "trained_steps": trained_steps, "train_wall_s": times[0],
                      "export_wall_s": times[1], "eval_wall_s": times[2], "load_average_at_start": load_at_start,
                      "load_average_at_end": os.getloadavg(), **mean}), flush=True)


def vs_model_garden(args: argparse.Namespace) -> None:
    """Model Garden's ``BertEncoder`` and ours, same shapes (``--shapes``' LaBSE config), same weights
    (ours initialised from Model Garden's through ``trainer.checkpoints``), same batch: examples/s of a
    forward pass and of a forward+backward pass for each (median of ``--rounds`` alternating rounds), and
    ours / Model Garden's."""
    garden = os.environ.get("POLYEMBED_MODEL_GARDEN", str(Path(__file__).resolve().parent.parent / ".venv" /
                                                          "model_garden"))
    sys.path.append(garden)
    from official.modeling import tf_utils
    from official.nlp.modeling import networks

    from trainer.checkpoints import restore as ckpt_restore
    from trainer.checkpoints import sources as ckpt_sources
    from trainer.modeling import encoder as modeling

    cfg = plan.load_config("labse/train", [f"trainer/configs/labse_{args.shapes}.yaml"])
    enc = cfg.task.model.encoder
    batch, seq = args.batch_size or cfg.task.train_data.global_batch_size, args.seq_length
    theirs = networks.BertEncoder(vocab_size=enc.vocab_size, hidden_size=enc.hidden_size, num_layers=enc.num_layers,
                                  num_attention_heads=enc.num_attention_heads, intermediate_size=enc.intermediate_size,
                                  max_sequence_length=enc.max_position_embeddings, type_vocab_size=enc.type_vocab_size,
                                  dropout_rate=enc.dropout_rate, attention_dropout_rate=enc.attention_dropout_rate,
                                  activation=tf_utils.get_activation("gelu"), dict_outputs=True)
    ours = modeling.build_encoder(enc)
    rng = np.random.default_rng(0)
    lengths = rng.integers(seq // 2, seq + 1, batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
    inputs = {"input_word_ids": tf.constant(rng.integers(1000, enc.vocab_size, (batch, seq)) * mask, tf.int32),
              "input_mask": tf.constant(mask), "input_type_ids": tf.constant(np.zeros_like(mask))}
    theirs(inputs)
    with tempfile.TemporaryDirectory() as tmp:
        path = tf.train.Checkpoint(encoder=theirs).write(os.path.join(tmp, "ckpt"))
        ckpt_restore.restore(ckpt_sources.open_checkpoint(path, "--vs_model_garden"), ours.variables, enc)
    diff = float(np.max(np.abs(theirs(inputs)["pooled_output"] - ours(inputs)["pooled_output"])))
    result = {"shapes": args.shapes, "batch": batch, "seq_length": seq, "layers": enc.num_layers,
              "hidden": enc.hidden_size, "max_abs_diff_pooled_output": diff, "load_average_at_start": os.getloadavg()}
    functions = {}
    for name, model in (("model_garden", theirs), ("polyembed", ours)):
        forward = tf.function(lambda x, m=model: m(x, training=False)["pooled_output"])

        @tf.function
        def train_step(x: dict, m: object = model) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(m(x, training=True)["pooled_output"])
            return tape.gradient(loss, m.trainable_variables)[-1]

        for what, fn in (("forward", forward), ("train", train_step)):
            for _ in range(args.warmup_steps):
                fn(inputs)
            functions[f"{name}_{what}"] = fn
    # Alternating rounds, median per function: a shared machine's load moves between measurements.
    rates: dict[str, list[float]] = {k: [] for k in functions}
    for _ in range(args.rounds):
        for key, fn in functions.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                np.asarray(fn(inputs))
            rates[key].append(args.steps * batch / (time.perf_counter() - start))
    for key, values in rates.items():
        result[f"{key}_examples_per_second"] = round(float(np.median(values)), 1)
    for what in ("forward", "train"):
        result[f"{what}_ratio_polyembed_over_model_garden"] = round(
            result[f"polyembed_{what}_examples_per_second"] / result[f"model_garden_{what}_examples_per_second"], 3)
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", choices=("base", "tiny"), default="base")
    p.add_argument("--experiments", default="bert/pretraining,labse/train")
    p.add_argument("--batch_size", type=int, default=0, help="Global batch (default: the config's).")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup_steps", type=int, default=3)
    p.add_argument("--records", type=int, default=2048)
    p.add_argument("--input_seconds", type=float, default=5.0)
    p.add_argument("--precision", default="", choices=("", "float32", "bfloat16", "float16"))
    p.add_argument("--tatoeba", action="store_true", help="Run the Tatoeba real check instead.")
    p.add_argument("--rounds", type=int, default=3, help="--vs_model_garden: alternating rounds (median).")
    p.add_argument("--vs_model_garden", action="store_true",
                   help="Model Garden's BertEncoder and ours side by side (forward and train examples/s; needs "
                        "tf-models-official on POLYEMBED_MODEL_GARDEN, see `make model_garden`).")
    p.add_argument("--workdir", default="/tmp/polyembed_tatoeba")
    p.add_argument("--langs", default="deu,fra,spa,ita,por,nld,pol,rus")
    p.add_argument("--extra_langs", default="",
                   help="Languages trained on (all lines but those sharing a held-out sentence) but not scored; "
                        "'all': every other language in the Tatoeba directory.")
    p.add_argument("--vocab_size", type=int, default=0,
                   help="Learn a vocabulary of this size from the training pairs (0: multilingual BERT's).")
    p.add_argument("--seq_length", type=int, default=32)
    p.add_argument("--lower_case", action="store_true",
                   help="Lower-case and strip accents (the learned vocabulary and the tokeniser).")
    p.add_argument("--params_override", default="", help="Passed on to the trainer and the export.")
    p.add_argument("--held_out", type=int, default=200, help="First lines of each language kept for eval.")
    p.add_argument("--train_steps", type=int, default=1500)
    p.add_argument("--max_train_seconds", type=float, default=0,
                   help="Kill training at this wall time (start-up included) and score the latest checkpoint "
                        "(one every train_steps/10); 0: no limit.")
    args = p.parse_args()
    if args.vs_model_garden:
        vs_model_garden(args)
        return
    if args.tatoeba:
        if args.lower_case and not args.vocab_size:
            p.error("--lower_case needs --vocab_size (multilingual BERT's vocabulary is cased)")
        args.batch_size = args.batch_size or 128
        tatoeba_check(args)
        return
    configs = {"bert/pretraining": f"trainer/configs/bert_{args.shapes}.yaml",
               "labse/train": f"trainer/configs/labse_{args.shapes}.yaml"}
    with tempfile.TemporaryDirectory() as tmp:
        for experiment in args.experiments.split(","):
            print(json.dumps(measure(experiment, configs[experiment], args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
