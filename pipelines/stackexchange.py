"""StackExchange data dumps -> sentence pairs for sentence-embedding training.

    python -m pipelines.stackexchange --input=dumps/askubuntu.com --input=dumps/superuser.com \\
        --output_dir=out/se [--pair_types=title_body,duplicate_title_title] [beam options]

Reads each site's Posts.xml and PostLinks.xml (plain, .gz, .bz2, or the dump's .7z archives, which are
first transcoded to line-aligned shards), parses every row line on its own, groups answers with their
question, joins duplicate links with both questions, and writes each pair type to its own folder as
jsonl.gz (sentence-transformers format) and TFRecords (``src_raw``/``tgt_raw``, the dual encoder's
format). Malformed rows go to ``OUT/dead_letter/`` with file, line and reason; ``OUT/summary.json``
accounts for every line of every input file.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from transforms import stackexchange as se
from transforms.accounting import DEAD_LETTER, TALLY, apply_accounted
from transforms.errors import ConfigError
from transforms.files import ReadLineBatches
from transforms.runtime import Built, CommonOptions, main
from transforms.sevenzip import TranscodeArchives


class StackExchangeOptions(CommonOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        d = se.PairOptions()
        parser.add_argument("--input", action="append", default=[],
                            help="Site folder, glob of site folders, dump file or .7z archive (repeatable, or "
                                 "comma-separated); local or gs://.")
        parser.add_argument("--pair_types", default="all",
                            help=f"all, or a comma-separated subset of {', '.join(se.PAIR_TYPES)}.")
        parser.add_argument("--output_formats", default="jsonl,tfrecord", help="jsonl, tfrecord or both.")
        parser.add_argument("--with_metadata", action="store_true",
                            help="jsonl lines are objects with texts, site, ids, scores, license, url, authors.")
        parser.add_argument("--include_meta", action="store_true", help="Also read *.meta.* sites.")
        parser.add_argument("--drop_code_blocks", action="store_true", help="Drop <pre> blocks from bodies.")
        parser.add_argument("--keep_answer_bot", action="store_true",
                            help="Keep posts by the Answer Bot account (UserId -2).")
        parser.add_argument("--watermark_post_ids", default=",".join(map(str, sorted(se.WATERMARK_POST_IDS))),
                            help="Ids of the dump's fabricated watermark posts (by the Community user).")
        for name, meaning in (
                ("min_title_chars", "Shortest title kept (characters)."),
                ("max_title_chars", "Longest title kept (characters); 0: no bound."),
                ("min_body_chars", "Shortest question body kept (characters, after HTML to text)."),
                ("max_body_chars", "Longest question body kept; 0: no bound."),
                ("min_answer_chars", "Shortest answer kept (characters, after HTML to text)."),
                ("max_answer_chars", "Longest answer kept; 0: no bound."),
                ("min_question_score", "Questions scored lower are dropped."),
                ("min_answer_score", "Answers scored lower are not used as positives."),
                ("negative_score_gap", "A hard negative answer scores at least this much below the positive.")):
            parser.add_argument(f"--{name}", type=int, default=getattr(d, name), help=meaning)
        parser.add_argument("--best_answer", choices=("accepted", "top_scored"), default=d.best_answer,
                            help="accepted: the accepted answer if it passes the filters, else the top-scored.")
        parser.add_argument("--title_body_separator", default=d.title_body_separator,
                            help="Joins title and body in title_body pairs.")
        parser.add_argument("--dedup", choices=("none", "exact", "near"), default="none",
                            help="Remove duplicate pairs per pair type: exact (normalised text) or near (MinHash).")
        parser.add_argument("--dedup_key", choices=("pair", "either"), default="pair",
                            help="pair: all texts must match; either: pairs sharing any text are duplicates.")
        parser.add_argument("--exclude", action="append", default=[],
                            help="Evaluation files (text lines or jsonl); pairs overlapping them are dropped.")
        parser.add_argument("--exclude_ngram", type=int, default=13,
                            help="Word n-gram length that counts as evaluation overlap.")
        parser.add_argument("--num_shards", type=int, default=0,
                            help="Shards per output folder; 0 sizes them by --records_per_shard.")
        parser.add_argument("--records_per_shard", type=int, default=200_000,
                            help="Records per shard when --num_shards is 0.")
        parser.add_argument("--gzip_level", type=int, choices=range(10), default=1, metavar="0..9",
                            help="Deflate level of the .gz outputs. 1 (the default) deflates about 4x faster "
                                 "than zlib's 6 for about 20%% more bytes; readers are not affected.")
        parser.add_argument("--transcode_dir", default=None,
                            help="Where .7z archives are transcoded to plain shards (default: "
                                 "--temp_location/polyembed-7z, else OUTPUT_DIR/_transcoded).")
        parser.add_argument("--transcode_shard_mb", type=int, default=256,
                            help="Size of the plain shards a .7z archive is transcoded to (MiB).")


def _split_list(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> Built:
    o = options.view_as(StackExchangeOptions)
    common = options.view_as(CommonOptions)
    inputs = _split_list(o.input)
    if not inputs:
        raise ConfigError("--input is required (a site folder, dump file, glob or .7z archive)")
    pair_types = list(se.PAIR_TYPES) if o.pair_types == "all" else _split_list([o.pair_types])
    unknown = sorted(set(pair_types) - set(se.PAIR_TYPES))
    if unknown or not pair_types:
        raise ConfigError(f"--pair_types: unknown {unknown or 'empty list'}; choose from {', '.join(se.PAIR_TYPES)}")
    formats = _split_list([o.output_formats])
    if not formats or set(formats) - {"jsonl", "tfrecord"}:
        raise ConfigError(f"--output_formats: {o.output_formats!r}; use jsonl, tfrecord or both")
    try:
        watermarks = frozenset(int(x) for x in _split_list([o.watermark_post_ids]))
    except ValueError:
        raise ConfigError(f"--watermark_post_ids: {o.watermark_post_ids!r} is not a list of integers") from None
    pair_options = se.PairOptions(
        **{f: getattr(o, f) for f in se.PairOptions.__dataclass_fields__})
    dumps = se.discover_dump_files(inputs, o.include_meta)
    if not dumps.files and not dumps.archives:
        raise ConfigError(f"--input: only meta sites found ({', '.join(dumps.skipped_meta_sites)}); "
                          "add --include_meta to read them")
    for site in dumps.skipped_meta_sites:
        print(f"stackexchange: skipping meta site {site} (use --include_meta to read it)")

    tallies, dead = [], []
    paths = pipeline | "DumpFiles" >> beam.Create(dumps.files)
    if dumps.archives:
        temp = options.view_as(GoogleCloudOptions).temp_location
        transcode_dir = o.transcode_dir or (FileSystems.join(temp, "polyembed-7z") if temp
                                            else FileSystems.join(common.output_dir, "_transcoded"))
        shards = apply_accounted(
            pipeline | "Archives" >> beam.Create(dumps.archives) | "Reshuffle" >> beam.Reshuffle(),
            "TranscodeArchives", TranscodeArchives(transcode_dir, o.transcode_shard_mb << 20))
        tallies.append(shards.tally)
        dead.append(shards.dead_letter)
        paths = (paths, shards.out) | "AllDumpFiles" >> beam.Flatten()

    lines = paths | "ReadLines" >> ReadLineBatches()
    tallies.append(lines.tally)
    dead.append(lines.dead_letter)
    rows = (
        lines.out
        | "ParseRows" >> beam.ParDo(
            se.ParseDumpRows(not o.keep_answer_bot, watermarks, not o.drop_code_blocks)
        ).with_outputs(se.POSTS, se.POSTLINKS, TALLY, DEAD_LETTER)
    )
    tallies.append(rows[TALLY])
    dead.append(rows[DEAD_LETTER])

    question_pairs = (rows[se.POSTS], rows[se.POSTLINKS]) | "QuestionPairs" >> se.QuestionPairs(
        [t for t in pair_types if t in se.THREAD_PAIR_TYPES],
        [t for t in pair_types if t in se.DUPLICATE_PAIR_TYPES], pair_options)
    tallies.append(question_pairs.tally)
    dead.append(question_pairs.dead_letter)

    cleaning = se.CleanPairs(pair_types, o.dedup, o.dedup_key, _split_list(o.exclude), o.exclude_ngram)
    cleaned = question_pairs.out | "CleanPairs" >> cleaning
    tallies.append(cleaned.tally)
    dead.append(cleaned.dead_letter)
    writer = se.WritePairs(common.output_dir, pair_types, formats, o.with_metadata, common.seed,
                           o.num_shards, o.records_per_shard, o.gzip_level)
    _ = cleaned.out | "WritePairs" >> writer
    return Built(tallies, dead, outputs={f"pairs {t}": folder for t, folder in writer.folders().items()})


if __name__ == "__main__":
    sys.exit(main("stackexchange", build))
