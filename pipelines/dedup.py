"""Deduplication job: exact and near-duplicate removal and evaluation-set decontamination.

    python -m pipelines.dedup --input=data/*.jsonl.gz --output_dir=out/dedup --text_fields=src,tgt \\
        [--key=pair|one|either] [--exclude=eval/*.txt] [--with_clusters] [beam options]

Reads JSONL (splittably; dotted field names such as ``translation.de``) or TFRecords of tf.Examples
(text fields are bytes features), then, in this order and each optional:

1. ``decontaminate`` (with ``--exclude``): drops records sharing a normalised sentence, a normalised
   text or a word ``--exclude_ngram``-gram with the evaluation files;
2. ``exact_dedup``: one record per group of equal normalised texts;
3. ``near_dedup``: one record per cluster of MinHash-LSH near-duplicates.

Outputs under ``--output_dir``: ``deduplicated/`` (the kept records, byte for byte, in the input's
format, with the input's spec when it had one); with ``--with_clusters``, ``clusters/`` (every record
read, with ``cluster_id``, ``cluster_size`` and ``is_duplicate`` added); ``dedup_stats.json``
(cluster-size histograms, candidate and verified pair counts, the connected-components convergence
check); ``summary.json`` and ``dead_letter/`` as for every job.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from transforms import dedup
from transforms.core import flags, runtime
from transforms.core.flags import flag_list
from transforms.core.runtime import Built, CommonOptions, Ledger, main
from transforms.core.storage import match_files


class DedupOptions(CommonOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        flags.add_inputs(parser, "JSONL(.gz) or TFRecord(.gz) files or globs (repeatable, or comma-separated).")
        parser.add_argument("--format", default="auto", help="auto (from the file names), jsonl or tfrecord.")
        parser.add_argument("--text_fields", default="",
                            help="Comma-separated fields holding the texts compared (JSON: dotted paths).")
        parser.add_argument("--key", default="",
                            help="What makes records duplicates: pair (all text fields together), one (a single "
                                 "field), either (sharing any field's text). Default: one for one field, else pair.")
        parser.add_argument("--rank_field", default="",
                            help="Numeric field: the record with the greatest value is kept in each group "
                                 "(default: the longest, then the smallest hash).")
        parser.add_argument("--no_exact", action="store_true", help="Skip exact deduplication.")
        parser.add_argument("--no_near", action="store_true", help="Skip near-duplicate deduplication.")
        parser.add_argument("--case_fold", action="store_true", help="Exact dedup ignores case.")
        parser.add_argument("--num_perm", type=int, default=128, help="MinHash permutations.")
        parser.add_argument("--ngram", type=int, default=5, help="Shingle size in words (characters for CJK, Thai).")
        parser.add_argument("--bands", type=int, default=0, help="LSH bands (0: chosen for --threshold).")
        parser.add_argument("--rows", type=int, default=0, help="Rows per LSH band (0: chosen for --threshold).")
        parser.add_argument("--threshold", type=float, default=0.8,
                            help="Jaccard threshold: sets bands x rows, and candidates are verified by whether "
                                 "their signatures agree on this fraction (0: no verification, bands for 0.8).")
        parser.add_argument("--verify", default="signature",
                            help="Verify candidates by the signature estimate (signature) or the exact Jaccard of "
                                 "the shingle sets (shingles: exact, ships each text's shingles through the join).")
        parser.add_argument("--minhash_seed", type=int, default=1, help="Seed of the MinHash permutations.")
        parser.add_argument("--cc_rounds", type=int, default=8, help="Rounds of connected components.")
        parser.add_argument("--with_clusters", action="store_true",
                            help="Also write clusters/: every record with cluster_id, cluster_size, is_duplicate.")
        flags.add_decontamination(
            parser, exclude_help="Evaluation files (text lines, or .jsonl: every string) to decontaminate against.",
            ngram=13, ngram_help="Word n-gram size for --exclude.")
        parser.add_argument("--min_sentence_chars", type=int, default=20,
                            help="Shorter sentences only match --exclude texts as whole texts.")
        flags.add_sharding(parser, records_per_shard=200_000,
                           shards_help="Output shards; 0 sizes them by record count.")


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> Built:
    o = options.view_as(DedupOptions)
    out_dir = options.view_as(CommonOptions).output_dir
    paths = match_files(flag_list(o.input))
    runtime.check_inputs_complete(flag_list(o.input), "--input", options, ours=False)
    job = dedup.job_settings(paths, o.format, flag_list([o.text_fields]), o.key, o.rank_field,
                             flag_list(o.exclude), o.no_exact, o.no_near, o.num_shards, o.records_per_shard)
    rank_fn = dedup.job_rank if job.rank_field else None

    ledger = Ledger()
    records = ledger.add(pipeline | "Read" >> dedup.ReadDedupInput(job.paths, job.fmt, job.text_fields,
                                                                  job.rank_field))
    if job.exclude:
        records = ledger.add(records | "Decontaminate" >> dedup.Decontaminate(
            dedup.job_texts, job.exclude, ngram=o.exclude_ngram, min_sentence_chars=o.min_sentence_chars,
            scope_fn=dedup.job_source))
    deduped = {}
    if not o.no_exact:
        deduped["exact_dedup"] = ledger.add(records | "ExactDedup" >> dedup.ExactDedup(
            dedup.job_texts, mode=job.mode, rank_fn=rank_fn, scope_fn=dedup.job_source, case_fold=o.case_fold,
            with_clusters=o.with_clusters, cc_rounds=o.cc_rounds))
        records = deduped["exact_dedup"].out
    if not o.no_near:
        deduped["near_dedup"] = ledger.add(records | "NearDedup" >> dedup.NearDedup(
            dedup.job_texts, mode=job.mode, rank_fn=rank_fn, scope_fn=dedup.job_source, num_perm=o.num_perm,
            ngram=o.ngram, bands=o.bands or None, rows=o.rows or None, threshold=o.threshold or None,
            verify=o.verify, seed=o.minhash_seed, cc_rounds=o.cc_rounds, with_clusters=o.with_clusters))
        records = deduped["near_dedup"].out

    kept_dir = FileSystems.join(out_dir, "deduplicated")
    _ = records | "WriteKept" >> dedup.WriteJobRecords(kept_dir, job, o.num_shards, o.records_per_shard)
    outputs = {"deduplicated records": kept_dir}
    kept_shards = [FileSystems.join(kept_dir, "*.gz")]
    if deduped:
        stats_path = FileSystems.join(out_dir, dedup.STATS_FILE)
        _ = {name: result.stats for name, result in deduped.items()} | "WriteStats" >> dedup.WriteStats(stats_path)
        outputs["cluster statistics"] = stats_path
    if o.with_clusters and deduped:
        clusters = [result.clusters for result in deduped.values()]
        if len(clusters) == 2:
            clusters = [{"first": clusters[0], "second": clusters[1]} | "ChainClusters" >> dedup.ChainClusters()]
        clusters_dir = FileSystems.join(out_dir, "clusters")
        _ = clusters[0] | "WriteClusters" >> dedup.WriteJobRecords(
            clusters_dir, job, o.num_shards, o.records_per_shard, clustered=True)
        outputs["records with clusters"] = clusters_dir

    return ledger.built(outputs, data_files={"the kept records": kept_shards})


if __name__ == "__main__":
    sys.exit(main("dedup", build))
