"""Translation pairs -> LaBSE dual-encoder TFRecords.

    python -m pipelines.translation_pairs --input='corpora/*.tsv.gz' --input='opus/*.de-en.*' \\
        --output_dir=out/pairs [--exclude='flores200/*.devtest'] [--sampling_alpha=0.3] [beam options]

Reads TSV, aligned Moses/OPUS file pairs and JSONL (see ``transforms.translation.records``), normalises and
cleans every pair (one flag and one counter per rule), removes exact duplicates (direction-
insensitive; the kept copy is chosen by content, not arrival) and pairs overlapping the evaluation
sets given with ``--exclude``, splits by a hash of the normalised pair, optionally rebalances the
training language pairs (p ~ n^alpha), and writes globally shuffled GZIP TFRecords of
``specs.TRANSLATION_PAIRS`` per split with the spec beside them, ``stats.json``/``stats.png``, the
dead letters and ``summary.json``. With ``--score_with=EXPORT`` (a ``trainer.export_tfhub
--export_type=text_embedder`` folder) every pair gets the cosine and ratio margin of its sides'
embeddings (``specs.SCORED_TRANSLATION_PAIRS``), and ``--min_margin`` filters on the margin. With
``--teacher=EXPORT`` every pair gets that encoder's embedding of its ``--teacher_language`` side
(``specs.distillation_pairs_spec``), the records ``labse/distill`` trains on.
With ``--vocab_file --materialize_tokens`` a tensorflow-transform job also writes the tokenised records
and the ``transform_fn`` the trainer can embed.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from specs.errors import ConfigError
from specs.vocabulary import Vocabulary
from transforms import dedup, encoders
from transforms import translation as tr
from transforms.core import flags, runtime
from transforms.core.flags import flag_list
from transforms.core.runtime import Built, CommonOptions, Ledger, main
from transforms.core.storage import match_files, read_bytes
from transforms.text import writing_systems as scripts

# Decontaminate's longest n-gram. With it and no sentence matching, a pair is excluded when a side equals
# an eval text after normalisation, or shares a 64-unit run with one, which in sentence-sized texts
# amounts to the same sentence.
EXACT_MATCH_NGRAM = 64


class TranslationPairsOptions(CommonOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        c = tr.CleanConfig()
        flags.add_inputs(parser, "Input files or globs (repeatable, or comma-separated); local or gs://, .gz allowed.")
        parser.add_argument("--input_format", default="auto", choices=("auto", *tr.FORMATS),
                            help="auto: *.tsv, *.jsonl, NAME.L1-L2.L1 + NAME.L1-L2.L2 aligned files.")
        parser.add_argument("--src_lang", default="", help="Source language of TSV/JSONL rows that name none.")
        parser.add_argument("--tgt_lang", default="", help="Target language of TSV/JSONL rows that name none.")
        parser.add_argument("--jsonl_fields", default="src=src,tgt=tgt,src_lang=src_lang,tgt_lang=tgt_lang",
                            help="Dotted JSON paths, e.g. src=translation.de,tgt=translation.en.")
        parser.add_argument("--max_chars", type=int, default=c.max_chars, help="Per side; 0 disables.")
        parser.add_argument("--max_tokens", type=int, default=c.max_tokens,
                            help="Per side, whitespace/character tokens; 0 disables.")
        parser.add_argument("--min_letter_fraction", type=float, default=c.min_letter_fraction,
                            help="Drop a pair if a side has fewer letters (outside URLs); 0 disables.")
        parser.add_argument("--keep_identical", action="store_true", help="Keep pairs whose sides are equal.")
        parser.add_argument("--max_length_ratio", type=float, default=c.max_length_ratio,
                            help="Longer/shorter side in tokens; 0 disables.")
        parser.add_argument("--length_ratio_min_tokens", type=int, default=c.length_ratio_min_tokens,
                            help="Judge the ratio only when the longer side has this many tokens.")
        parser.add_argument("--min_script_fraction", type=float, default=c.min_script_fraction,
                            help="Share of a side's letters in its language's scripts; 0 disables.")
        parser.add_argument("--script_table", default=None,
                            help='JSON {"lang": ["Scrp", ...]} extending the expected-script table.')
        parser.add_argument("--no_dedup", action="store_true", help="Keep exact duplicate pairs.")
        flags.add_decontamination(
            parser, exclude_help="Evaluation files (one sentence per line, or .jsonl); pairs with a side matching "
                                 "one are removed (repeatable, or comma-separated).",
            ngram=0, ngram_help="0: a side must match an eval sentence as a whole (after normalisation); "
                                "N: also drop pairs sharing an N-unit n-gram or a sentence with the eval sets.")
        parser.add_argument("--score_with", default=None,
                            help="A text_embedder export (python -m trainer.export_tfhub --export_type=text_embedder): "
                                 "add each pair's cosine (score) and ratio margin (margin) to the records.")
        parser.add_argument("--min_margin", type=float, default=None,
                            help="With --score_with, drop pairs whose margin is below this, counted as low_margin; "
                                 "where to set it depends on the encoder (bench/score_pairs.py measures it).")
        parser.add_argument("--margin_k", type=int, default=4,
                            help="Nearest neighbours per side in the margin's denominator.")
        parser.add_argument("--margin_bucket_size", type=int, default=1000,
                            help="Pairs per margin bucket (per language pair, by hash): the neighbours' candidates "
                                 "and what one worker holds in memory.")
        parser.add_argument("--teacher", default=None,
                            help="A text_embedder export: add its embedding of each pair's --teacher_language side "
                                 "(teacher_embedding, for labse/distill); pairs with no such side are filtered "
                                 "(no_teacher_language).")
        parser.add_argument("--teacher_language", default="eng", help="The language the --teacher embeds.")
        parser.add_argument("--split", default="train=0.98,validation=0.01,test=0.01",
                            help="Split fractions by hash of the normalised pair.")
        parser.add_argument("--split_seed", type=int, default=0,
                            help="Seed of the split hash (independent of --seed, so splits stay put).")
        parser.add_argument("--sampling_alpha", type=float, default=None,
                            help="Rebalance training language pairs with p ~ n^alpha (e.g. 0.3); off by default.")
        parser.add_argument("--sampling_cap", type=int, default=0,
                            help="At most this many training pairs per language pair; 0: no cap.")
        parser.add_argument("--max_upsample", type=float, default=1.0,
                            help="With --sampling_alpha, repeat a small language pair's pairs up to this factor.")
        flags.add_sharding(parser, records_per_shard=200_000,
                           shards_help="Shards per split; 0 sizes them by --records_per_shard.")
        parser.add_argument("--compression", default="gzip", choices=tuple(tr.TFRECORD_COMPRESSIONS),
                            help="TFRecord shards: gzip (.tfrecord.gz; Model Garden file_type tfrecord_compressed) "
                                 "or none (.tfrecord; file_type tfrecord).")
        parser.add_argument("--write_jsonl", action="store_true", help="Also write a JSONL.gz copy per split.")
        parser.add_argument("--no_stats_chart", action="store_true", help="Skip stats.png.")
        parser.add_argument("--vocab_file", default=None, help="WordPiece vocab.txt for --materialize_tokens.")
        parser.add_argument("--materialize_tokens", action="store_true",
                            help="Also write tokenised records and the tensorflow-transform transform_fn.")
        parser.add_argument("--seq_length", type=int, default=64, help="Tokens per side with --materialize_tokens.")
        parser.add_argument("--lower_case", action="store_true", help="Uncased vocabulary (LaBSE is cased).")


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> Built:
    o = options.view_as(TranslationPairsOptions)
    common = options.view_as(CommonOptions)
    patterns = flag_list(o.input)
    if not patterns:
        raise ConfigError("--input is required (TSV, JSONL or aligned NAME.L1-L2.L1 files)")
    runtime.check_inputs_complete(patterns, "--input", options, ours=False)
    plan = tr.plan_inputs(match_files(patterns), o.input_format, o.src_lang, o.tgt_lang)
    fields = tr.JsonFields.parse(o.jsonl_fields)
    config = tr.CleanConfig(o.max_chars, o.max_tokens, o.min_letter_fraction, not o.keep_identical,
                            o.max_length_ratio, o.length_ratio_min_tokens, o.min_script_fraction)
    table = scripts.LanguageScripts.from_json_file(o.script_table, reader=read_bytes)
    fractions = tr.parse_split_fractions(o.split)
    if o.materialize_tokens:
        if not o.vocab_file:
            raise ConfigError("--materialize_tokens needs --vocab_file")
        match_files([o.vocab_file], "--vocab_file")
        vocab = Vocabulary.load(o.vocab_file, o.lower_case, reader=read_bytes)
        if o.seq_length < 3:
            raise ConfigError(f"--seq_length: {o.seq_length} leaves no room for [CLS] text [SEP]")
    if o.num_shards < 0 or o.records_per_shard < 1:
        raise ConfigError("--num_shards must be >= 0 and --records_per_shard >= 1")
    scoring = None
    if o.score_with:
        encoders.check_text_embedder(o.score_with)
        scoring = encoders.ScorePairs(o.score_with, o.margin_k, o.margin_bucket_size, o.min_margin)
    elif o.min_margin is not None:
        raise ConfigError("--min_margin needs --score_with (a text_embedder export to compute margins with)")
    teacher, teacher_dim = None, 0
    if o.teacher:
        teacher_dim = encoders.check_text_embedder(o.teacher, "--teacher")
        teacher = encoders.TeacherEmbeddings(o.teacher, o.teacher_language, o.margin_bucket_size)
    spec = tr.pairs_spec(scoring is not None, teacher_dim, o.teacher or "", o.teacher_language)
    out_dir = common.output_dir

    ledger = Ledger()
    pairs = ledger.add(pipeline | "ReadPairs" >> tr.ReadTranslationPairs(plan, fields))
    pairs = ledger.add(pairs | "CleanPairs" >> tr.CleanTranslationPairs(config, table))
    if not o.no_dedup:
        pairs = ledger.add(pairs | "ExactDedup" >> dedup.ExactDedup(tr.texts_in_language_order, mode="pair",
                                                                     scope_fn=tr.lang_pair_of)).out
    exclude = flag_list(o.exclude)
    if exclude:
        exact = o.exclude_ngram == 0
        pairs = ledger.add(pairs | "ExcludeEvalSets" >> dedup.Decontaminate(
            tr.texts_in_language_order, exclude, ngram=EXACT_MATCH_NGRAM if exact else o.exclude_ngram,
            min_sentence_chars=sys.maxsize if exact else 20, scope_fn=tr.lang_pair_of, stage="exclude_eval"))
    if scoring is not None:
        # After dedup and the eval exclusion, so no duplicate or excluded pair costs a model call; before
        # the split, so the margin filter's counts are one stage over the whole corpus and a pair's
        # neighbours are the same whatever split it lands in.
        pairs = ledger.add(pairs | "ScorePairs" >> scoring)
    if teacher is not None:  # after the margin filter: no teacher call for a pair it drops
        pairs = ledger.add(pairs | "TeacherEmbeddings" >> teacher)
    splits = pairs | "Split" >> tr.SplitPairs(fractions, o.split_seed)
    if "train" in splits:
        balanced, targets = splits["train"] | "Balance" >> tr.BalanceLanguagePairs(
            o.sampling_alpha, o.sampling_cap, o.max_upsample, common.seed)
    else:
        balanced, targets = None, pipeline | "NoTargets" >> beam.Create([{}])
    written: dict[str, beam.PCollection] = {}
    outputs = {}
    for name, split in splits.items():
        if balanced is not None and name == "train":
            written[name] = ledger.add(balanced)
        else:
            written[name] = split | f"Once{name.title()}" >> beam.Map(lambda p: (0, p))
        directory = FileSystems.join(out_dir, name)
        _ = written[name] | f"Write{name.title()}" >> tr.WriteTranslationPairs(
            directory, common.seed, o.num_shards, o.records_per_shard, o.write_jsonl, compression=o.compression,
            spec=spec)
        outputs[f"{name} pairs"] = directory
    tallies = tuple(ledger.tallies) | "PairTallies" >> beam.Flatten()
    _ = (tallies, written, targets) | "Statistics" >> tr.WriteStatistics(out_dir, chart=not o.no_stats_chart)
    outputs["statistics"] = FileSystems.join(out_dir, tr.STATS_JSON)
    if o.materialize_tokens:
        from trainer.text.tokenization import BertTokenization
        from transforms.translation import tft

        tokens_dir = FileSystems.join(out_dir, "tokens")
        _ = written | "MaterializeTokens" >> tft.MaterializeTokens(
            tokens_dir, vocab, o.seq_length, common.seed, BertTokenization, o.num_shards, o.records_per_shard,
            temp_dir=FileSystems.join(out_dir, "tmp", "tft"))
        outputs["tokenised pairs and transform_fn"] = tokens_dir
    # pairs read but none written (every pair cleaned, deduplicated or under --min_margin) is no finished run
    shards = [FileSystems.join(out_dir, name, "*.tfrecord*") for name in splits]
    return ledger.built(outputs, data_files={"the pairs": shards})


if __name__ == "__main__":
    sys.exit(main("translation_pairs", build))
