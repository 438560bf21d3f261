"""Scores an exported sentence encoder on Tatoeba-format file pairs (line i of one file translates
line i of the other): retrieval precision@1 in both directions, as in the LaBSE paper's Tatoeba table.

    python -m trainer.evaluate --model=EXPORT_DIR \\
        --pairs=tatoeba.deu-eng.deu:tatoeba.deu-eng.eng --pairs=... [--preprocessor=PREPROCESSING_DIR]
    python -m trainer.evaluate --model=EXPORT_DIR --tatoeba_dir=.../laser_tatoeba_v1 --langs=deu,fra \\
        [--skip_lines=0 --max_lines=200]

Tokenisation is the export's own: a ``--preprocessor`` SavedModel if given, else the encoder's
``text_preprocessor`` (the tensorflow-transform graph it was trained through; its sequence length wins
over ``--seq_length``), else its ``vocab_file`` asset and ``do_lower_case`` through
``trainer.text.tokenization``. Prints one JSON line per pair and one with the means; ``--output_json`` also
writes them to a file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __name__ == "__main__":  # --help and a bad flag answer before TensorFlow's import (seconds)
    from trainer.cli import parse_early

    parse_early("evaluate")

from trainer.cli import one_line_errors, parse_early
from trainer.evaluation.retrieval import run


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_early("evaluate", argv)
    return one_line_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
