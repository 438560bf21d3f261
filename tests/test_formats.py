"""``transforms.core.formats.format_of``: the one rule every job's ``auto`` format follows (no Beam)."""

from __future__ import annotations

import pytest

from transforms.core.formats import JSONL, TEXT, TFRECORD, TSV, format_of


@pytest.mark.parametrize("path, accepted, expected", [
    ("d/a.jsonl", (JSONL,), JSONL),
    ("gs://b/d/a.NDJSON.GZ", (JSONL,), JSONL),
    ("a.json.zst", (JSONL, TFRECORD), JSONL),
    ("out/part.jsonl-00000-of-00004", (JSONL,), JSONL),
    ("pairs-00000-of-00004.tfrecord.gz", (JSONL, TFRECORD), TFRECORD),
    ("train.TFRecord-00003-of-01024", (JSONL, TFRECORD), TFRECORD),
    ("a.tfrec", (TFRECORD,), TFRECORD),
    ("c.de-en.tab.bz2", (TSV, JSONL), TSV),
    ("a.tsv", (JSONL, TFRECORD), None),  # not a format the caller reads
    ("a.txt", (TEXT, JSONL), None),  # text has no suffix: the caller's fallback
    ("a.jsonl.txt", (JSONL,), None),  # the name must end in the suffix
    ("d.jsonl/readme", (JSONL,), None),  # a folder's suffix says nothing
])
def test_format_of_reads_the_name_alike_for_every_job(path, accepted, expected):
    assert format_of(path, accepted) == expected
