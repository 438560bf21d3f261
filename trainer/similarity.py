"""Prints a cross-lingual similarity table from an exported sentence encoder.

    python -m trainer.similarity --model=EXPORT_DIR --tsv=pairs.deu-eng.tsv [--rows=5] [--preprocessor=DIR]

Reads the first ``--rows`` lines of a ``src<TAB>tgt`` file, embeds both sides with the export (and its
own tokenisation, as ``trainer.evaluate`` does) and prints the cosine similarity of every target
sentence (rows) to every source sentence (columns). Each row's best column is marked ``*``; a good
encoder puts the marks on the diagonal, where the translations are. The last line counts them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np


def read_tsv(path: str, rows: int) -> tuple[list[str], list[str]]:
    src, tgt = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                src.append(parts[0])
                tgt.append(parts[1])
            if len(src) == rows:
                break
    return src, tgt


def format_table(rows: Sequence[str], cols: Sequence[str], sim: np.ndarray, width: int = 28) -> str:
    def cut(s: str) -> str:
        return s if len(s) <= width else s[: width - 1] + "…"

    lines = [" " * (width + 2) + "".join(f"{'[' + str(j) + ']':>8}" for j in range(len(cols)))]
    for i, r in enumerate(rows):
        best = int(np.argmax(sim[i]))
        cells = "".join(f"{sim[i, j]:>7.2f}{'*' if j == best else ' '}" for j in range(len(cols)))
        lines.append(f"{cut(r):<{width}}  {cells}")
    lines.append("")
    lines += [f"[{j}] {c}" for j, c in enumerate(cols)]
    hits = int(sum(int(np.argmax(sim[i])) == i for i in range(len(rows))))
    lines.append(f"translation ranked first for {hits} of {len(rows)} sentences (random embeddings: about 1)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.similarity", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="An encoder export (trainer.export_tfhub --export_type=model).")
    p.add_argument("--preprocessor", default="", help="A preprocessing export (else the encoder's vocab_file).")
    p.add_argument("--tsv", required=True, help="src<TAB>tgt lines (a translation-pair TSV).")
    p.add_argument("--rows", type=int, default=5)
    p.add_argument("--seq_length", type=int, default=32)
    p.add_argument("--output", default="", help="Also write the table to this file.")
    args = p.parse_args(argv)
    from trainer.evaluate import Embedder

    src, tgt = read_tsv(args.tsv, args.rows)
    if not src:
        print(f"trainer.similarity: error: no src<TAB>tgt lines in {args.tsv}", file=sys.stderr)
        return 2
    embed = Embedder(args.model, args.preprocessor, seq_length=args.seq_length)
    sim = embed(tgt) @ embed(src).T
    table = format_table(tgt, src, sim)
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
