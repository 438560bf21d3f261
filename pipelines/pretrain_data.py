"""Masked-LM pretraining data: ``python -m pipelines.pretrain_data``.

Writes the records ``create_pretraining_data.py`` (BERT, TF Model Garden) writes, with its flags and
their meanings, but tokenised with a compiled tokenizer, in bounded memory and on any Beam runner::

    python -m pipelines.pretrain_data --input_patterns='gs://bucket/wiki/*.txt' \\
        --output_dir=gs://bucket/pretrain --vocab_file=gs://bucket/vocab.txt --do_lower_case=true \\
        --max_seq_length=128 --max_predictions_per_seq=20 --masked_lm_prob=0.15 --dupe_factor=5 \\
        --runner=DataflowRunner --project=... --region=... --setup_file=./setup.py

Read documents (BERT text, JSONL or TFRecord) -> tokenise -> language sampling and shuffle buckets
-> instances and masks per document and pass -> (optionally TLM examples from translation pairs) ->
seeded global shuffle into shards, with the spec and parameters beside them. The output layout is
described in ``transforms/pretraining/__init__.py``; the differences from the reference in
docs/pretraining.md.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

import specs
from specs.errors import ConfigError
from specs.vocabulary import Vocabulary
from transforms import pretraining as pt
from transforms.core import flags, runtime
from transforms.core.flags import flag_list
from transforms.core.records import language_pattern
from transforms.core.shards import WriteShards, shard_name
from transforms.core.storage import match_files, read_bytes
from transforms.pretraining.plan import FORMATS
from transforms.text.bert_tokenization import BertTokenizer

REFERENCE_BOOLEANS = ("do_lower_case", "do_whole_word_mask", "gzip_compress", "use_v2_feature_names")


class PretrainDataOptions(runtime.CommonOptions):
    """The reference script's flags (same names, same defaults) plus what a distributed job needs."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:

        def boolean(name: str, default: bool, help: str) -> None:
            # the reference's booleans also have absl's negated form, as the reference accepts it
            flags.add_boolean(parser, name, default, help,
                              negated_help=f"Same as --{name}=false." if name in REFERENCE_BOOLEANS else None)

        flags.add_inputs(parser, "Input files or globs (local or gs://), comma-separated or repeated.",
                         reference_names=True)
        parser.add_argument("--output_file", default=None,
                            help="The reference's output: a TFRecord file, or comma-separated files, all in one "
                                 "folder (one shard each); sidecars go beside them. Instead of --output_dir.")
        parser.add_argument("--input_format", choices=FORMATS, default="auto",
                            help="text (a sentence per line, blank line between documents), jsonl or tfrecord; "
                                 "auto: by file name (.jsonl/.json, .tfrecord), else text.")
        parser.add_argument("--tokenization", choices=("WordPiece", "SentencePiece"), default="WordPiece",
                            help="The reference's choice; only WordPiece (--vocab_file) is implemented.")
        parser.add_argument("--sp_model_file", default="",
                            help="The reference's SentencePiece model; not supported (a non-empty value stops).")
        parser.add_argument("--vocab_file", default=None, help="WordPiece vocab.txt (one token per line).")
        boolean("do_lower_case", True, "Lower-case and strip accents (uncased models).")
        parser.add_argument("--max_seq_length", type=int, default=128, help="Tokens per example, [CLS] and [SEP]s "
                                                                            "included.")
        parser.add_argument("--max_predictions_per_seq", type=int, default=20,
                            help="At most this many masked positions per example.")
        parser.add_argument("--masked_lm_prob", type=float, default=0.15, help="Share of tokens masked.")
        parser.add_argument("--random_seed", type=int, default=None,
                            help="Seed of every random decision (default: --seed, 12345).")
        parser.add_argument("--dupe_factor", type=int, default=10,
                            help="Passes over the data, each with different pairs and masks.")
        parser.add_argument("--short_seq_prob", type=float, default=0.1,
                            help="Probability of a shorter target length (to train on short inputs too).")
        boolean("do_whole_word_mask", False, "Mask whole words (all their ## pieces) at once.")
        parser.add_argument("--max_ngram_size", type=int, default=None,
                            help="Mask n-grams of up to this many whole words (needs --do_whole_word_mask).")
        boolean("use_v2_feature_names", False, "input_word_ids/input_type_ids instead of input_ids/segment_ids.")
        boolean("gzip_compress", False, "GZIP-compress the TFRecord shards.")
        boolean("dynamic_masking", False, "Write unmasked input ids and segments only; the trainer masks.")
        parser.add_argument("--tlm_input", action="append", default=[],
                            help="Translation-pair TFRecords (src_raw, tgt_raw, src_lang, tgt_lang) for TLM "
                                 "examples, comma-separated or repeated; from a finished translation_pairs run.")
        parser.add_argument("--language_alpha", type=float, default=1.0,
                            help="Exponential smoothing of language shares: 1 keeps the corpus mix, 0 makes "
                                 "languages equal (XLM-R: 0.3).")
        flags.add_language_pattern(parser, default=None, fallback="'und'")
        parser.add_argument("--text_field", default="text", help="JSONL field / TFRecord feature with the text.")
        parser.add_argument("--language_field", default="lang", help="JSONL field / TFRecord feature with the "
                                                                     "language code.")
        parser.add_argument("--docs_per_bucket", type=int, default=1000,
                            help="Documents per shuffle bucket: the pool random next segments come from.")
        parser.add_argument("--max_document_sentences", type=int, default=10_000,
                            help="Longer documents are cut into parts of this many sentences.")
        flags.add_sharding(parser, records_per_shard=100_000, shards_flag="--num_output_shards",
                           shards_help="0: one per --records_per_shard (with --output_file: one per file).")

    def run_folder(self) -> tuple[str, list[str] | None]:
        """``--output_dir``, or the folder of the ``--output_file`` files, of which the run owns only
        the files, their temporary shards and its sidecars (the folder may be shared, e.g. /tmp)."""
        if self.output_file and self.output_dir:
            raise ConfigError("give --output_dir or --output_file, not both")
        if not self.output_file:
            return super().run_folder()
        files = pt.output_files(self.output_file)
        return FileSystems.split(files[0])[0], [*(FileSystems.split(f)[1] for f in files),
                                                f"{FileSystems.split(files[0])[1]}.part-*", *pt.SIDECARS]


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> runtime.Built:
    o = options.view_as(PretrainDataOptions)
    out_dir = options.view_as(runtime.CommonOptions).output_dir
    pt.check_tokenization(o)
    seed = o.random_seed if o.random_seed is not None else options.view_as(runtime.CommonOptions).seed
    params = pt.instance_params(o)
    patterns, tlm_patterns = flag_list(o.input_patterns), flag_list(o.tlm_input)
    if not patterns and not tlm_patterns:
        raise ConfigError("--input_patterns (or --input_file) or --tlm_input is required")
    paths = match_files(patterns, "--input_patterns") if patterns else []
    runtime.check_inputs_complete(patterns, "--input_patterns", options, ours=False)
    tlm_paths = match_files(tlm_patterns, "--tlm_input") if tlm_patterns else []
    runtime.check_inputs_complete(tlm_patterns, "--tlm_input", options, ours=True)
    if not o.vocab_file:
        raise ConfigError("--vocab_file is required")
    pattern = language_pattern(o.language_pattern)
    vocab = Vocabulary.load(o.vocab_file, o.do_lower_case, reader=read_bytes)
    info = pt.VocabInfo.from_vocabulary(vocab)
    tokenizer = BertTokenizer(vocab)
    spec = specs.pretraining_spec(params.max_seq_length, params.max_predictions_per_seq,
                                  v2_names=o.use_v2_feature_names, dynamic_masking=params.dynamic_masking,
                                  tokenization=vocab.params())
    ledger = runtime.Ledger()
    examples: list[beam.PCollection] = []
    counts: list[beam.PCollection] = []
    doc_counts: Any = pipeline | "NoDocuments" >> beam.Create([])
    fmt = ""
    if paths:
        fmt = pt.input_format(paths, o.input_format)
        documents = ledger.add(pipeline | "ReadDocuments" >> pt.ReadDocuments(
            paths, fmt, max_sentences=o.max_document_sentences, language_pattern=pattern,
            text_field=o.text_field, language_field=o.language_field))
        tokenized = ledger.add(documents | "TokenizeDocuments" >> pt.TokenizeDocuments(tokenizer))
        mlm, doc_counts, sampled, per_language = tokenized | "CreateExamples" >> pt.CreatePretrainingExamples(
            seed, params, info, spec, o.language_alpha, o.docs_per_bucket, temp_dir=out_dir)
        ledger.add(sampled)
        examples.append(mlm)
        counts.append(per_language)
    if tlm_paths:
        tlm, tlm_counts, stages = pipeline | "CreateTlmExamples" >> pt.CreateTlmExamples(
            tlm_paths, tokenizer, seed, params, info, spec)
        for stage in stages:
            ledger.add(stage)
        examples.append(tlm)
        counts.append(tlm_counts | "SumTlm" >> beam.CombinePerKey(sum))
    suffix = ".tfrecord.gz" if o.gzip_compress else ".tfrecord"
    prefix = FileSystems.join(out_dir, pt.SHARD_PREFIX)
    num_shards, final_names = o.num_output_shards, {}
    if o.output_file:  # the reference's names: one shard per file, moved there after the run
        files = pt.output_files(o.output_file)
        if num_shards not in (0, len(files)):
            raise ConfigError(f"--num_output_shards={num_shards} but --output_file names {len(files)} files")
        num_shards, suffix = len(files), ".tfrecord"
        prefix = f"{files[0]}.part"
        final_names = {shard_name(prefix, i, len(files), suffix): f for i, f in enumerate(files)}
    written = (
        tuple(examples) | "AllExamples" >> beam.Flatten()
        | "WriteExamples" >> WriteShards(prefix, suffix, "tfrecord", "gzip" if o.gzip_compress else "uncompressed",
                                         num_shards, o.records_per_shard, batched=True)
    )
    job_params = pt.recorded_params(o, patterns, fmt, tlm_patterns, seed, params, vocab)
    all_counts = tuple(counts) | "AllCounts" >> beam.Flatten(pipeline=pipeline)
    _ = written | "WriteSpecAndParams" >> beam.ParDo(
        pt.WriteSidecars(out_dir, spec, job_params), beam.pvalue.AsDict(doc_counts), beam.pvalue.AsDict(all_counts))
    outputs = {} if final_names else {"examples": f"{prefix}-*{suffix}"}
    shards = list(final_names.values()) or [f"{prefix}-*{suffix}"]  # checked after the run's renames
    return ledger.built({**outputs, "spec": FileSystems.join(out_dir, specs.SCHEMA_FILE)}, final_names,
                        data_files={"the examples": shards})


if __name__ == "__main__":
    sys.exit(runtime.main("pretrain_data", build))
