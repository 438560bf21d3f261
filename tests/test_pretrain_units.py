"""Per-element logic of the pretraining pipeline, tested without Beam: sentence splitting, document
reading across byte ranges, segment pairs, truncation, masking statistics, encoding, sampling."""

from __future__ import annotations

import collections
import gzip
import itertools
import random

import numpy as np
import pytest
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.range_trackers import OffsetRangeTracker

import specs
from transforms import pretraining as pt
from transforms.sentences import split_sentences

# --- sentences -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("Dr. Smith went home. He slept! Did he? Yes.", ["Dr. Smith went home.", "He slept!", "Did he?", "Yes."]),
    ("J. R. R. Tolkien wrote it, e.g. The Hobbit. Pi is 3.14 today.",
     ["J. R. R. Tolkien wrote it, e.g. The Hobbit.", "Pi is 3.14 today."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("Wait... and then. Nothing", ["Wait... and then.", "Nothing"]),
    ("今日は晴れです。明日は雨！本当？「はい。」次", ["今日は晴れです。", "明日は雨！", "本当？", "「はい。」", "次"]),
    ("यह एक वाक्य है। यह दूसरा है॥ तीसरा", ["यह एक वाक्य है।", "यह दूसरा है॥", "तीसरा"]),
    ("ภาษาไทยไม่มีจุด ประโยคที่สอง", ["ภาษาไทยไม่มีจุด", "ประโยคที่สอง"]),
    ("هل أنت بخير؟ نعم.", ["هل أنت بخير؟", "نعم."]),
    ("Line one\nline two\n\n  \nthree", ["Line one", "line two", "three"]),
    ("", []),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_split_sentences_keeps_every_character_but_whitespace(shared_data):
    text = (shared_data / "text" / "gutenberg_novels" / "botchan.en.txt").read_text("utf-8-sig")[:60000]
    got = split_sentences(text)
    assert "".join("".join(s.split()) for s in got) == "".join(text.split())
    assert 300 < len(got) < 3000


# --- reading the BERT text format across byte ranges ---------------------------------------------


def _read(path, splits, max_sentences=10_000, size=None):
    src = pt._BertTextSource(str(path), max_sentences, "und", compression_type=CompressionTypes.AUTO,
                             validate=False)
    size = path.stat().st_size if size is None else size
    bounds = [0, *splits, size]
    return [d for a, b in itertools.pairwise(bounds) for d in src.read_records(str(path), OffsetRangeTracker(a, b))]


def test_documents_are_read_once_whatever_the_split_points(tmp_path):
    text = ("first doc line one\r\nline two\n\n\n  \nsecond doc\nmore\n\nthird\n" + "x" * 3000 + "\n\n"
            + "\n".join(f"s{i}" for i in range(50)) + "\n\n\n")
    p = tmp_path / "a.txt"
    p.write_bytes(text.encode())
    whole = _read(p, [])
    assert [d.sentences for d in whole if d.sentences] == [
        ["first doc line one", "line two"], ["second doc", "more"], ["third", "x" * 3000],
        [f"s{i}" for i in range(50)]]
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    assert sum(len(d.sentences) + d.separators for d in whole) == len(lines)
    size = p.stat().st_size
    for splits in ([1], [5, 6, 7], list(range(1, size, 13)), list(range(1, size, 3)), [size - 1]):
        assert _read(p, splits) == whole, splits


def test_long_documents_are_cut_into_bounded_parts(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("\n".join(f"line {i}" for i in range(25)) + "\n\nnext\n")
    docs = [d for d in _read(p, [40, 90], max_sentences=10) if d.sentences]
    assert [len(d.sentences) for d in docs] == [10, 10, 5, 1]
    assert len({d.offset for d in docs}) == 4


def test_gzip_files_are_read_whole(tmp_path):
    p = tmp_path / "a.txt.gz"
    p.write_bytes(gzip.compress(b"a\nb\n\nc\n"))
    src = pt._BertTextSource(str(p), 100, "und", compression_type=CompressionTypes.AUTO, validate=False)
    (sub,) = list(src.split(1 << 20))
    docs = list(sub.source.read(sub.source.get_range_tracker(None, None)))
    assert [d.sentences for d in docs] == [["a", "b"], ["c"]]


# --- instances -----------------------------------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(200)] + [f"##p{i}" for i in range(50)]
INFO = pt.VocabInfo.from_vocab(VOCAB)


def _doc(rng, n_sentences, lo=3, hi=30):
    return [[rng.randrange(5, 205) for _ in range(rng.randint(lo, hi))] for _ in range(n_sentences)]


def _find(haystack, needle):
    return any(haystack[i:i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))


def test_segment_pairs_follow_the_reference_construction():
    rng = random.Random(1)
    pool = [_doc(rng, rng.randint(1, 30)) for _ in range(40)]
    params = pt.InstanceParams(max_seq_length=64, short_seq_prob=0.1)
    random_next = total = 0
    for index, doc in enumerate(pool):
        flat_doc = [t for s in doc for t in s]
        for p in range(3):
            for a, b, is_random in pt.create_segment_pairs(doc, pool, index, params, random.Random(index * 7 + p)):
                total += 1
                assert a and b and len(a) + len(b) <= params.max_num_tokens
                assert _find(flat_doc, a)
                if is_random:
                    random_next += 1
                    assert any(_find([t for s in other for t in s], b) for other in pool)
                else:  # B follows A in the document (truncation may trim both at the ends)
                    assert _find(flat_doc, b)
    assert 0.45 < random_next / total < 0.75


def test_single_sentence_chunks_always_take_a_random_next_segment():
    doc = [[10, 11, 12]]
    pool = [doc, [[20, 21], [22]]]
    pairs = pt.create_segment_pairs(doc, pool, 0, pt.InstanceParams(max_seq_length=32), random.Random(3))
    assert [(p.tokens_a, p.is_random_next) for p in pairs] == [([10, 11, 12], True)]
    assert pairs[0].tokens_b in ([20, 21, 22], [22], [20, 21])


def test_truncation_trims_the_longer_side_from_both_ends():
    fronts = collections.Counter()
    for s in range(400):
        a, b = pt.truncate_seq_pair(list(range(100)), list(range(100, 130)), 50, random.Random(s))
        # A is cut to B's length, then B on ties, then the longer side again, alternately.
        assert (len(a), len(b)) == (25, 25)
        assert a == list(range(a[0], a[0] + 25)) and b == list(range(b[0], b[0] + 25)) and b[0] >= 100
        fronts[a[0] > 0] += 1
        fronts["back"] += a[-1] < 99
    assert fronts[True] == fronts["back"] == 400  # 75 cuts from A: surely some from each end


def _masking_trials(params, n=3000, seed=0):
    rng = random.Random(seed)
    stats = collections.Counter()
    for _ in range(n):
        ids = [INFO.cls_id, *(rng.randrange(5, 255) for _ in range(rng.randint(1, 60))), INFO.sep_id,
               *(rng.randrange(5, 255) for _ in range(rng.randint(1, 60))), INFO.sep_id]
        len_a = ids.index(INFO.sep_id) + 1
        special = frozenset((0, len_a - 1, len(ids) - 1))
        out, positions, labels = pt.mask_tokens(ids, special, params, INFO, rng)
        budget = min(params.max_predictions_per_seq, max(1, round(len(ids) * params.masked_lm_prob)))
        assert positions == sorted(set(positions)) and len(positions) <= budget
        assert not special & set(positions)
        assert labels == [ids[p] for p in positions]
        unmasked = [i for i in range(len(ids)) if i not in positions]
        assert [out[i] for i in unmasked] == [ids[i] for i in unmasked]
        stats["tokens"] += len(ids)
        stats["masked"] += len(positions)
        stats["budget"] += budget
        for p in positions:
            stats["mask" if out[p] == INFO.mask_id else "kept" if out[p] == ids[p] else "random"] += 1
        yield ids, out, positions, stats


def test_token_masking_rate_and_80_10_10():
    params = pt.InstanceParams(max_predictions_per_seq=20, masked_lm_prob=0.15)
    *_, stats = list(_masking_trials(params))[-1]
    assert stats["masked"] == stats["budget"]  # token masking always fills the budget
    n = stats["masked"]
    assert abs(stats["mask"] / n - 0.8) < 0.015
    assert abs(stats["kept"] / n - 0.1 - 1 / 255 * 0.1) < 0.012
    assert abs(stats["random"] / n - 0.1) < 0.012


def test_whole_word_and_ngram_masking_mask_whole_words():
    continuation = INFO.continuation
    for ngram in (None, 3):
        params = pt.InstanceParams(do_whole_word_mask=True, max_ngram_size=ngram, masked_lm_prob=0.2)
        for ids, _, positions, _ in _masking_trials(params, n=600, seed=5):
            chosen = set(positions)
            for p in positions:
                if continuation[ids[p]] and p - 1 not in (0,) and ids[p - 1] != INFO.sep_id:
                    assert p - 1 in chosen  # a ## piece is masked only with the piece before it
                if p + 1 < len(ids) and continuation[ids[p + 1]]:
                    assert p + 1 in chosen


def test_budget_rounds_half_to_even_like_python():
    params = pt.InstanceParams(max_predictions_per_seq=100, masked_lm_prob=0.25)
    for n_tokens, expected in ((10, 2), (14, 4), (6, 2), (2, 1)):
        ids = [INFO.cls_id, *([7] * (n_tokens - 2)), INFO.sep_id] if n_tokens > 2 else [INFO.cls_id, INFO.sep_id]
        special = frozenset((0, len(ids) - 1))
        _, positions, _ = pt.mask_tokens(ids, special, params, INFO, random.Random(0))
        assert len(positions) == min(expected, len(ids) - 2), n_tokens


@pytest.mark.parametrize("v2,dynamic", [(False, False), (True, False), (False, True)])
def test_batch_encoder_equals_spec_encode(v2, dynamic):
    params = pt.InstanceParams(max_seq_length=48, max_predictions_per_seq=7, dynamic_masking=dynamic)
    spec = specs.pretraining_spec(48, 7, v2_names=v2, dynamic_masking=dynamic)
    rng = random.Random(2)
    instances = []
    for _ in range(50):
        pair = pt.SegmentPair([rng.randrange(5, 300000) for _ in range(rng.randint(1, 20))],
                              [rng.randrange(5, 2**34) for _ in range(rng.randint(1, 20))], rng.random() < 0.5)
        instances.append(pt.make_instance(pair, params, INFO, rng))
    got = pt.InstanceEncoder(spec, params).encode(instances)
    ids_name, seg_name = ("input_word_ids", "input_type_ids") if v2 else ("input_ids", "segment_ids")
    for inst, data in zip(instances, got, strict=True):
        n, pad = len(inst.input_ids), 48 - len(inst.input_ids)
        values = {ids_name: inst.input_ids + [0] * pad,
                  seg_name: [0] * inst.len_a + [1] * (n - inst.len_a) + [0] * pad}
        if not dynamic:
            k = len(inst.masked_lm_positions)
            values.update({"input_mask": [1] * n + [0] * pad,
                           "masked_lm_positions": inst.masked_lm_positions + [0] * (7 - k),
                           "masked_lm_ids": inst.masked_lm_ids + [0] * (7 - k),
                           "masked_lm_weights": [1.0] * k + [0.0] * (7 - k),
                           "next_sentence_labels": [int(inst.is_random_next)]})
        assert data == spec.encode(values)


# --- language sampling ---------------------------------------------------------------------------


def test_language_rates_keep_the_budget_and_flatten_the_mix():
    counts = {"en": 9000, "sw": 900, "yo": 100}
    assert pt.language_pass_rates(counts, 1.0, 5) == pytest.approx({"en": 5, "sw": 5, "yo": 5})
    for alpha in (0.0, 0.3, 0.7):
        rates = pt.language_pass_rates(counts, alpha, 5)
        assert sum(rates[k] * n for k, n in counts.items()) == pytest.approx(5 * 10000)
        assert rates["yo"] > rates["sw"] > rates["en"]
    equal = pt.language_pass_rates(counts, 0.0, 5)
    assert equal["yo"] * 100 == pytest.approx(equal["en"] * 9000)


def test_stochastic_rounding_of_passes_is_unbiased_and_seeded():
    keys = [bytes([i % 256, i // 256]) for i in range(4000)]
    passes = [pt.passes_for(2.3, 11, k) for k in keys]
    assert set(passes) == {2, 3}
    assert abs(np.mean(passes) - 2.3) < 0.03
    assert passes == [pt.passes_for(2.3, 11, k) for k in keys]
    assert passes != [pt.passes_for(2.3, 12, k) for k in keys]


# --- record parsers (called directly, without a pipeline) -----------------------------------------


def _process(dofn, *elements):
    dofn.start_bundle()
    out = [x for e in elements for x in dofn.process(e)]
    tallies = {k[2:]: n for k, n in dofn._tallies.items()}
    return out, tallies


def test_tfrecord_documents_split_text_or_take_one_sentence_per_value():
    import re

    def example(**feats):
        return specs.encode_example({k: (specs.BYTES, v) for k, v in feats.items()})

    dofn = pt._ParseExampleDocuments("text", "lang", re.compile(r"/(\w+)\.tfrecord$"))
    out, tallies = _process(dofn, ("/d/sw.tfrecord", example(text="One here. Two there.", lang="fr")),
                            ("/d/sw.tfrecord", example(text=["a", " ", "b"])),
                            ("/d/sw.tfrecord", example(text="   ")),
                            ("/d/sw.tfrecord", example(other="x")),
                            ("/d/sw.tfrecord", b"\xff\x00garbage"))
    docs = [d for d in out if isinstance(d, pt.RawDocument)]
    assert [(d.language, d.sentences) for d in docs] == [("fr", ["One here.", "Two there."]), ("sw", ["a", "b"])]
    assert tallies == {("in", ""): 5, ("out", ""): 2, ("filtered", "empty_text"): 1,
                       ("dead_lettered", "missing_text_feature"): 1, ("dead_lettered", "invalid_example"): 1}


def test_translation_pairs_parse_and_account():
    def pair(src, tgt, **extra):
        return specs.TRANSLATION_PAIRS.encode({"src_raw": src, "tgt_raw": tgt, "src_lang": "en", "tgt_lang": "de",
                                               **extra})

    out, tallies = _process(pt._ParsePairs(), ("p", pair("Hello.", "Hallo.")), ("p", pair("x", " ")),
                            ("p", specs.encode_example({"src_raw": (specs.BYTES, "only")})))
    assert [o[2:] for o in out if isinstance(o, tuple)] == [("Hello.", "Hallo.", "en", "de")]
    assert tallies == {("in", ""): 3, ("out", ""): 1, ("filtered", "empty_side"): 1,
                       ("dead_lettered", "missing_text_feature"): 1}
