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

import json
import sys
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

import specs
from specs import dedup as dedup_specs
from transforms import dedup, runtime
from transforms.errors import ConfigError
from transforms.files import WriteShards, WriteSpec, match_files
from transforms.runtime import Built, CommonOptions, main

STATS_FILE = "dedup_stats.json"


class DedupOptions(CommonOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--input", action="append", default=[],
                            help="JSONL(.gz) or TFRecord(.gz) files or globs (repeatable, or comma-separated).")
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
        parser.add_argument("--exclude", action="append", default=[],
                            help="Evaluation files (text lines, or .jsonl: every string) to decontaminate against.")
        parser.add_argument("--exclude_ngram", type=int, default=13, help="Word n-gram size for --exclude.")
        parser.add_argument("--min_sentence_chars", type=int, default=20,
                            help="Shorter sentences only match --exclude texts as whole texts.")
        parser.add_argument("--num_shards", type=int, default=0, help="Output shards; 0 sizes them by record count.")
        parser.add_argument("--records_per_shard", type=int, default=200_000,
                            help="Records per shard when --num_shards is 0.")


def _split_list(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _texts(record: dedup.JobRecord) -> tuple[str, ...]:
    return record.texts


def _rank(record: dedup.JobRecord) -> float:
    return record.rank


def _source(record: dedup.JobRecord) -> str:
    return record.source


def _input_spec(paths: list[str], text_fields: list[str]) -> specs.FeatureSpec:
    """The spec found next to the TFRecord inputs (all alike), or one naming only the text fields."""
    found: dict[str, specs.FeatureSpec] = {}
    for directory in sorted({p.rsplit("/", 1)[0] for p in paths}):
        schema = FileSystems.join(directory, specs.SCHEMA_FILE)
        if FileSystems.exists(schema):
            side = FileSystems.join(directory, specs.SPEC_FILE)
            with FileSystems.open(schema) as f:
                text = f.read().decode("utf-8")
            spec_json = None
            if FileSystems.exists(side):
                with FileSystems.open(side) as f:
                    spec_json = f.read().decode("utf-8")
            found[directory] = specs.read_spec_text(text, spec_json)
    if not found:
        return dedup_specs.text_fields_spec(text_fields)
    (first_dir, spec), *others = sorted(found.items())
    for directory, other in others:
        if other.features != spec.features:
            raise ConfigError(f"--input: the spec in {directory} differs from the one in {first_dir}")
    spec.require(dedup_specs.text_fields_spec(text_fields), where=first_dir)
    return spec


class _WriteStats(beam.DoFn):
    def __init__(self, path: str) -> None:
        self._path = path

    def process(self, stats: list[tuple[str, dict[str, Any]]]) -> None:
        with FileSystems.create(self._path) as f:
            f.write((json.dumps(dict(sorted(stats)), indent=2, sort_keys=True) + "\n").encode("utf-8"))


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> Built:
    o = options.view_as(DedupOptions)
    out_dir = options.view_as(CommonOptions).output_dir
    paths = match_files(_split_list(o.input))
    runtime.check_inputs_complete(_split_list(o.input), "--input", options, ours=False)
    fmt = dedup.input_format(paths, o.format)
    text_fields = _split_list([o.text_fields])
    if not text_fields:
        raise ConfigError("--text_fields is required (comma-separated field names)")
    mode = o.key or ("one" if len(text_fields) == 1 else "pair")
    if mode not in dedup.MODES:
        raise ConfigError(f"--key must be one of {', '.join(dedup.MODES)}, not {mode!r}")
    if mode == "one" and len(text_fields) != 1:
        raise ConfigError(f"--key=one needs exactly one --text_fields, got {len(text_fields)}")
    exclude = _split_list(o.exclude)
    if o.no_exact and o.no_near and not exclude:
        raise ConfigError("nothing to do: --no_exact and --no_near without --exclude")
    if o.num_shards < 0 or o.records_per_shard < 1:
        raise ConfigError("--num_shards must be >= 0 and --records_per_shard >= 1")
    spec = _input_spec(paths, text_fields) if fmt == dedup.TFRECORD else None
    rank_fn = _rank if o.rank_field else None

    read = pipeline | "Read" >> dedup.ReadDedupInput(paths, fmt, text_fields, o.rank_field or None)
    stages: list[Any] = [read]
    records = read.out
    if exclude:
        clean = records | "Decontaminate" >> dedup.Decontaminate(
            _texts, exclude, ngram=o.exclude_ngram, min_sentence_chars=o.min_sentence_chars, scope_fn=_source)
        stages.append(clean)
        records = clean.out
    deduped = []
    if not o.no_exact:
        deduped.append(("exact_dedup", records | "ExactDedup" >> dedup.ExactDedup(
            _texts, mode=mode, rank_fn=rank_fn, scope_fn=_source, case_fold=o.case_fold,
            with_clusters=o.with_clusters, cc_rounds=o.cc_rounds)))
        records = deduped[-1][1].out
    if not o.no_near:
        deduped.append(("near_dedup", records | "NearDedup" >> dedup.NearDedup(
            _texts, mode=mode, rank_fn=rank_fn, scope_fn=_source, num_perm=o.num_perm, ngram=o.ngram,
            bands=o.bands or None, rows=o.rows or None, threshold=o.threshold or None, verify=o.verify,
            seed=o.minhash_seed, cc_rounds=o.cc_rounds, with_clusters=o.with_clusters)))
        records = deduped[-1][1].out
    stages += [result for _, result in deduped]

    is_tfrecord = fmt == dedup.TFRECORD
    suffix, frame = (".tfrecord.gz", "tfrecord") if is_tfrecord else (".jsonl.gz", "lines")
    kept_dir = FileSystems.join(out_dir, "deduplicated")
    _ = (records
         | "KeptPayload" >> beam.Map(lambda r: (dedup.record_sort_key(r), r.raw))
         | "WriteKept" >> WriteShards(FileSystems.join(kept_dir, "part"), suffix, frame, "gzip",
                                      o.num_shards, o.records_per_shard))
    outputs = {"deduplicated records": kept_dir}
    if spec is not None:
        _ = pipeline | "KeptSpec" >> WriteSpec(spec, kept_dir)

    if deduped:
        _ = (tuple(result.stats | f"Name{name}" >> beam.Map(lambda s, n=name: (n, s)) for name, result in deduped)
             | "AllStats" >> beam.Flatten()
             | "StatsList" >> beam.combiners.ToList()
             | "WriteStats" >> beam.ParDo(_WriteStats(FileSystems.join(out_dir, STATS_FILE))))
        outputs["cluster statistics"] = FileSystems.join(out_dir, STATS_FILE)
    if o.with_clusters and deduped:
        clusters = deduped[0][1].clusters
        if len(deduped) == 2:
            clusters = {"first": clusters, "second": deduped[1][1].clusters} | "ChainClusters" >> dedup.ChainClusters()
        clusters_dir = FileSystems.join(out_dir, "clusters")
        encode = dedup.clustered_example if is_tfrecord else dedup.clustered_json
        _ = (clusters
             | "ClusterPayload" >> beam.Map(lambda m: (dedup.record_sort_key(m.record), encode(m)))
             | "WriteClusters" >> WriteShards(FileSystems.join(clusters_dir, "part"), suffix, frame, "gzip",
                                              o.num_shards, o.records_per_shard))
        if spec is not None:
            _ = pipeline | "ClustersSpec" >> WriteSpec(dedup_specs.with_cluster_features(spec), clusters_dir)
        outputs["records with clusters"] = clusters_dir

    return Built([s.tally for s in stages], [s.dead_letter for s in stages], outputs)


if __name__ == "__main__":
    sys.exit(main("dedup", build))
