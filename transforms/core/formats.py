"""An input file's format told from its name, one rule for every job (no Beam, no I/O).

Every job that takes ``--input_format=auto`` (or dedup's ``--format=auto``) asks ``format_of`` which
of the formats it reads a file is in. One rule, so ``x.JSONL.gz`` or ``part.tfrecord-00000-of-00004``
means the same to every job: the base name, case-insensitively, less one compression suffix Beam
reads (its ``CompressionTypes`` detection), less a Beam shard part (``-00000-of-00004``), must end
in one of the format's suffixes. Text has no suffix: it is what a job that reads text assumes when
no other format it accepts matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TEXT, JSONL, TSV, TFRECORD = "text", "jsonl", "tsv", "tfrecord"

SUFFIXES: dict[str, tuple[str, ...]] = {
    JSONL: (".jsonl", ".ndjson", ".json"),
    TSV: (".tsv", ".tab"),
    TFRECORD: (".tfrecord", ".tfrecords", ".tfrec"),
}
# the suffixes Beam's CompressionTypes.detect_compression_type reads as compressed
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".deflate", ".zst", ".zstd", ".lzma", ".xz")
_SHARD = re.compile(r"-\d+-of-\d+$")


def format_of(path: str, accepted: Sequence[str]) -> str | None:
    """The first of ``accepted`` whose suffix ``path``'s name ends in; None when none does (the caller
    then assumes text, or asks for the format flag). ``TEXT`` in ``accepted`` matches nothing by name."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    name = _SHARD.sub("", name)
    for fmt in accepted:
        if name.endswith(SUFFIXES.get(fmt, ())):
            return fmt
    return None
