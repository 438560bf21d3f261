"""Decontamination: dropping records that overlap evaluation files (sentences, whole texts, n-grams)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np

from specs.errors import ConfigError
from transforms.core.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.core.formats import JSONL, format_of
from transforms.core.lines import ReadLineBatches
from transforms.core.seeding import stable_hash64
from transforms.core.storage import match_files
from transforms.dedup.keys import BAD_TEXTS, EVAL_OVERLAP, ScopeFn, TextsFn, record_texts
from transforms.dedup.minhash import ngram_hashes, unit_hashes
from transforms.text import textnorm

_SENTENCE_TAG = "eval-sentence"
_NGRAM_SALT = 0x5EED_DEC0


def overlap_fingerprints(text: str, ngram: int, min_sentence_chars: int) -> np.ndarray:
    """The 64-bit fingerprints two texts are compared by: the normalised whole text (on the eval side
    always; on the training side too, so a short training text equal to an eval text matches),
    normalised sentences of at least ``min_sentence_chars`` characters, and unit ``ngram``-grams."""
    whole = textnorm.near_key_text(text)
    sentences = {whole} if whole else set()
    for s in textnorm.split_sentences(text):
        n = textnorm.near_key_text(s)
        if len(n) >= min_sentence_chars:
            sentences.add(n)
    fixed = np.array(sorted(stable_hash64(_SENTENCE_TAG, s) for s in sentences), dtype=np.uint64)
    grams = ngram_hashes(unit_hashes(whole), ngram, salt=_NGRAM_SALT, whole_if_short=False)
    return np.concatenate([fixed, grams])


def eval_texts(path: str, line: bytes) -> list[str]:
    """Texts of one line of an evaluation file: the line itself, or for JSONL files
    (``formats.format_of``) every string value in the JSON object (a line that is not JSON counts as
    text)."""
    text = line.decode("utf-8", errors="replace").strip()
    if text and format_of(path, (JSONL,)) == JSONL:
        import json

        try:
            value = json.loads(text)
        except ValueError:
            return [text]
        out: list[str] = []
        stack = [value]
        while stack:
            v = stack.pop()
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, dict):
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
        return out
    return [text] if text else []


class _UnionFingerprints(beam.CombineFn):
    """Union of uint64 arrays as one sorted unique array, compacted as it grows."""

    def create_accumulator(self) -> list[np.ndarray]:
        return []

    def add_input(self, acc: list[np.ndarray], arr: np.ndarray) -> list[np.ndarray]:
        acc.append(arr)
        if sum(len(a) for a in acc) > 1 << 20:
            acc[:] = [np.unique(np.concatenate(acc))]
        return acc

    def merge_accumulators(self, accs: Iterable[list[np.ndarray]]) -> list[np.ndarray]:
        merged = [a for acc in accs for a in acc]
        return [np.unique(np.concatenate(merged))] if merged else []

    def extract_output(self, acc: list[np.ndarray]) -> np.ndarray:
        return np.unique(np.concatenate(acc)) if acc else np.empty(0, dtype=np.uint64)


class _DropOverlap(AccountedDoFn):
    def __init__(self, stage: str, texts_fn: TextsFn, scope_fn: ScopeFn | None, ngram: int,
                 min_sentence_chars: int) -> None:
        self.stage = stage
        self._texts_fn, self._scope_fn, self._ngram, self._min = texts_fn, scope_fn, ngram, min_sentence_chars

    def process(self, record: Any, index: np.ndarray) -> Iterator[Any]:
        scope = "all"
        try:
            if self._scope_fn is not None:
                scope = str(self._scope_fn(record))
            texts = record_texts(self._texts_fn, record, "pair")
            prints = np.concatenate([overlap_fingerprints(t, self._ngram, self._min) for t in texts])
        except Exception as e:  # bad data must not crash the job
            self.took_in(scope)
            yield self.dead_letter(scope, DeadLetter.make(
                self.stage, BAD_TEXTS, record if isinstance(record, (bytes, str)) else repr(record),
                detail=f"{type(e).__name__}: {e}"))
            return
        self.took_in(scope)
        if len(index) and len(prints):
            pos = np.searchsorted(index, prints)
            if np.any(index[np.minimum(pos, len(index) - 1)] == prints):
                self.filtered(scope, EVAL_OVERLAP)
                return
        self.out(scope)
        yield record


class Decontaminate(beam.PTransform):
    """Drops records overlapping the evaluation files; see ``transforms.dedup``'s docstring. The files are
    matched at construction (a pattern matching nothing is a ``ConfigError`` naming ``flag``)."""

    def __init__(self, texts_fn: TextsFn, exclude_patterns: Sequence[str], *, ngram: int = 13,
                 min_sentence_chars: int = 20, scope_fn: ScopeFn | None = None, stage: str = "decontaminate",
                 flag: str = "--exclude") -> None:
        super().__init__()
        if ngram < 1 or ngram > 64:
            raise ConfigError(f"{flag}: the n-gram size must be in 1..64, got {ngram}")
        self._paths = match_files(exclude_patterns, flag)
        self._texts_fn, self._scope_fn, self._ngram, self._min, self._stage = (
            texts_fn, scope_fn, ngram, min_sentence_chars, stage)

    def expand(self, records: beam.PCollection) -> Accounted:
        ngram, min_chars = self._ngram, self._min
        eval_lines = records.pipeline | "EvalFiles" >> ReadLineBatches(self._paths)
        index = (
            eval_lines.out
            | "EvalFingerprints" >> beam.Map(lambda b: np.concatenate(
                [np.empty(0, dtype=np.uint64)]
                + [overlap_fingerprints(t, ngram, min_chars) for _, line in b.lines
                   for t in eval_texts(b.path, line)]))
            | "EvalIndex" >> beam.CombineGlobally(_UnionFingerprints())
        )
        kept = apply_accounted(records, "DropEvalOverlap",
                               _DropOverlap(self._stage, self._texts_fn, self._scope_fn, ngram, min_chars),
                               beam.pvalue.AsSingleton(index))
        # The evaluation files are inputs too: their read_input stage is accounted in the summary.
        return Accounted(kept.out, (eval_lines.tally, kept.tally) | "Tallies" >> beam.Flatten(),
                         (eval_lines.dead_letter, kept.dead_letter) | "DeadLetters" >> beam.Flatten())
