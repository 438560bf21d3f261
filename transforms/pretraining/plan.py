"""What the pretraining job's flags ask for, checked at start-up before any work (one-line
``ConfigError`` otherwise), and the parameters its ``params.json`` records. ``o`` is the job's
options (``pipelines.pretrain_data.PretrainDataOptions``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from apache_beam.io.filesystems import FileSystems

from specs.errors import ConfigError
from specs.vocabulary import Vocabulary
from transforms.core.flags import flag_list
from transforms.core.formats import JSONL, TEXT, TFRECORD, format_of
from transforms.pretraining.params import InstanceParams

FORMATS = ("auto", TEXT, JSONL, TFRECORD)


def output_files(value: str) -> list[str]:
    """The ``--output_file`` paths (comma-separated), all in one folder."""
    files = flag_list([value])
    if not files:
        raise ConfigError("--output_file is empty")
    folders = {FileSystems.split(f)[0] for f in files}
    if len(folders) > 1:
        raise ConfigError(f"--output_file: the files are in {len(folders)} folders; put them in one (the spec and "
                          "summary go beside them)")
    if len(set(files)) < len(files):
        raise ConfigError("--output_file names a file twice")
    return files


def check_tokenization(o: Any) -> None:
    """Only WordPiece is implemented; the reference's SentencePiece choice stops here."""
    if o.tokenization != "WordPiece" or o.sp_model_file:
        raise ConfigError("--tokenization=SentencePiece / --sp_model_file: only WordPiece (--vocab_file) is "
                          "implemented")


def instance_params(o: Any) -> InstanceParams:
    """Checks the numeric flags (one-line errors) and returns them as ``InstanceParams``."""
    if o.max_seq_length < 5:
        raise ConfigError(f"--max_seq_length must be at least 5 ([CLS] A [SEP] B [SEP]), got {o.max_seq_length}")
    if not o.dynamic_masking and o.max_predictions_per_seq < 1:
        raise ConfigError(f"--max_predictions_per_seq must be at least 1, got {o.max_predictions_per_seq}")
    if not 0.0 < o.masked_lm_prob <= 1.0:
        raise ConfigError(f"--masked_lm_prob must be in (0, 1], got {o.masked_lm_prob}")
    if not 0.0 <= o.short_seq_prob <= 1.0:
        raise ConfigError(f"--short_seq_prob must be in [0, 1], got {o.short_seq_prob}")
    if o.dupe_factor < 1:
        raise ConfigError(f"--dupe_factor must be at least 1, got {o.dupe_factor}")
    if o.max_ngram_size is not None and o.max_ngram_size > 1 and not o.do_whole_word_mask:
        raise ConfigError("--max_ngram_size needs --do_whole_word_mask (n-grams are of whole words)")
    if o.max_ngram_size is not None and o.max_ngram_size < 0:
        raise ConfigError(f"--max_ngram_size must be positive, got {o.max_ngram_size}")
    if o.language_alpha < 0:
        raise ConfigError(f"--language_alpha must be >= 0, got {o.language_alpha}")
    if o.docs_per_bucket < 2 or o.max_document_sentences < 1:
        raise ConfigError("--docs_per_bucket must be >= 2 and --max_document_sentences >= 1")
    return InstanceParams(o.max_seq_length, o.max_predictions_per_seq, o.masked_lm_prob, o.short_seq_prob,
                          o.dupe_factor, o.do_whole_word_mask, o.max_ngram_size or None, o.dynamic_masking)


def input_format(paths: list[str], requested: str) -> str:
    """The one format of all inputs (``formats.format_of``: JSONL or TFRecord by name, else text); fails
    when ``auto`` finds a mix."""
    if requested != "auto":
        return requested
    found = sorted({format_of(p, (JSONL, TFRECORD)) or TEXT for p in paths})
    if len(found) > 1:
        raise ConfigError(f"--input_patterns: inputs mix formats {found}; run one format per job or set --input_format")
    return found[0]


def recorded_params(o: Any, patterns: list[str], fmt: str, tlm_patterns: list[str], seed: int,
                    params: InstanceParams, vocab: Vocabulary) -> dict[str, Any]:
    """The parameters ``params.json`` records: every flag the records depend on, and the vocabulary's."""
    return {
        "input_patterns": patterns, "input_format": fmt, "tlm_input": tlm_patterns, "vocab_file": o.vocab_file,
        "random_seed": seed,
        **dataclasses.asdict(params), "use_v2_feature_names": o.use_v2_feature_names,
        "gzip_compress": o.gzip_compress, "language_alpha": o.language_alpha,
        "language_pattern": o.language_pattern, "docs_per_bucket": o.docs_per_bucket,
        "max_document_sentences": o.max_document_sentences,
        **vocab.params(),
    }
