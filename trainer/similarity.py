"""Prints a cross-lingual similarity table from an exported sentence encoder.

    python -m trainer.similarity --model=EXPORT_DIR --tsv=pairs.deu-eng.tsv [--rows=5] [--preprocessor=DIR]

Reads the first ``--rows`` lines of a ``src<TAB>tgt`` file, embeds both sides with the export (and its
own tokenisation, as ``trainer.evaluate`` does) and prints the cosine similarity of every target
sentence (rows) to every source sentence (columns). Each row's best column is marked ``*``; a good
encoder puts the marks on the diagonal, where the translations are. The last line counts them.

A table of sentences the encoder was trained on says little. With ``--held_out_from=RUN`` (the
translation_pairs run the encoder trained on) lines whose source or target is in RUN's ``train``
split are skipped, so the table shows only held-out pairs, and says so.
"""

from __future__ import annotations

import glob
import os
import sys
import unicodedata
from collections.abc import Collection, Sequence

import numpy as np

from specs import run_folder
from specs.errors import ConfigError
from trainer.cli import one_line_errors, parse_early


def normalize(text: str) -> str:
    """NFC with whitespace collapsed: how translation_pairs stores the texts it compares."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def read_tsv(path: str, rows: int, skip: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """The first ``rows`` pairs of a TSV, leaving out pairs with a side in ``skip`` (normalised)."""
    src, tgt = [], []
    if not os.path.isfile(path):
        raise ConfigError(f"--tsv {path} does not exist")
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and not {normalize(parts[0]), normalize(parts[1])} & set(skip):
                src.append(parts[0])
                tgt.append(parts[1])
            if len(src) == rows:
                break
    return src, tgt


def training_texts(run: str) -> tuple[set[str], str]:
    """Every text of the ``train`` split of a finished translation_pairs run, and where it was read."""
    import tensorflow as tf

    run_folder.require_complete(run, "--held_out_from")
    train = os.path.join(run, "train")
    files = sorted(glob.glob(os.path.join(train, "*.tfrecord*")))
    if not files:
        raise run_folder.RunFolderError(f"--held_out_from {run}: no train/*.tfrecord* records")
    texts: set[str] = set()
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        features = tf.train.Example.FromString(record).features.feature
        for name in ("src_raw", "tgt_raw"):
            texts.update(normalize(v.decode("utf-8")) for v in features[name].bytes_list.value)
    return texts, train


def format_table(rows: Sequence[str], cols: Sequence[str], sim: np.ndarray, width: int = 28,
                 held_out: str = "") -> str:
    def cut(s: str) -> str:
        return s if len(s) <= width else s[: width - 1] + "…"

    lines = [" " * (width + 2) + "".join(f"{'[' + str(j) + ']':>8}" for j in range(len(cols)))]
    for i, r in enumerate(rows):
        best = int(np.argmax(sim[i]))
        cells = "".join(f"{sim[i, j]:>7.2f}{'*' if j == best else ' '}" for j in range(len(cols)))
        lines.append(f"{cut(r):<{width}}  {cells}")
    lines.append("")
    lines += [f"[{j}] {c}" for j, c in enumerate(cols)]
    lines.append(held_out or "these pairs were not checked against the training data (--held_out_from)")
    hits = int(sum(int(np.argmax(sim[i])) == i for i in range(len(rows))))
    lines.append(f"translation ranked first for {hits} of {len(rows)} sentences (random embeddings: about 1)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_early("similarity", argv)
    from trainer.evaluate import Embedder

    held_out = ""
    skip: set[str] = set()
    if args.held_out_from:
        try:
            skip, train = training_texts(args.held_out_from)
        except run_folder.RunFolderError as e:
            print(f"trainer.similarity: error: {e}", file=sys.stderr)
            return 2
        held_out = (f"held-out sentences: none of these pairs is in the training split {train} "
                    f"({len(skip)} training texts); the first {args.rows} such lines of {args.tsv}")
    try:
        src, tgt = read_tsv(args.tsv, args.rows, skip)
    except ConfigError as e:
        print(f"trainer.similarity: error: {e}", file=sys.stderr)
        return 2
    if not src:
        print(f"trainer.similarity: error: no src<TAB>tgt lines in {args.tsv}", file=sys.stderr)
        return 2

    def table() -> None:
        embed = Embedder(args.model, args.preprocessor, seq_length=args.seq_length)
        text = format_table(tgt, src, embed(tgt) @ embed(src).T, held_out=held_out)
        print(text)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")

    return one_line_errors(table)


if __name__ == "__main__":
    sys.exit(main())
