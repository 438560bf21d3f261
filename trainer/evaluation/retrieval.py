"""Tatoeba-format retrieval scoring (``python -m trainer.evaluate``): precision@1 of finding each
line's translation among all lines of the other file, both directions, as in the LaBSE paper."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from specs.errors import ConfigError
from trainer.evaluation.embedder import Embedder
from trainer.modeling.losses import retrieval_precision_at_1


def read_lines(path: str, skip: int = 0, limit: int = 0) -> list[str]:
    with tf.io.gfile.GFile(path, "rb") as f:
        lines = f.read().decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = lines[skip:]
    return lines[:limit] if limit else lines


def score_pairs(embed: Any, src: Sequence[str], tgt: Sequence[str]) -> dict[str, float]:
    """P@1 of finding each line's translation among all lines of the other file, both directions."""
    if len(src) != len(tgt):
        raise ValueError(f"the two sides have {len(src)} and {len(tgt)} lines")
    s, t = embed(src), embed(tgt)
    return {"pairs": len(src), "precision_at_1_src_to_tgt": retrieval_precision_at_1(s, t),
            "precision_at_1_tgt_to_src": retrieval_precision_at_1(t, s), "chance": 1.0 / max(len(src), 1)}


def run(args: Any) -> None:
    """Scores every pair of files; a missing file, model or line is one line (``one_line_errors``)."""
    pairs = [tuple(x.split(":", 1)) for x in args.pairs]
    if args.tatoeba_dir:
        for lang in filter(None, args.langs.split(",")):
            stem = os.path.join(args.tatoeba_dir, f"tatoeba.{lang}-eng")
            pairs.append((f"{stem}.{lang}", f"{stem}.eng"))
    if not pairs:
        raise ConfigError("give --pairs or --tatoeba_dir with --langs")
    for pair in pairs:
        if len(pair) != 2:
            raise ConfigError(f"--pairs {pair[0]} is not SRC_FILE:TGT_FILE")
        for path in pair:
            if not tf.io.gfile.exists(path):
                raise ConfigError(f"{path} does not exist")
    texts = []
    for src, tgt in pairs:  # every file read and checked before the model is loaded
        src_lines = read_lines(src, args.skip_lines, args.max_lines)
        tgt_lines = read_lines(tgt, args.skip_lines, args.max_lines)
        if not src_lines or len(src_lines) != len(tgt_lines):  # nothing to score, or not line-aligned
            raise ConfigError(f"{src} and {tgt} give {len(src_lines)} and {len(tgt_lines)} lines to score "
                              "(after --skip_lines/--max_lines): line i of one must translate line i of the other")
        texts.append((src, tgt, src_lines, tgt_lines))
    embed = Embedder(args.model, args.preprocessor, args.seq_length, args.batch_size)
    results = []
    for src, tgt, src_lines, tgt_lines in texts:
        r = score_pairs(embed, src_lines, tgt_lines)
        r.update(src=src, tgt=tgt)
        results.append(r)
        print(json.dumps(r), flush=True)
    mean = {k: float(np.mean([r[k] for r in results])) for k in
            ("precision_at_1_src_to_tgt", "precision_at_1_tgt_to_src", "chance")}
    mean["pair_files"] = len(results)
    print(json.dumps({"mean": mean}), flush=True)
    if args.output_json:
        with tf.io.gfile.GFile(args.output_json, "w") as f:
            json.dump({"pairs": results, "mean": mean}, f, indent=2)


