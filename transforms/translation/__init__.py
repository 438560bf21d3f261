"""Translation pairs for LaBSE-style dual encoders: reading, cleaning, splitting, balancing, writing.

The package's layers, bottom up (each imports only those before it):

- ``records``: the inputs (TSV, aligned Moses/OPUS file pairs, JSONL), planning them at start-up,
  and parsing a line into a ``TranslationPair`` (no Beam);
- ``cleaning`` and ``sampling``: the pure algorithm, every per-element decision a plain function
  tested without Beam (normalising and the cleaning rules; keys, splits and balancing);
- ``reading``, ``steps``, ``statistics``: the Beam transforms, which only wire those functions up and
  account for every record; ``tft``: ``--materialize_tokens`` with tensorflow-transform (imported
  by the pipeline only when asked, it needs TensorFlow).

The names below are the package's public surface; ``pipelines.translation_pairs`` composes them.
"""

from transforms.core.records import BadRecordError
from transforms.translation.cleaning import (
    EMPTY,
    FILTER_REASONS,
    IDENTICAL,
    LENGTH_RATIO,
    NON_TEXT,
    SCRIPT,
    TOO_LONG_CHARS,
    TOO_LONG_TOKENS,
    CleanConfig,
    count_tokens,
    filter_reason,
    letter_fraction,
    nfc_single_spaced,
)
from transforms.translation.reading import ALIGN_BLOCK, ReadAlignedFiles, ReadTranslationPairs
from transforms.translation.records import (
    ALIGNED,
    BALANCE_STAGE,
    CLEAN_STAGE,
    FORMATS,
    JSONL,
    READ_STAGE,
    SPLITS,
    TSV,
    AlignedFiles,
    InputPlan,
    JsonFields,
    PairLineParser,
    TranslationPair,
    parse_json_line,
    parse_tsv_line,
    plan_inputs,
)
from transforms.translation.sampling import (
    LENGTH_BINS,
    lang_pair_of,
    length_bin,
    pair_key,
    parse_split_fractions,
    sampling_rates,
    split_of,
    texts_in_language_order,
    unordered_lang_pair,
)
from transforms.translation.statistics import (
    STATS_JSON,
    STATS_PNG,
    WriteStatistics,
    build_statistics,
    draw_statistics,
    length_keys,
)
from transforms.translation.steps import (
    TFRECORD_COMPRESSIONS,
    BalanceLanguagePairs,
    CleanTranslationPairs,
    SplitPairs,
    WriteTranslationPairs,
    encode_pair,
    pair_json,
    pairs_spec,
)

# The names these had in the single module transforms/translation.py, which bench/translation_pairs.py
# still uses: ``Pair`` collided with the pretraining and StackExchange pairs, ``normalize_text`` with
# two other normalisers.
Pair = TranslationPair
normalize_text = nfc_single_spaced

__all__ = [
    "ALIGNED", "ALIGN_BLOCK", "BALANCE_STAGE", "CLEAN_STAGE", "EMPTY", "FILTER_REASONS", "FORMATS", "IDENTICAL",
    "JSONL", "LENGTH_BINS", "LENGTH_RATIO", "NON_TEXT", "READ_STAGE", "SCRIPT", "SPLITS", "STATS_JSON", "STATS_PNG",
    "TFRECORD_COMPRESSIONS", "TOO_LONG_CHARS", "TOO_LONG_TOKENS", "TSV", "AlignedFiles", "BadRecordError",
    "BalanceLanguagePairs", "CleanConfig", "CleanTranslationPairs", "InputPlan", "JsonFields", "Pair", "PairLineParser",
    "ReadAlignedFiles", "ReadTranslationPairs", "SplitPairs", "TranslationPair", "WriteStatistics",
    "WriteTranslationPairs", "build_statistics", "count_tokens", "draw_statistics", "encode_pair", "filter_reason",
    "lang_pair_of", "length_bin", "length_keys", "letter_fraction", "nfc_single_spaced", "normalize_text", "pair_json",
    "pair_key", "pairs_spec", "parse_json_line", "parse_split_fractions", "parse_tsv_line", "plan_inputs",
    "sampling_rates", "split_of", "texts_in_language_order", "unordered_lang_pair",
]
