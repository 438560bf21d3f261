"""Deduplication on Beam: exact, near-duplicate (MinHash LSH) and evaluation-set decontamination.

Three composite transforms, each taking a ``PCollection`` of records of any picklable type ``T``
(dicts, tuples, dataclasses, raw bytes) and returning what an accounted stage returns (``out``,
``tally``, ``dead_letter``); the records themselves are never looked into except through the
functions given:

``ExactDedup(texts_fn, *, mode="pair", rank_fn=None, scope_fn=None, group_fn=None, case_fold=False, with_clusters=False,
cc_rounds=8, stage="exact_dedup") -> DedupResult``
    Records whose normalised texts (``textnorm.exact_key_text``: NFC, optional case fold,
    punctuation and whitespace folded) are equal form a group; one record per group is kept.

``NearDedup(texts_fn, *, mode="pair", rank_fn=None, scope_fn=None, group_fn=None, num_perm=128, ngram=5, bands=None,
rows=None, threshold=0.8, verify="signature", seed=1, cc_rounds=8, with_clusters=False,
stage="near_dedup") -> DedupResult``
    MinHash signatures over unit n-grams of ``textnorm.near_key_text``, candidate pairs from LSH
    bands, candidates verified at ``threshold`` by the signatures' Jaccard estimate, or with
    ``verify="shingles"`` by the exact Jaccard of the shingle sets (``threshold=None`` keeps every
    candidate), clusters as connected components of the verified pairs; one record per cluster is
    kept.

``Decontaminate(texts_fn, exclude_patterns, *, ngram=13, min_sentence_chars=20, scope_fn=None,
stage="decontaminate") -> Accounted``
    Drops records that share a normalised sentence, or a normalised text, or a unit ``ngram``-gram
    with any text of the evaluation files (plain text: one text per line; ``.jsonl``: every string
    value of each object).

Arguments shared by all three:

- ``texts_fn(record)`` returns the record's texts: one ``str`` (or UTF-8 ``bytes``), or a sequence.
- ``mode`` says what makes two records duplicates. ``"pair"``: all texts together (a translation pair
  is a duplicate only if both sides are). ``"one"``: ``texts_fn`` gives exactly one text. ``"either"``:
  records sharing ANY text (exact) or any near-duplicate text (near) are one group, transitively:
  groups are connected components, so (a, b), (b, c), (c, d) form one group.
- ``rank_fn(record)`` decides which record of a group is kept: the greatest rank wins (a score field,
  say); ties, and the default, go to the longest record (total characters of its texts), then to the
  smallest 128-bit fingerprint of the record's content (``bytes``/``str`` as they are, anything else
  by ``keys.content``: its values, not its class or its pickle). The choice never depends on arrival
  order, bundling or runner; records with equal content are interchangeable.
- ``scope_fn(record)`` names the scope (usually the input file) the record is counted under in the
  run summary; default ``"all"``. Grouping is global across scopes.
- ``group_fn(record)`` (exact and near dedup) names a group within which duplicates are looked for:
  records of two groups are never duplicates of each other. One transform so dedups many groups at
  once (the StackExchange job's pair types) instead of one copy of its graph per group.
- ``stage``: the accounting stage name. Dropped records are counted as filtered with reason
  ``"exact_duplicate"``, ``"near_duplicate"`` or ``"eval_overlap"``; a record whose texts cannot be
  read (``texts_fn`` or ``rank_fn`` raises, a text is neither str nor bytes, a field has no
  ``keys.content`` encoding) is dead-lettered with reason ``"bad_texts"``, so ``in == out + filtered +
  dead_lettered`` holds per scope.

``DedupResult`` has ``out``, ``tally`` and ``dead_letter`` like ``Accounted`` and adds ``clusters``
(with ``with_clusters=True``: every record that was not dead-lettered as a ``ClusterMember`` with its
``cluster_id``, ``cluster_size`` and ``is_duplicate``; else ``None``) and ``stats``, a one-element
PCollection holding a dict: the histogram of cluster sizes, and for near-dedup the candidate and
verified pair counts and the connected-components convergence check.

Scale: no step copies a group into memory. GroupByKey values are iterated (twice where the best
member must be found first; Dataflow pages them in), and joins go through ``StreamingJoin`` rather
than CoGroupByKey, which builds lists. The exceptions are small-star's set of one node's distinct
smaller neighbours, and decontamination's evaluation fingerprints (8 bytes per eval n-gram and
sentence), a side input on every worker.

Also here: ``ChainClusters`` (one cluster per record across two stages run one after the other),
and the record readers and writers of ``pipelines.dedup`` (JSONL lines, tf.Examples parsed without
TensorFlow).

The package, by layer (every name above is importable from ``transforms.dedup`` itself):

- records, plain Python: ``records`` (the job's JSONL lines and tf.Examples, parsed and written);
- the algorithm, plain Python, tested without Beam: ``keys`` (texts, graph nodes, ranks,
  fingerprints), ``minhash`` (signatures and LSH bands);
- generic Beam graph steps: ``join`` (``StreamingJoin``), ``components`` (``ConnectedComponents``);
- the transforms: ``keep`` (keying, one record per cluster), ``exact``, ``near``, ``decontaminate``,
  ``clusters`` (``ChainClusters``), ``read`` (``ReadDedupInput``), ``job`` (the rest of
  ``pipelines.dedup``: its settings, input spec and writers).
"""

from transforms.core.components import ComponentLabels, ConnectedComponents, large_star, small_star, star_labels
from transforms.core.join import StreamingJoin
from transforms.dedup.clusters import ChainClusters
from transforms.dedup.decontaminate import Decontaminate, eval_texts, overlap_fingerprints
from transforms.dedup.exact import ExactDedup
from transforms.dedup.job import (
    STATS_FILE,
    JobSettings,
    WriteJobRecords,
    WriteStats,
    input_spec,
    job_rank,
    job_settings,
    job_source,
    job_texts,
)
from transforms.dedup.keep import DedupResult
from transforms.dedup.keys import (
    BAD_TEXTS,
    EVAL_OVERLAP,
    EXACT_DUPLICATE,
    MODES,
    NEAR_DUPLICATE,
    VERIFY,
    ClusterMember,
    Member,
    RankFn,
    ScopeFn,
    TextsFn,
    better,
    exact_nodes,
    fingerprint,
    near_nodes,
    record_texts,
)
from transforms.dedup.near import NearDedup, bucket_edges
from transforms.dedup.read import ReadDedupInput
from transforms.dedup.records import (
    JSONL,
    READ_STAGE,
    TFRECORD,
    JobRecord,
    clustered_example,
    clustered_json,
    input_format,
    parse_example,
    record_from_example,
    record_from_json,
    record_sort_key,
)

__all__ = [
    "BAD_TEXTS",
    "EVAL_OVERLAP",
    "EXACT_DUPLICATE",
    "JSONL",
    "MODES",
    "NEAR_DUPLICATE",
    "READ_STAGE",
    "STATS_FILE",
    "TFRECORD",
    "VERIFY",
    "ChainClusters",
    "ClusterMember",
    "ComponentLabels",
    "ConnectedComponents",
    "Decontaminate",
    "DedupResult",
    "ExactDedup",
    "JobRecord",
    "JobSettings",
    "Member",
    "NearDedup",
    "RankFn",
    "ReadDedupInput",
    "ScopeFn",
    "StreamingJoin",
    "TextsFn",
    "WriteJobRecords",
    "WriteStats",
    "better",
    "bucket_edges",
    "clustered_example",
    "clustered_json",
    "eval_texts",
    "exact_nodes",
    "fingerprint",
    "input_format",
    "input_spec",
    "job_rank",
    "job_settings",
    "job_source",
    "job_texts",
    "large_star",
    "near_nodes",
    "overlap_fingerprints",
    "parse_example",
    "record_from_example",
    "record_from_json",
    "record_sort_key",
    "record_texts",
    "small_star",
    "star_labels",
]
