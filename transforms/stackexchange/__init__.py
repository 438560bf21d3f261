"""StackExchange data dumps -> sentence pairs.

The dump writes one ``<row .../>`` per line, so every line is parsed on its own with lxml (entity
resolution, DTD loading and network access off) and a file is never built into a DOM: the read is
Beam's splittable one and memory stays bounded by a batch of lines. Posts are then grouped per
question (a question and its answers: bounded by the answers one question has) to choose the best and
a negative answer, and duplicate links are joined to their two questions by post id.

The package, by layer (every name below is importable from ``transforms.stackexchange`` itself):

- records, plain Python, tested without Beam: ``dumps`` (which inputs are dump files and archives),
  ``rows`` (a row line -> a ``Post``), ``html_text`` (post bodies as text);
- the algorithm, plain Python: ``pairs`` (pair types, text filters, the choice of answers ->
  ``PostPair``);
- the Beam transforms, which only account for records around those functions: ``sevenzip``
  (``.7z`` archives -> plain shards), ``read`` (``ReadDumps``), ``question_pairs``
  (``QuestionPairs``), ``dedup_pairs`` (``DedupAndDecontaminate``), ``write`` (``WritePostPairs``),
  and ``job`` (the settings of ``pipelines.stackexchange``).
"""

from transforms.stackexchange.dedup_pairs import DedupAndDecontaminate, pair_rank, pair_scope, pair_texts
from transforms.stackexchange.dumps import (
    POSTLINKS,
    POSTS,
    DumpInputs,
    discover_dump_files,
    is_meta_site,
    site_and_kind,
    site_of_archive,
)
from transforms.stackexchange.html_text import html_to_text
from transforms.stackexchange.job import JobSettings, job_settings, transcode_folder
from transforms.stackexchange.pairs import (
    DUPLICATE_PAIR_TYPES,
    NUM_TEXTS,
    PAIR_TYPES,
    THREAD_PAIR_TYPES,
    PairOptions,
    PostPair,
    choose_answers,
    duplicate_pairs,
    thread_pairs,
)
from transforms.stackexchange.question_pairs import BuildThreadPairs, QuestionPairs
from transforms.stackexchange.read import DumpRows, ParseDumpRows, ReadDumps
from transforms.stackexchange.rows import (
    WATERMARK_POST_IDS,
    Post,
    RowError,
    license_of,
    parse_row,
    parse_tags,
    post_filter_reason,
    post_from_attrs,
)
from transforms.stackexchange.sevenzip import TranscodeArchives
from transforms.stackexchange.write import WritePostPairs, encode_texts

__all__ = [
    "DUPLICATE_PAIR_TYPES", "NUM_TEXTS", "PAIR_TYPES", "POSTLINKS", "POSTS", "THREAD_PAIR_TYPES",
    "WATERMARK_POST_IDS", "BuildThreadPairs", "DedupAndDecontaminate", "DumpInputs", "DumpRows", "JobSettings",
    "PairOptions", "ParseDumpRows", "Post", "PostPair", "QuestionPairs", "ReadDumps", "RowError",
    "TranscodeArchives", "WritePostPairs", "choose_answers", "discover_dump_files", "duplicate_pairs",
    "encode_texts", "html_to_text", "is_meta_site", "job_settings", "license_of", "pair_rank", "pair_scope",
    "pair_texts", "parse_row", "parse_tags", "post_filter_reason", "post_from_attrs", "site_and_kind",
    "site_of_archive", "thread_pairs", "transcode_folder",
]
