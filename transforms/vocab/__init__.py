"""Learning a WordPiece vocabulary from a corpus: BERT pre-tokenisation, word counts, language smoothing.

The learner is tensorflow_text's (``tensorflow_text.tools.wordpiece_vocab``); everything before it runs
on Beam in bounded memory: lines (or JSONL documents) are pre-tokenised into words exactly as BERT's
``BasicTokenizer`` does, counted per language with a combiner, re-weighted so that languages are
sampled with ``p ∝ n^alpha``, pruned (a minimum count, then the ``max_words`` most frequent words), and
only that bounded list reaches the learner. The package's layers, bottom up:

- ``records`` (which inputs are text or JSONL, a line as ``(language, text)``) and ``pretokenize``
  (BERT's pre-tokenisation from ``specs.vocabulary``'s character classes, WordPiece splitting): no Beam;
- ``learner``: the pure algorithm (reserved tokens, language weights, the learner run and shaped into
  a BERT vocabulary, coverage, the vocab_params.json document);
- ``plan`` (the flags, checked at start-up), ``steps`` and ``outputs``: the Beam transforms and DoFns
  ``pipelines.vocab`` composes.
"""

from transforms.core.records import BadRecordError
from transforms.vocab.learner import (
    LearnerConfig,
    coverage_stats,
    format_vocab,
    language_weights,
    learn_wordpiece,
    reserved_tokens,
    search_threshold,
    summarize_coverage,
    vocab_params,
    weighted_count,
    weights_of_totals,
)
from transforms.vocab.outputs import (
    COUNTS_FILE,
    PARAMS_FILE,
    VOCAB_FILE,
    CoverageOfTrainingText,
    LearnAndWriteVocab,
    WriteParams,
)
from transforms.vocab.plan import RECORDED_FLAGS, job_config, recorded_flags
from transforms.vocab.pretokenize import JOINER, MAX_CHARS_PER_WORD, is_isolated_char, pre_tokenize, wordpiece_split
from transforms.vocab.records import JSONL, TEXT, InputConfig, decode_line, parse_jsonl_record
from transforms.vocab.steps import CountWordsByLanguage, SelectLearnerWords, SumTuples, language_totals

__all__ = [
    "COUNTS_FILE", "JOINER", "JSONL", "MAX_CHARS_PER_WORD", "PARAMS_FILE", "RECORDED_FLAGS", "TEXT", "VOCAB_FILE",
    "BadRecordError", "CountWordsByLanguage", "CoverageOfTrainingText", "InputConfig", "LearnAndWriteVocab",
    "LearnerConfig", "SelectLearnerWords", "SumTuples", "WriteParams", "coverage_stats", "decode_line",
    "format_vocab", "is_isolated_char", "job_config", "language_totals", "language_weights", "learn_wordpiece",
    "parse_jsonl_record", "pre_tokenize", "recorded_flags", "reserved_tokens", "search_threshold",
    "summarize_coverage", "vocab_params", "weighted_count", "weights_of_totals", "wordpiece_split",
]
