"""Learns a WordPiece vocabulary (BERT ``vocab.txt``) from a corpus: ``python -m pipelines.vocab``.

    python -m pipelines.vocab --input_patterns='corpus/*.txt' --output_dir=out/vocab \\
        --vocab_size=30522 --do_lower_case

Reads the BERT text format (a sentence per line, blank lines between documents) or JSONL documents
(``--text_field``, optional ``--language_field``), pre-tokenises as BERT's BasicTokenizer, counts words
per language on Beam, weights languages by ``n^alpha``, prunes rare words and hands the most frequent
``--max_words`` to tensorflow_text's WordPiece learner. Writes ``vocab.txt``, ``vocab_params.json``
(flags, per-language counts and weights, pruning, learner report, [UNK] rate and pieces per word of the
training text per language), ``word_counts.tsv`` (the learner's input) and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from specs import vocabulary as sv
from transforms import runtime
from transforms import vocab as wp
from transforms.errors import ConfigError
from transforms.files import match_files

VOCAB_FILE = "vocab.txt"
PARAMS_FILE = "vocab_params.json"
COUNTS_FILE = "word_counts.tsv"


class VocabOptions(runtime.CommonOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--input_patterns", "--input_file", dest="input_patterns", action="append", default=[],
             help="Files or globs, comma-separated or repeated (local or gs://); .gz/.bz2 are read whole.")
        parser.add_argument("--input_format", default="auto",
             help="text (sentence per line), jsonl, or auto: .jsonl/.json/.ndjson are JSONL.")
        parser.add_argument("--text_field", default="text", help="JSONL field holding the document text.")
        parser.add_argument("--language_field", default="", help="JSONL field holding the language code.")
        parser.add_argument("--language_pattern", default="",
             help="Regex on the file path whose group 1 is the language, e.g. '/(\\w+)\\.txt$'.")
        parser.add_argument("--default_language", default="und", help="Language of records without one.")
        parser.add_argument("--vocab_size", type=int, default=None, help="Target number of tokens (lines).")
        parser.add_argument("--do_lower_case", action="store_true",
             help="Lower-case and strip accents (BERT uncased); default keeps case (cased).")
        parser.add_argument("--alpha", type=float, default=1.0,
             help="Language smoothing exponent: languages weighted as n^alpha (1 = as is).")
        parser.add_argument("--reserved_tokens", default="",
             help="Comma-separated extra reserved tokens placed after [MASK] (e.g. '<S>,<T>').")
        parser.add_argument("--num_unused", type=int, default=99,
             help="[unusedN] slots between [PAD] and [UNK]; 99 gives BERT's special ids.")
        parser.add_argument("--min_word_count", type=int, default=2,
             help="Words with a smaller (weighted) count are dropped before learning.")
        parser.add_argument("--max_words", type=int, default=250_000,
             help="At most this many most frequent words reach the single-process learner.")
        parser.add_argument("--min_token_count", type=int, default=10,
             help="Learner's lower threshold: a piece must occur this often.")
        parser.add_argument("--max_unique_chars", type=int, default=1000,
             help="Alphabet size; words with rarer characters are not learned from.")
        parser.add_argument("--max_token_length", type=int, default=50, help="Longest piece the learner makes.")
        parser.add_argument("--num_iterations", type=int, default=4, help="Learner iterations per threshold.")
        parser.add_argument("--slack_ratio", type=float, default=0.05,
             help="Learner accepts a size within this fraction below the target.")
        parser.add_argument("--no_pad_to_vocab_size", dest="pad_to_vocab_size", action="store_false",
             help="Do not fill a short vocabulary up to --vocab_size with [unusedN].")


def _config(o: VocabOptions) -> tuple[list[str], wp.InputConfig, wp.LearnerConfig]:
    """Checks every flag before anything runs; one-line ConfigError otherwise."""
    if not o.input_patterns:
        raise ConfigError("--input_patterns is required")
    if o.vocab_size is None:
        raise ConfigError("--vocab_size is required")
    if not 0.0 <= o.alpha <= 1.0:
        raise ConfigError(f"--alpha must be in [0, 1], got {o.alpha}")
    if o.num_unused < 0:
        raise ConfigError(f"--num_unused must be >= 0, got {o.num_unused}")
    if o.min_word_count < 1 or o.max_words < 1:
        raise ConfigError(f"--min_word_count and --max_words must be >= 1, got {o.min_word_count}, {o.max_words}")
    inputs = wp.InputConfig(o.input_format, o.text_field, o.language_field, o.language_pattern, o.default_language)
    inputs.validate()
    extra = [t.strip() for t in o.reserved_tokens.split(",") if t.strip()]
    learner = wp.LearnerConfig(
        vocab_size=o.vocab_size, reserved=tuple(wp.reserved_tokens(o.num_unused, extra)), num_unused=o.num_unused,
        lower=o.do_lower_case, min_token_count=o.min_token_count, num_iterations=o.num_iterations,
        max_token_length=o.max_token_length, max_unique_chars=o.max_unique_chars, slack_ratio=o.slack_ratio,
        pad_to_vocab_size=o.pad_to_vocab_size)
    learner.validate()
    paths = match_files([p for arg in o.input_patterns for p in arg.split(",") if p], "--input_patterns")
    return paths, inputs, learner


class _WriteVocab(beam.DoFn):
    """Learns the vocabulary from the selected words and writes vocab.txt and word_counts.tsv."""

    def __init__(self, cfg: wp.LearnerConfig, output_dir: str) -> None:
        self._cfg = cfg
        self._dir = output_dir

    def process(self, words: list[tuple[str, int]], chars: list[tuple[str, int]]) -> Any:
        start = time.monotonic()
        tokens, report = wp.learn_wordpiece(words, self._cfg, chars)
        logging.info("vocab: learned %d tokens from %d words in %.1f s", report["learned_size"], len(words),
                     time.monotonic() - start)
        with FileSystems.create(FileSystems.join(self._dir, VOCAB_FILE)) as f:
            f.write(wp.format_vocab(tokens))
        with FileSystems.create(FileSystems.join(self._dir, COUNTS_FILE)) as f:
            f.write("".join(f"{w}\t{c}\n" for w, c in words).encode("utf-8"))
        yield {"tokens": tokens, "report": report}


class _CoverageOfTrainingText(beam.DoFn):
    """Tokenises every counted word with the learned vocabulary (a side input, turned into a set once
    per DoFn instance) and emits per-language coverage tallies."""

    def setup(self) -> None:
        self._source: object = None
        self._vocab: frozenset[str] = frozenset()

    def process(self, item: tuple[tuple[str, str], int], learned: dict[str, Any]) -> Any:
        if learned is not self._source:
            self._source, self._vocab = learned, frozenset(learned["tokens"])
        yield wp.coverage_stats(item, self._vocab)


class _WriteParams(beam.DoFn):
    def __init__(self, path: str, flags: dict[str, Any]) -> None:
        self._path = path
        self._flags = flags

    def process(self, learned: dict[str, Any], totals: list, weights: dict[str, float], prune: tuple[int, ...],
                coverage: list) -> Any:
        all_words, all_mass, kept_words, kept_mass = prune
        # How ids from this vocabulary are made, as every spec sidecar records it (specs.vocabulary).
        written = sv.Vocabulary(sv.parse_vocab(wp.format_vocab(learned["tokens"])), self._flags["do_lower_case"])
        params = {
            **sv.tokenization_params(written.params()),
            "flags": self._flags,
            "special_ids": {t: learned["tokens"].index(t) for t in (wp.PAD, wp.UNK, wp.CLS, wp.SEP, wp.MASK)},
            "languages": {lang: {"words": n, "distinct_words": d, "characters": c, "weight": weights.get(lang, 1.0),
                                 "share": c / sum(t[1][2] for t in totals),
                                 "smoothed_share": c * weights.get(lang, 1.0) / sum(
                                     t[1][2] * weights.get(t[0], 1.0) for t in totals)}
                          for lang, (n, d, c) in sorted(totals)},
            "pruning": {"distinct_words": all_words, "weighted_words": all_mass,
                        "kept_distinct_words": kept_words, "kept_weighted_words": kept_mass,
                        "min_word_count": self._flags["min_word_count"],
                        "cut_by_max_words": max(0, kept_words - learned["report"]["learner_input_words"])},
            "learner": learned["report"],
            "training_text_coverage": wp.summarize_coverage(dict(coverage)),
        }
        with FileSystems.create(self._path) as f:
            f.write((json.dumps(params, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
        yield self._path


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> runtime.Built:
    o = options.view_as(VocabOptions)
    out_dir = options.view_as(runtime.CommonOptions).output_dir
    paths, inputs, learner = _config(o)
    runtime.check_inputs_complete(o.input_patterns, "--input_patterns", options, ours=False)
    flags = {k: getattr(o, k) for k in (
        "input_patterns", "input_format", "text_field", "language_field", "language_pattern", "default_language",
        "vocab_size", "do_lower_case", "alpha", "reserved_tokens", "num_unused", "min_word_count", "max_words",
        "min_token_count", "max_unique_chars", "max_token_length", "num_iterations", "slack_ratio",
        "pad_to_vocab_size")}

    counted = pipeline | "CountWords" >> wp.CountWordsByLanguage(paths, inputs, learner.lower)
    totals = wp.language_totals(counted.out)
    alpha = o.alpha
    weights = (
        totals
        | "AllLanguages" >> beam.combiners.ToList()
        | "LanguageWeights" >> beam.Map(lambda ts: wp.language_weights({k: v[2] for k, v in ts}, alpha))
    )
    words, chars, prune_stats = (counted.out, weights) | "SelectWords" >> wp.SelectLearnerWords(
        o.min_word_count, o.max_words, o.max_unique_chars)
    learned = words | "LearnAndWriteVocab" >> beam.ParDo(_WriteVocab(learner, out_dir), beam.pvalue.AsSingleton(chars))
    coverage = (
        counted.out
        | "TokenizeTrainingWords" >> beam.ParDo(_CoverageOfTrainingText(), beam.pvalue.AsSingleton(learned))
        | "SumCoverage" >> beam.CombinePerKey(wp.SumTuples(5))
    )
    _ = learned | "WriteParams" >> beam.ParDo(
        _WriteParams(FileSystems.join(out_dir, PARAMS_FILE), flags),
        beam.pvalue.AsList(totals), beam.pvalue.AsSingleton(weights), beam.pvalue.AsSingleton(prune_stats),
        beam.pvalue.AsList(coverage))
    return runtime.Built(
        tallies=[counted.tally], dead_letters=[counted.dead_letter],
        outputs={"vocabulary": FileSystems.join(out_dir, VOCAB_FILE),
                 "parameters and coverage": FileSystems.join(out_dir, PARAMS_FILE)})


if __name__ == "__main__":
    sys.exit(runtime.main("vocab", build))
