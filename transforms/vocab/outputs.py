"""The vocabulary job's outputs: learning and writing ``vocab.txt`` and ``word_counts.tsv``, the coverage of
the training text, and ``vocab_params.json``."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.vocab.learner import LearnerConfig, coverage_stats, format_vocab, learn_wordpiece, vocab_params

VOCAB_FILE = "vocab.txt"
PARAMS_FILE = "vocab_params.json"
COUNTS_FILE = "word_counts.tsv"


class LearnAndWriteVocab(beam.DoFn):
    """Learns the vocabulary from the selected words and writes vocab.txt and word_counts.tsv."""

    def __init__(self, cfg: LearnerConfig, output_dir: str) -> None:
        self._cfg = cfg
        self._dir = output_dir

    def process(self, words: list[tuple[str, int]], chars: list[tuple[str, int]]) -> Any:
        start = time.monotonic()
        tokens, report = learn_wordpiece(words, self._cfg, chars)
        logging.info("vocab: learned %d tokens from %d words in %.1f s", report["learned_size"], len(words),
                     time.monotonic() - start)
        with FileSystems.create(FileSystems.join(self._dir, VOCAB_FILE)) as f:
            f.write(format_vocab(tokens))
        with FileSystems.create(FileSystems.join(self._dir, COUNTS_FILE)) as f:
            f.write("".join(f"{w}\t{c}\n" for w, c in words).encode("utf-8"))
        yield {"tokens": tokens, "report": report}


class CoverageOfTrainingText(beam.DoFn):
    """Tokenises every counted word with the learned vocabulary (a side input, turned into a set once
    per DoFn instance) and emits per-language coverage tallies."""

    def setup(self) -> None:
        self._source: object = None
        self._vocab: frozenset[str] = frozenset()

    def process(self, item: tuple[tuple[str, str], int], learned: dict[str, Any]) -> Any:
        if learned is not self._source:
            self._source, self._vocab = learned, frozenset(learned["tokens"])
        yield coverage_stats(item, self._vocab)


class WriteParams(beam.DoFn):
    """Writes vocab_params.json (see ``learner.vocab_params``) once everything it reports is known."""

    def __init__(self, path: str, flags: dict[str, Any]) -> None:
        self._path = path
        self._flags = flags

    def process(self, learned: dict[str, Any], totals: list, weights: dict[str, float], prune: tuple[int, ...],
                coverage: list) -> Any:
        params = vocab_params(self._flags, learned, totals, weights, prune, dict(coverage))
        with FileSystems.create(self._path) as f:
            f.write((json.dumps(params, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
        yield self._path


