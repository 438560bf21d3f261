"""Multilingual distillation, polyembed's ``labse/distill`` against sentence-transformers' ``MSELoss`` recipe,
both distilling all-MiniLM-L6-v2 into a copy of itself on the same FLORES pairs (issue 25, point 5):
Tatoeba accuracy and STS-B Spearman before and after, training pairs/s and peak memory.

    .venv/bin/python bench/distill.py                                        # the full run
    .venv/bin/python bench/distill.py --langs=fra,deu --max_eval_lines=100 --train_steps=10   # smoke check

Training pairs: FLORES-200 devtest xx->eng for ``--langs`` (default the 11 Latin-script languages LASER's
Tatoeba also has), made into records by ``pipelines.translation_pairs --teacher=EXPORT --teacher_language=eng``:
the job's RunInference writes each pair's ``teacher_embedding``, the teacher being all-MiniLM-L6-v2's
``text_embedder`` export (``<workdir>/teacher_export``). The peer reads the job's JSONL copy of the same pairs
and computes its own teacher embeddings with sentence-transformers' ``encode``, as its ``make_multilingual``
example does (timed apart from training: ``teacher s``). The job's wall time is printed (``pairs job``).

The runs, all from the all-MiniLM-L6-v2 folder, batch 32 pairs, 128 tokens, 10% warm-up, one epoch
(``pairs // 32`` steps) unless ``--train_steps``; optimiser, schedule and speed measured exactly as
``bench/vs_sentence_transformers.py`` does (its functions, imported; its docstring says what differs):

- ``peer``: ``bench/st_peer.py distill``: ``MSELoss`` of student(src) and student(eng) to teacher(eng), lr
  ``--learning_rate`` (2e-5). sentence-transformers' ``MSELoss`` averages the two sides' losses where
  ``labse/distill`` adds them: a factor 2 on the loss, which AdamW's update does not see (its step is
  scale-free but for epsilon; the gradient norm stays far below the clip at 1).
- ``polyembed``: ``labse/distill``, the same settings. Its ``text_embedder`` export is written to
  ``<workdir>/student_export`` (printed at the end) for the filtering and mining benches; the best recipe's,
  ``<workdir>/best_student_export``.
- ``polyembed_best``: ``--best_recipe``, stages run one after the other, each starting from the last one's
  checkpoint and each given an equal share of the steps (and of ``--max_train_seconds``), so the recipe has the
  other runs' step budget unless ``--best_steps`` gives it another (the table's CPU seconds are then the budget
  to compare): ``distill@LR`` is ``labse/distill`` at that peak rate, ``labse@LR`` ``labse/train`` with LaBSE's
  loss (additive margin ``--labse_margin``, both directions, scale ``--logit_scale``), ``mixed@LR``
  ``labse/distill`` with that loss added to the MSEs (``task.ranking_weight=--ranking_weight``,
  ``task.ranking_keys=--ranking_keys``). ``--best_override`` adds settings to every stage (e.g. bfloat16
  training); the exports are float32 either way.

"pairs/s": training pairs (one src sentence and its English translation, both embedded by the student) per
second, the same count on both sides. Evaluation: every system's embeddings scored by the same code
(``vs_sentence_transformers.evaluate``): Tatoeba accuracy both directions averaged for ``--langs`` (mean and per
language) and for every FLORES language Tatoeba has (``tatoeba_languages``; mean and count), STS-B dev Spearman.
"before" is polyembed's reading of the folder (issue 24's bench measured it equal to sentence-transformers' on
every score). ``--max_eval_lines`` cuts each Tatoeba test set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # ahead of bench/, whose trainer.py would shadow the trainer package

from vs_sentence_transformers import (  # noqa: E402  (bench/, the script's folder, is on sys.path)
    ENV,
    SHARED,
    SPEED_ROWS,
    add_arguments,
    evaluate,
    export_before,
    make_pairs,
    model_override,
    print_table,
    train_peer,
    train_polyembed,
)

RUNS = ("peer", "polyembed", "polyembed_best")
STAGES = ("distill", "mixed", "labse")
# FLORES codes whose Tatoeba test set goes by the macrolanguage's code
TATOEBA_CODES = {"arb": "ara", "zho": "cmn"}


def tatoeba_languages(flores: pathlib.Path, tatoeba: pathlib.Path) -> list[str]:
    """The Tatoeba codes of the FLORES languages (``xxx_Script.devtest``, English left out) that have a
    ``tatoeba.xxx-eng`` test set, each once (both Chinese scripts are Tatoeba's ``cmn``), sorted."""
    codes = {TATOEBA_CODES.get(p.name[:3], p.name[:3]) for p in flores.glob("*_*.devtest")} - {"eng"}
    return sorted(c for c in codes if (tatoeba / f"tatoeba.{c}-eng.{c}").exists())


def distill_override(args: argparse.Namespace, init: str) -> str:
    """``labse/distill``'s model and data settings: the student starts from ``init`` (the folder or a run: its
    vocabulary, casing, shape); pooling and normalisation as the folder's sentence-transformers modules (and so
    the teacher's export)."""
    return (f"task.init_checkpoint={init},task.model.pooling=mean,task.model.normalize=true,"
            f"task.train_data.seq_length={args.seq_length},task.train_data.global_batch_size={args.batch_size},"
            "runtime.distribution_strategy=one_device")


def parse_recipe(recipe: str) -> list[tuple[str, float]]:
    """``--best_recipe`` (``distill@1e-4,labse@1e-4``) as ``[(stage, learning rate)]``; SystemExit with one line
    on anything else."""
    stages = []
    for part in (p for p in recipe.split(",") if p):
        kind, _, lr = part.partition("@")
        try:
            rate = float(lr)
        except ValueError:
            rate = 0.0
        if kind not in STAGES or not rate > 0:
            raise SystemExit(f"--best_recipe: {part!r} is not distill@LR, mixed@LR or labse@LR with LR > 0")
        stages.append((kind, rate))
    if not stages:
        raise SystemExit("--best_recipe: at least one stage")
    return stages


def train_best(args: argparse.Namespace, work: pathlib.Path, pattern: str, pairs: int) -> dict[str, Any]:
    """The ``--best_recipe`` stages in turn, each from the previous one's checkpoint; returns the last stage's
    measurements with steps, wall and CPU summed over the stages, peak RSS their largest."""
    stages, stats, init = parse_recipe(args.best_recipe), [], args.polyembed_init
    for i, (kind, lr) in enumerate(stages):
        steps = (args.best_steps or args.train_steps) // len(stages)
        stage = argparse.Namespace(**{**vars(args), "train_steps": steps, "learning_rate": lr,
                                      "warmup_steps": math.ceil(args.warmup_fraction * steps),
                                      "steps_per_loop": max(1, min(args.steps_per_loop, steps)),
                                      "max_train_seconds": args.max_train_seconds / len(stages)})
        if kind in ("distill", "mixed"):
            experiment, model = "labse/distill", distill_override(stage, init)
            if kind == "mixed":
                model += (f",task.ranking_weight={args.ranking_weight},task.ranking_keys={args.ranking_keys},"
                          f"task.logit_scale={args.logit_scale},task.logit_margin={args.labse_margin}")
        else:
            experiment = "labse/train"
            model = f"task.init_checkpoint={init},{model_override(stage, args.labse_margin, True, init=False)}"
        if args.best_override:
            model += f",{args.best_override}"
        stats.append(train_polyembed(stage, work, f"polyembed_best/{i}_{kind}", pattern, pairs, model, experiment))
        init = stats[-1]["run"]
    export_student(init, work / "best_student_export", experiment, model)
    total = dict(stats[-1])
    for key in ("steps", "wall_s", "cpu_s"):
        total[key] = sum(s[key] for s in stats)
    total["peak_rss_mib"] = max(s["peak_rss_mib"] for s in stats)
    total["pairs_per_s_e2e"] = total["steps"] * args.batch_size / total["wall_s"]
    total["pairs_per_s_loop"] = float("nan") if len(stats) > 1 else total["pairs_per_s_loop"]
    return total


def export_student(run: str, path: pathlib.Path, experiment: str, override: str) -> None:
    """A trained student's ``text_embedder`` export (strings -> embeddings), what ``--score_with`` and
    ``pipelines.mine_pairs`` load; ``experiment`` and ``override`` are the run's."""
    subprocess.run([sys.executable, "-m", "trainer.export_tfhub", f"--experiment={experiment}", f"--model_dir={run}",
                    f"--params_override={override}", "--export_type=text_embedder",
                    f"--export_path={path}"], check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def teacher_pairs(args: argparse.Namespace, work: pathlib.Path, langs: Sequence[str]) -> tuple[str, str, int, float]:
    """The teacher's ``text_embedder`` export (once), then the pairs job with ``--teacher``; returns
    ``make_pairs``' answer and the job's wall seconds (0 when its output was already there)."""
    teacher = work / "teacher_export"
    if not (teacher / "saved_model.pb").exists():
        subprocess.run([sys.executable, "-m", "trainer.export_tfhub", "--experiment=labse/train",
                        f"--checkpoint_path={args.minilm}", "--export_type=text_embedder",
                        f"--params_override=task.train_data.seq_length={args.seq_length}", f"--export_path={teacher}"],
                       check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.perf_counter()
    pattern, jsonl, pairs = make_pairs(work, langs, [f"--teacher={teacher}", "--teacher_language=eng"])
    return pattern, jsonl, pairs, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=str(REPO / "bench_out" / "distill"))
    p.add_argument("--runs", default=",".join(RUNS), help=f"Some of {', '.join(RUNS)}.")
    p.add_argument("--best_recipe", default="labse@1e-4",
                   help="polyembed_best's stages, comma-separated distill@LR, mixed@LR or labse@LR (module "
                        "docstring); the default is the best of docs/trainer.md's first look.")
    p.add_argument("--best_steps", type=int, default=0,
                   help="polyembed_best's steps, all stages together; 0: --train_steps (the other runs' budget).")
    p.add_argument("--ranking_weight", type=float, default=0.003,
                   help="mixed@LR stages: labse/distill's task.ranking_weight.")
    p.add_argument("--best_override", default="",
                   help="More params_override for polyembed_best's stages, e.g. runtime.mixed_precision_dtype=bfloat16 "
                        "(its exports are float32 whatever the training precision).")
    p.add_argument("--ranking_keys", choices=("student", "teacher"), default="student",
                   help="mixed@LR stages: labse/distill's task.ranking_keys.")
    p.add_argument("--all_languages", action=argparse.BooleanOptionalAction, default=True,
                   help="Also score Tatoeba for every FLORES language it has.")
    add_arguments(p)
    args = p.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    langs = [x for x in args.langs.split(",") if x]
    if sorted(set(runs) - set(RUNS)) or not runs or not langs or not args.polyembed_init:
        p.error(f"--runs: one or more of {', '.join(RUNS)}; --langs: at least one language; --polyembed_init: "
                "the folder")
    parse_recipe(args.best_recipe)
    work = pathlib.Path(args.workdir).resolve()  # the peer's training changes its directory
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"load average {os.getloadavg()}", flush=True)
    pattern, jsonl, pairs, job_s = teacher_pairs(args, work, langs)
    args.train_steps = args.train_steps or pairs // args.batch_size
    args.warmup_steps = math.ceil(args.warmup_fraction * args.train_steps)
    args.steps_per_loop = args.steps_per_loop or max(1, args.train_steps // 10)
    print(f"{pairs} training pairs ({', '.join(langs)}) with teacher embeddings (pairs job {job_s:.0f} s), "
          f"{args.train_steps} steps of {args.batch_size} (warm-up {args.warmup_steps}); load average "
          f"{os.getloadavg()}", flush=True)

    results: dict[str, dict[str, Any]] = {}
    models: dict[str, str] = {}
    if "peer" in runs:
        results["peer"] = train_peer(args, work, jsonl, ["distill"])
        results["peer"]["teacher_s"] = json.loads((work / "peer" / "stats.json").read_text())["teacher_s"]
        models["peer"] = results["peer"]["model"]
        print(f"peer trained ({time.perf_counter() - start:.0f} s so far)", flush=True)
    if "polyembed" in runs:
        results["polyembed"] = train_polyembed(args, work, "polyembed", pattern, pairs,
                                               distill_override(args, args.polyembed_init), "labse/distill")
        models["polyembed"] = results["polyembed"]["export"]
        export_student(results["polyembed"]["run"], work / "student_export", "labse/distill",
                       distill_override(args, args.polyembed_init))
        print(f"polyembed trained ({time.perf_counter() - start:.0f} s so far)", flush=True)
    if "polyembed_best" in runs:
        results["polyembed_best"] = train_best(args, work, pattern, pairs)
        models["polyembed_best"] = results["polyembed_best"]["export"]
        print(f"polyembed_best ({args.best_recipe}) trained ({time.perf_counter() - start:.0f} s so far)", flush=True)
    models = {"before": export_before(args, work), **models}
    everything = tatoeba_languages(SHARED / "translation" / "flores200_devtest",
                                   SHARED / "translation" / "laser_tatoeba_v1") if args.all_languages else []
    scored = list(dict.fromkeys([*langs, *everything]))
    for system, scores in evaluate(args, work, models, scored).items():
        results.setdefault(system, {}).update(scores)
        scores = results[system]
        scores["mean_all"], scores["mean"] = scores["mean"], sum(scores[lang] for lang in langs) / len(langs)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    ratios = [("polyembed/peer", "polyembed", "peer"), ("best/peer", "polyembed_best", "peer")]
    print_table(results, ("before", *RUNS), ratios,
                [*((f"tatoeba {lang}", lang, ".4f") for lang in langs), (f"tatoeba mean ({len(langs)})", "mean", ".4f"),
                 (f"tatoeba mean ({len(scored)} all)", "mean_all", ".4f"), ("STS-B dev spearman", "sts_b", ".4f"),
                 *SPEED_ROWS, ("teacher s (peer)", "teacher_s", ".1f")])
    print(f"all languages scored: {','.join(scored)}")
    if "polyembed" in runs:
        print(f"student export (text_embedder): {work / 'student_export'}")
    if "polyembed_best" in runs:
        print(f"best recipe's export (text_embedder): {work / 'best_student_export'}")
    print(f"total {time.perf_counter() - start:.0f} s; load average {os.getloadavg()}; results in "
          f"{work / 'results.json'}")


if __name__ == "__main__":
    main()
