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

import sys
from collections.abc import Sequence

if __name__ == "__main__":  # --help and a bad flag answer before TensorFlow's import (seconds)
    from trainer.cli import parse_early

    parse_early("similarity")

from specs import run_folder
from specs.errors import ConfigError
from trainer.cli import one_line_errors, parse_early
from trainer.evaluation.embedder import Embedder
from trainer.evaluation.similarity_table import format_table, read_tsv, training_texts


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_early("similarity", argv)

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
