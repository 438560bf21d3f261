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
from transforms.core import flags
from transforms.core.flags import flag_list
from transforms.core.runtime import Built, CommonOptions, Ledger, main


class StackExchangeOptions(CommonOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        d = se.PairOptions()
        flags.add_inputs(parser, "Site folder, glob of site folders, dump file or .7z archive (repeatable, or "
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
        flags.add_decontamination(
            parser, exclude_help="Evaluation files (text lines or jsonl); pairs overlapping them are dropped.",
            ngram=13, ngram_help="Word n-gram length that counts as evaluation overlap.")
        flags.add_sharding(parser, records_per_shard=200_000,
                           shards_help="Shards per output folder; 0 sizes them by --records_per_shard.")
        parser.add_argument("--gzip_level", type=int, choices=range(10), default=1, metavar="0..9",
                            help="Deflate level of the .gz outputs. 1 (the default) deflates about 4x faster "
                                 "than zlib's 6 for about 20%% more bytes; readers are not affected.")
        parser.add_argument("--transcode_dir", default=None,
                            help="Where .7z archives are transcoded to plain shards (default: "
                                 "--temp_location/polyembed-7z, else OUTPUT_DIR/_transcoded).")
        parser.add_argument("--transcode_shard_mb", type=int, default=256,
                            help="Size of the plain shards a .7z archive is transcoded to (MiB).")


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> Built:
    o = options.view_as(StackExchangeOptions)
    common = options.view_as(CommonOptions)
    job = se.job_settings(flag_list(o.input), o.pair_types, o.output_formats, o.watermark_post_ids,
                          o.include_meta, o)
    for site in job.dumps.skipped_meta_sites:
        print(f"stackexchange: skipping meta site {site} (use --include_meta to read it)")
    transcode_dir = se.transcode_folder(o.transcode_dir, options.view_as(GoogleCloudOptions).temp_location,
                                        common.output_dir)

    ledger = Ledger()
    rows = ledger.add(pipeline | "ReadDumps" >> se.ReadDumps(
        job.dumps, transcode_dir, o.transcode_shard_mb << 20, not o.keep_answer_bot, job.watermark_ids,
        not o.drop_code_blocks))
    pairs = ledger.add((rows.posts, rows.links) | "QuestionPairs" >> se.QuestionPairs(
        [t for t in job.pair_types if t in se.THREAD_PAIR_TYPES],
        [t for t in job.pair_types if t in se.DUPLICATE_PAIR_TYPES], job.pair_options))
    kept = ledger.add(pairs | "DedupAndDecontaminate" >> se.DedupAndDecontaminate(
        o.dedup, o.dedup_key, flag_list(o.exclude), o.exclude_ngram))
    writer = se.WritePostPairs(common.output_dir, job.pair_types, job.formats, o.with_metadata, common.seed,
                               o.num_shards, o.records_per_shard, o.gzip_level)
    _ = kept | "WritePostPairs" >> writer
    shards = [FileSystems.join(folder, "*", "*.gz") for folder in writer.folders().values()]
    return ledger.built(outputs={f"pairs {t}": folder for t, folder in writer.folders().items()},
                        data_files={"the pairs": shards})


if __name__ == "__main__":
    sys.exit(main("stackexchange", build))
