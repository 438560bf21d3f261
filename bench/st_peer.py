"""The sentence-transformers side of ``bench/vs_sentence_transformers.py``, run with the peer venv's Python
(torch, transformers, sentence-transformers; ``make peer``), never the project's: the project's venv must not
import torch, so the bench talks to this script through files only.

    PEER_PYTHON bench/st_peer.py embed --model=DIR --sentences=S.json --out=E.npy [--max_seq_length=128]
    PEER_PYTHON bench/st_peer.py train --model=DIR --pairs=train.jsonl.gz --out=DIR --stats=S.json \\
        --steps=347 --warmup_steps=35 [--batch_size=32 --learning_rate=2e-5 --scale=20 --max_seq_length=128]
    PEER_PYTHON bench/st_peer.py distill --model=DIR [--teacher=DIR] --pairs=... (train's flags, no --scale)

``embed`` writes the L2-normalised embeddings of a JSON list of sentences, in order, with the model's
own ``encode``. ``train`` is ``SentenceTransformer.fit`` (which runs ``SentenceTransformerTrainer``):
``MultipleNegativesRankingLoss`` over (src, eng) pairs read from the translation_pairs job's JSONL copy,
shuffled, AdamW (weight decay 0.01 except biases and LayerNorm, epsilon 1e-8), linear warm-up then linear
decay to 0 (``WarmupLinear``), gradient norm clipped at 1. Batches are padded to their longest sentence,
truncated at ``max_seq_length``.

``distill`` (for ``bench/distill.py``) is ``make_multilingual``'s recipe on the same pairs: the teacher
(``--teacher``, default the student's own starting folder) ``encode``s each distinct English side once
(``ParallelSentencesDataset``'s embedding cache; the labels are the same as encoding every row), before
training (timed apart, ``teacher_s``), and that embedding labels both sides, ``InputExample(texts=[src,
eng], label=...)``; ``MSELoss`` averages the two sides' mean squared errors. The rest is ``train``'s.

``--max_train_seconds`` stops training at the first step that starts after that many seconds of the loop
and saves the model as it is; the stats say how many steps ran.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sentence_transformers import InputExample, SentenceTransformer
from sentence_transformers.sentence_transformer import losses
from torch.utils.data import DataLoader


class TimeUpError(Exception):
    """Raised inside the loss when ``--max_train_seconds`` is spent (fit has no stopping hook)."""


class TimedLoss(torch.nn.Module):
    """The loss, with the time each step starts and each batch's padded length recorded: the bench's
    steady-state pairs/s leaves out the first steps, as it does for polyembed's traced first loop."""

    def __init__(self, loss: torch.nn.Module, deadline: float) -> None:
        super().__init__()
        self.loss, self.deadline = loss, deadline
        self.starts: list[float] = []
        self.padded_lengths: list[int] = []
        self.losses: list[float] = []

    def forward(self, features: list[dict[str, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
        now = time.perf_counter()
        if self.deadline and now > self.deadline:
            raise TimeUpError
        self.starts.append(now)
        self.padded_lengths += [int(f["input_ids"].shape[1]) for f in features]
        loss = self.loss(features, labels)
        self.losses.append(float(loss.detach()))
        return loss


def read_pairs(path: str) -> list[tuple[str, str]]:
    """(src_raw, tgt_raw) of the translation_pairs job's ``--write_jsonl`` copy, in file order."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(r["src_raw"], r["tgt_raw"]) for r in rows]


def embed(args: argparse.Namespace) -> None:
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = args.max_seq_length
    with open(args.sentences, encoding="utf-8") as f:
        sentences = json.load(f)
    emb = model.encode(sentences, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    np.save(args.out, emb.astype(np.float32))


def fit(args: argparse.Namespace, model: SentenceTransformer, examples: list[InputExample],
        make_loss: Callable[[SentenceTransformer], torch.nn.Module], stats: dict[str, Any]) -> None:
    """``model.fit`` over ``examples`` (shuffled) with the loss ``make_loss`` builds, timed and time-boxed
    (``TimedLoss``); saves the model and writes ``stats`` with the run's timings to ``args.stats``."""
    loader = DataLoader(examples, shuffle=True, batch_size=args.batch_size)
    start = time.perf_counter()
    loss = TimedLoss(make_loss(model), start + args.max_train_seconds if args.max_train_seconds else 0.0)
    os.chdir(os.path.dirname(os.path.abspath(args.out)))  # fit's trainer writes under ./checkpoints
    try:
        model.fit(train_objectives=[(loader, loss)], epochs=1, steps_per_epoch=args.steps,
                      warmup_steps=args.warmup_steps, optimizer_params={"lr": args.learning_rate},
                      weight_decay=0.01, max_grad_norm=1.0, show_progress_bar=False)
    except TimeUpError:
        pass
    end = time.perf_counter()
    model.save(args.out)
    stats.update({"pairs_in_file": len(examples), "steps": len(loss.starts), "loop_s": end - start,
                  "step_starts_s": [t - start for t in loss.starts], "end_s": end - start, "losses": loss.losses,
                  "mean_padded_length": float(np.mean(loss.padded_lengths)) if loss.padded_lengths else 0,
                  "torch_threads": torch.get_num_threads()})
    with open(args.stats, "w", encoding="utf-8") as f:
        json.dump(stats, f)


def student(args: argparse.Namespace) -> SentenceTransformer:
    torch.manual_seed(args.seed)
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = args.max_seq_length
    return model


def train(args: argparse.Namespace) -> None:
    """``MultipleNegativesRankingLoss`` over (src, eng) pairs."""
    examples = [InputExample(texts=[s, t]) for s, t in read_pairs(args.pairs)]
    fit(args, student(args), examples, lambda m: losses.MultipleNegativesRankingLoss(m, scale=args.scale), {})


def distill(args: argparse.Namespace) -> None:
    """``make_multilingual``'s recipe (Reimers & Gurevych 2020): the teacher's ``encode`` of each pair's English
    side is the label of both sides, ``MSELoss`` (the mean of the two sides' mean squared errors)."""
    model = student(args)
    pairs = read_pairs(args.pairs)
    start = time.perf_counter()
    teacher = SentenceTransformer(args.teacher or args.model, device="cpu")
    teacher.max_seq_length = args.max_seq_length
    english = list(dict.fromkeys(t for _, t in pairs))  # each once (module docstring)
    labels = dict(zip(english, teacher.encode(english, batch_size=64, convert_to_numpy=True), strict=True))
    teacher_s = time.perf_counter() - start
    del teacher
    examples = [InputExample(texts=[s, t], label=labels[t]) for s, t in pairs]
    fit(args, model, examples, losses.MSELoss, {"teacher_s": teacher_s})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("embed")
    e.add_argument("--model", required=True)
    e.add_argument("--sentences", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--max_seq_length", type=int, default=128)
    e.add_argument("--batch_size", type=int, default=64)
    t = argparse.ArgumentParser(add_help=False)  # the flags train and distill share
    t.add_argument("--model", required=True)
    t.add_argument("--pairs", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--stats", required=True)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--warmup_steps", type=int, required=True)
    t.add_argument("--batch_size", type=int, default=32)
    t.add_argument("--learning_rate", type=float, default=2e-5)
    t.add_argument("--max_seq_length", type=int, default=128)
    t.add_argument("--max_train_seconds", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=42)
    sub.add_parser("train", parents=[t]).add_argument("--scale", type=float, default=20.0)
    d = sub.add_parser("distill", parents=[t])
    d.add_argument("--teacher", default="", help="The teacher's folder; empty: --model's.")
    args = p.parse_args()
    {"embed": embed, "train": train, "distill": distill}[args.command](args)


if __name__ == "__main__":
    main()
