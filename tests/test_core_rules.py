"""The shared core's pure rules, tested without Beam: ``formats.format_of`` (the one rule every job's
``auto`` format follows), ``sampling`` (smoothed rates, stochastic rounding) and the one meaning of
``--language_pattern``."""

from __future__ import annotations

import pytest

from specs.errors import ConfigError
from transforms.core.formats import JSONL, TEXT, TFRECORD, TSV, format_of
from transforms.core.records import language_of_path, language_pattern
from transforms.core.sampling import smoothed_rates, stochastic_round


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


def test_smoothed_rates_keep_the_total_and_give_shares_proportional_to_n_pow_alpha():
    counts = {"en": 9000, "sw": 900, "yo": 100, "zz": 0}
    assert smoothed_rates(counts, 1.0) == {"en": 1.0, "sw": 1.0, "yo": 1.0}  # exactly; empty keys left out
    for alpha in (0.0, 0.3, 0.7):
        rates = smoothed_rates(counts, alpha)
        assert sum(rates[k] * counts[k] for k in rates) == pytest.approx(10000)
        norm = sum(n ** alpha for n in counts.values() if n)
        for k, rate in rates.items():
            assert rate * counts[k] / 10000 == pytest.approx(counts[k] ** alpha / norm)
    assert smoothed_rates(dict(reversed(counts.items())), 0.3) == smoothed_rates(counts, 0.3)  # bit for bit
    assert smoothed_rates({}, 0.5) == {}


def test_stochastic_round_is_unbiased_seeded_and_keyed_by_identity():
    keys = [i.to_bytes(2, "big") for i in range(20000)]
    for value in (0.25, 1.0, 2.5):
        got = [stochastic_round(value, 7, b"balance", k) for k in keys]
        assert got == [stochastic_round(value, 7, b"balance", k) for k in keys]
        assert abs(sum(got) / len(keys) - value) < 0.02
        assert set(got) <= {int(value), int(value) + 1}
    assert [stochastic_round(0.5, 7, k) for k in keys] != [stochastic_round(0.5, 8, k) for k in keys]


def test_language_pattern_has_one_meaning_group_1_of_a_search_in_the_path():
    pattern = language_pattern(r"/(\w*)\.txt$")
    assert language_of_path(pattern, "gs://b/flores/deu_Latn.txt", "und") == "deu_Latn"
    assert language_of_path(pattern, "d/.txt", "und") == "und"  # an empty group names no language
    assert language_of_path(pattern, "d/a.jsonl", "xx") == "xx"  # not found: the job's default
    assert language_of_path(language_pattern(""), "d/deu.txt", "und") == "und"
    with pytest.raises(ConfigError, match="needs a group"):
        language_pattern(r"\.txt$")
    with pytest.raises(ConfigError, match="--language_pattern '\\('"):
        language_pattern("(")
