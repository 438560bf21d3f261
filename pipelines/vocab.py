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

import sys
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from transforms import vocab as wp
from transforms.core import flags, runtime


class VocabOptions(runtime.CommonOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        flags.add_inputs(parser, "Files or globs, comma-separated or repeated (local or gs://); .gz/.bz2 are read "
                                 "whole.", reference_names=True)
        parser.add_argument("--input_format", default="auto",
             help="text (sentence per line), jsonl, or auto: .jsonl/.json/.ndjson are JSONL.")
        parser.add_argument("--text_field", default="text", help="JSONL field holding the document text.")
        parser.add_argument("--language_field", default="", help="JSONL field holding the language code.")
        flags.add_language_pattern(parser, default="", fallback="--default_language")
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


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> runtime.Built:
    o = options.view_as(VocabOptions)
    out_dir = options.view_as(runtime.CommonOptions).output_dir
    paths, inputs, learner = wp.job_config(o)
    runtime.check_inputs_complete(o.input_patterns, "--input_patterns", options, ours=False)
    flags = wp.recorded_flags(o)

    ledger = runtime.Ledger()
    counted = ledger.add(pipeline | "CountWords" >> wp.CountWordsByLanguage(paths, inputs, learner.lower))
    totals = wp.language_totals(counted)
    alpha = o.alpha
    weights = (
        totals
        | "AllLanguages" >> beam.combiners.ToList()
        | "LanguageWeights" >> beam.Map(wp.weights_of_totals, alpha)
    )
    words, chars, prune_stats = (counted, weights) | "SelectWords" >> wp.SelectLearnerWords(
        o.min_word_count, o.max_words, o.max_unique_chars)
    learned = words | "LearnAndWriteVocab" >> beam.ParDo(wp.LearnAndWriteVocab(learner, out_dir),
                                                         beam.pvalue.AsSingleton(chars))
    coverage = (
        counted
        | "TokenizeTrainingWords" >> beam.ParDo(wp.CoverageOfTrainingText(), beam.pvalue.AsSingleton(learned))
        | "SumCoverage" >> beam.CombinePerKey(wp.SumTuples(5))
    )
    _ = learned | "WriteParams" >> beam.ParDo(
        wp.WriteParams(FileSystems.join(out_dir, wp.PARAMS_FILE), flags),
        beam.pvalue.AsList(totals), beam.pvalue.AsSingleton(weights), beam.pvalue.AsSingleton(prune_stats),
        beam.pvalue.AsList(coverage))
    # no word reached the learner (every one under --min_word_count, say): vocab.txt would hold the reserved
    # tokens alone, a vocabulary that tokenises everything to [UNK]
    return ledger.built(outputs={"vocabulary": FileSystems.join(out_dir, wp.VOCAB_FILE),
                                 "parameters and coverage": FileSystems.join(out_dir, wp.PARAMS_FILE)},
                        data_files={f"the learner's words ({wp.COUNTS_FILE}: a vocabulary of reserved tokens only)":
                                    [FileSystems.join(out_dir, wp.COUNTS_FILE)]})


if __name__ == "__main__":
    sys.exit(runtime.main("vocab", build))
