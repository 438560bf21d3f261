"""Scores an exported sentence encoder on Tatoeba-format file pairs (line i of one file translates
line i of the other): retrieval precision@1 in both directions, as in the LaBSE paper's Tatoeba table.

    python -m trainer.evaluate --model=EXPORT_DIR \\
        --pairs=tatoeba.deu-eng.deu:tatoeba.deu-eng.eng --pairs=... [--preprocessor=PREPROCESSING_DIR]
    python -m trainer.evaluate --model=EXPORT_DIR --tatoeba_dir=.../laser_tatoeba_v1 --langs=deu,fra \\
        [--skip_lines=0 --max_lines=200]

Tokenisation is the export's own: a ``--preprocessor`` SavedModel if given, else the encoder's
``text_preprocessor`` (the tensorflow-transform graph it was trained through; its sequence length wins
over ``--seq_length``), else its ``vocab_file`` asset and ``do_lower_case`` through
``trainer.tokenization``. Prints one JSON line per pair and one with the means; ``--output_json`` also
writes them to a file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

if __name__ == "__main__":  # --help and a bad flag answer before TensorFlow's import (seconds)
    from trainer.cli import parse_early

    parse_early("evaluate")

import numpy as np
import tensorflow as tf

from specs.errors import ConfigError
from trainer.checkpoints import load_saved_model
from trainer.cli import one_line_errors, parse_early
from trainer.losses import retrieval_precision_at_1
from trainer.tokenization import BertTokenization


def read_lines(path: str, skip: int = 0, limit: int = 0) -> list[str]:
    with tf.io.gfile.GFile(path, "rb") as f:
        lines = f.read().decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = lines[skip:]
    return lines[:limit] if limit else lines


class Embedder:
    """Strings -> embeddings with a TF Hub encoder export (and its tokenisation)."""

    def __init__(self, model_dir: str, preprocessor_dir: str = "", seq_length: int = 64,
                 batch_size: int = 256) -> None:
        import tensorflow_hub as hub
        import tensorflow_text  # noqa: F401  (registers the ops a preprocessing SavedModel uses)

        self.encoder = load_saved_model(model_dir, "--model", hub.load)
        self.seq_length, self.batch_size = seq_length, batch_size
        if preprocessor_dir:
            pre = load_saved_model(preprocessor_dir, "--preprocessor", hub.load)
            self._pack = lambda s: pre.bert_pack_inputs([pre.tokenize(s)], seq_length=seq_length)
        elif hasattr(self.encoder, "text_preprocessor"):
            self._pack = self.encoder.text_preprocessor
        else:
            if not hasattr(self.encoder, "vocab_file"):
                raise ConfigError(f"--model {model_dir} has no vocab_file asset nor text_preprocessor; pass "
                                  "--preprocessor")
            vocab = self.encoder.vocab_file.asset_path.numpy().decode()
            tok = BertTokenization(vocab, bool(self.encoder.do_lower_case.numpy()))
            self._pack = tf.function(lambda s: tok(s, seq_length=seq_length))

    def __call__(self, sentences: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(sentences), self.batch_size):
            inputs = self._pack(tf.constant(list(sentences[start:start + self.batch_size])))
            out.append(self.encoder(inputs, training=False)["default"].numpy())
        emb = np.concatenate(out) if out else np.zeros([0, 0], np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)


def score_pairs(embed: Any, src: Sequence[str], tgt: Sequence[str]) -> dict[str, float]:
    """P@1 of finding each line's translation among all lines of the other file, both directions."""
    if len(src) != len(tgt):
        raise ValueError(f"the two sides have {len(src)} and {len(tgt)} lines")
    s, t = embed(src), embed(tgt)
    return {"pairs": len(src), "precision_at_1_src_to_tgt": retrieval_precision_at_1(s, t),
            "precision_at_1_tgt_to_src": retrieval_precision_at_1(t, s), "chance": 1.0 / max(len(src), 1)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_early("evaluate", argv)
    return one_line_errors(lambda: run(args))


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


if __name__ == "__main__":
    sys.exit(main())
