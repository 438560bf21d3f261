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
from specs.vocabulary import Vocabulary
from transforms import pretraining as pt
from transforms.pretraining import bert_text, reading, tlm
from transforms.text.sentences import split_sentences

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
    src = bert_text._BertTextSource(str(path), max_sentences, "und", compression_type=CompressionTypes.AUTO,
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
    src = bert_text._BertTextSource(str(p), 100, "und", compression_type=CompressionTypes.AUTO, validate=False)
    (sub,) = list(src.split(1 << 20))
    docs = list(sub.source.read(sub.source.get_range_tracker(None, None)))
    assert [d.sentences for d in docs] == [["a", "b"], ["c"]]


# --- instances -----------------------------------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(200)] + [f"##p{i}" for i in range(50)]
INFO = pt.VocabInfo.from_vocabulary(Vocabulary(tuple(VOCAB), True))


def _doc(rng, n_sentences, lo=3, hi=30):
    return [[rng.randrange(5, 205) for _ in range(rng.randint(lo, hi))] for _ in range(n_sentences)]


def _find(haystack, needle):
    return any(haystack[i:i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))


def _tokens(pool, pair):
    return pool.tokens(pair.a_start, pair.a_len), pool.tokens(pair.b_start, pair.b_len)


def test_segment_pairs_follow_the_reference_construction():
    rng = random.Random(1)
    docs = [_doc(rng, rng.randint(1, 30)) for _ in range(40)]
    pool = pt.Pool.from_sentences(docs)
    params = pt.InstanceParams(max_seq_length=64, short_seq_prob=0.1)
    random_next = total = 0
    for index, doc in enumerate(docs):
        flat_doc = [t for s in doc for t in s]
        for p in range(3):
            for pair in pt.create_segment_pairs(pool, index, params, random.Random(index * 7 + p)):
                a, b = _tokens(pool, pair)
                total += 1
                assert a and b and len(a) + len(b) <= params.max_num_tokens
                assert _find(flat_doc, a)
                if pair.is_random_next:
                    random_next += 1
                    assert any(_find([t for s in other for t in s], b) for other in docs)
                else:  # B follows A in the document (truncation may trim both at the ends)
                    assert _find(flat_doc, b)
    assert 0.45 < random_next / total < 0.75


def test_chunks_and_random_segments_end_where_the_reference_ends_them():
    """A is whole sentences of a chunk that stops at the first sentence reaching the target; a random
    B is whole sentences from its start until it reaches what A leaves of the target (or its
    document ends); nothing here needs truncating."""
    docs = [[[1] * 10, [2] * 10, [3] * 10, [4] * 10], [[5 + k] * 5 for k in range(6)]]
    pool = pt.Pool.from_sentences(docs)
    params = pt.InstanceParams(max_seq_length=33, short_seq_prob=0.0)  # target 30: three sentences
    seen = set()
    for s in range(200):
        pairs = pt.create_segment_pairs(pool, 0, params, random.Random(s))
        a, b = _tokens(pool, pairs[0])
        assert a in ([1] * 10, [1] * 10 + [2] * 10)
        if not pairs[0].is_random_next:
            assert a + b == [1] * 10 + [2] * 10 + [3] * 10
            continue
        expected = []
        for start in range(6):
            taken: list[int] = []
            for sentence in docs[1][start:]:
                taken += sentence
                if len(taken) >= 30 - len(a):
                    break
            expected.append(taken)
        assert b in expected
        seen.add((len(a), b[0]))
        assert _tokens(pool, pairs[1])[0][0] == (2 if len(a) == 10 else 3)  # unused sentences put back
    assert len(seen) >= 8


def test_single_sentence_chunks_always_take_a_random_next_segment():
    pool = pt.Pool.from_sentences([[[10, 11, 12]], [[20, 21], [22]]])
    pairs = pt.create_segment_pairs(pool, 0, pt.InstanceParams(max_seq_length=32), random.Random(3))
    assert [(_tokens(pool, p)[0], p.is_random_next) for p in pairs] == [([10, 11, 12], True)]
    assert _tokens(pool, pairs[0])[1] in ([20, 21, 22], [22], [20, 21])


def test_truncation_trims_the_longer_side_from_both_ends():
    fronts = collections.Counter()
    for s in range(400):
        pair = pt.truncate_pair(pt.Pair(0, 100, 100, 30, True), 50, random.Random(s))
        # A is cut to B's length, then B on ties, then the longer side again, alternately.
        assert (pair.a_len, pair.b_len, pair.is_random_next) == (25, 25, True)
        assert 0 <= pair.a_start <= 75 and 100 <= pair.b_start <= 105
        fronts["front"] += pair.a_start > 0
        fronts["back"] += pair.a_start + 25 < 100
        fronts[pair.a_start] += 1
    assert fronts["front"] == fronts["back"] == 400  # 75 cuts from A: surely some from each end
    mean = sum(k * n for k, n in fronts.items() if isinstance(k, int)) / 400
    assert abs(mean - 37.5) < 4 * np.sqrt(75 / 4 / 400)  # cuts from the front: Binomial(75, 1/2)
    assert pt.truncate_pair(pt.Pair(0, 3, 3, 3, False), 7, random.Random(0)) == pt.Pair(0, 3, 3, 3, False)
    odd = pt.truncate_pair(pt.Pair(0, 10, 10, 10, False), 15, random.Random(0))
    assert (odd.a_len, odd.b_len) == (8, 7)


def _random_rows(rng, n):
    """``n`` random ``[CLS] A [SEP] B [SEP]`` rows padded to 128, with their lengths and len_a."""
    ids = np.zeros((n, 128), dtype=np.int64)
    lengths, len_a = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for r in range(n):
        a = [rng.randrange(5, 255) for _ in range(rng.randint(1, 60))]
        b = [rng.randrange(5, 255) for _ in range(rng.randint(1, 60))]
        row = [INFO.cls_id, *a, INFO.sep_id, *b, INFO.sep_id]
        ids[r, :len(row)] = row
        lengths[r], len_a[r] = len(row), len(a) + 2
    return ids, lengths, len_a


def test_token_masking_rate_and_80_10_10():
    params = pt.InstanceParams(max_predictions_per_seq=20, masked_lm_prob=0.15)
    rng = random.Random(0)
    ids, lengths, len_a = _random_rows(rng, 3000)
    words = np.random.default_rng(0).integers(0, 1 << 32, (3000, pt.token_mask_words(params)), dtype=np.uint32)
    masked, positions, labels, count = pt.mask_batch(ids, lengths, len_a, words, params, INFO)
    assert positions.shape == labels.shape == (3000, 20)
    budget = np.minimum(20, np.maximum(1, np.round(lengths * 0.15)))
    assert (count == budget).all()  # token masking always fills the budget
    stats = collections.Counter()
    for r in range(3000):
        k = count[r]
        pos = positions[r, :k].tolist()
        assert pos == sorted(set(pos)) and not {0, len_a[r] - 1, lengths[r] - 1} & set(pos)
        assert (positions[r, k:] == 0).all() and (labels[r, k:] == 0).all()
        assert labels[r, :k].tolist() == ids[r, pos].tolist()
        unmasked = np.ones(128, dtype=bool)
        unmasked[pos] = False
        assert (masked[r, unmasked] == ids[r, unmasked]).all()
        for p in pos:
            stats["mask" if masked[r, p] == INFO.mask_id else "kept" if masked[r, p] == ids[r, p] else "random"] += 1
    n = count.sum()
    assert abs(stats["mask"] / n - 0.8) < 0.015
    assert abs(stats["kept"] / n - 0.1 - 1 / 255 * 0.1) < 0.012
    assert abs(stats["random"] / n - 0.1) < 0.012


def test_token_masking_chooses_uniformly_among_candidates():
    row = [INFO.cls_id, 7, 8, 9, 10, INFO.sep_id, 11, 12, 13, 14, INFO.sep_id]  # 8 candidates, 3 masked
    n = 8000
    ids = np.zeros((n, 16), dtype=np.int64)
    ids[:, :len(row)] = row
    params = pt.InstanceParams(max_seq_length=16, max_predictions_per_seq=3, masked_lm_prob=0.3)
    words = np.random.default_rng(1).integers(0, 1 << 32, (n, pt.token_mask_words(params)), dtype=np.uint32)
    _, positions, _, count = pt.mask_batch(ids, np.full(n, len(row)), np.full(n, 6), words, params, INFO)
    assert (count == 3).all()
    hits = np.bincount(positions.ravel(), minlength=16)
    expected = n * 3 / 8
    assert all(abs(hits[p] - expected) < 5 * np.sqrt(expected) for p in (1, 2, 3, 4, 6, 7, 8, 9))
    assert hits[[0, 5, 10, 11]].sum() == 0


def test_whole_word_and_ngram_masking_mask_whole_words():
    continuation = INFO.continuation
    rng = random.Random(5)
    for ngram in (None, 3):
        params = pt.InstanceParams(do_whole_word_mask=True, max_ngram_size=ngram, masked_lm_prob=0.2)
        for _ in range(600):
            ids = [INFO.cls_id, *(rng.randrange(5, 255) for _ in range(rng.randint(1, 60))), INFO.sep_id,
                   *(rng.randrange(5, 255) for _ in range(rng.randint(1, 60))), INFO.sep_id]
            special = frozenset((0, ids.index(INFO.sep_id), len(ids) - 1))
            positions, values = pt.mask_whole_words(ids, special, params, INFO, rng)
            budget = min(params.max_predictions_per_seq, max(1, round(len(ids) * params.masked_lm_prob)))
            assert positions == sorted(set(positions)) and len(positions) <= budget and len(values) == len(positions)
            assert not special & set(positions)
            chosen = set(positions)
            for p in positions:
                if continuation[ids[p]] and p - 1 not in (0,) and ids[p - 1] != INFO.sep_id:
                    assert p - 1 in chosen  # a ## piece is masked only with the piece before it
                if p + 1 < len(ids) and continuation[ids[p + 1]]:
                    assert p + 1 in chosen


def test_budget_rounds_half_to_even_like_python():
    params = pt.InstanceParams(max_predictions_per_seq=100, masked_lm_prob=0.25)
    cases = ((10, 2), (14, 4), (6, 2), (18, 4), (5, 1))
    ids = np.zeros((len(cases), 128), dtype=np.int64)
    for r, (n_tokens, _) in enumerate(cases):
        ids[r, :n_tokens] = [INFO.cls_id, 7, INFO.sep_id, *([7] * (n_tokens - 4)), INFO.sep_id]
    words = np.random.default_rng(0).integers(0, 1 << 32, (len(cases), pt.token_mask_words(params)), dtype=np.uint32)
    _, _, _, count = pt.mask_batch(ids, np.array([n for n, _ in cases]), np.full(len(cases), 3), words, params, INFO)
    assert count.tolist() == [expected for _, expected in cases]


# --- batches of instances and their encoding ------------------------------------------------------


def test_spec_encode_batch_equals_encode():
    for v2, dynamic in ((False, False), (True, False), (False, True)):
        spec = specs.pretraining_spec(48, 7, v2_names=v2, dynamic_masking=dynamic)
        rng = np.random.default_rng(0)
        columns = {}
        for f in spec.features:
            if f.dtype == specs.INT64:
                high = int(rng.choice([2, 128, 300, 20000, 300000, 2**34, 2**62]))
                columns[f.name] = rng.integers(-5 if high == 2**62 else 0, high, size=(300, f.length))
            else:
                columns[f.name] = rng.random((300, f.length)).astype(np.float32)
        got = spec.encode_batch(columns)
        assert got == [spec.encode({k: v[r].tolist() for k, v in columns.items()}) for r in range(300)]
    assert spec.encode_batch({k: v[:0] for k, v in columns.items()}) == []
    with pytest.raises(specs.SpecError):
        spec.encode_batch({"input_ids": columns["input_ids"]})
    with pytest.raises(specs.SpecError):
        specs.TRANSLATION_PAIRS.encode_batch({f.name: [b"x"] for f in specs.TRANSLATION_PAIRS.features})


def _batch_records(params, spec, pool, groups):
    """Records of ``groups`` (lists of document indexes) added to one batch each."""
    out = []
    for group in groups:
        batch = pt.InstanceBatch(params, INFO, spec)
        for index in group:
            for p in range(2):
                rng = random.Random(index * 10 + p)
                batch.add(pool, pt.create_segment_pairs(pool, index, params, rng), rng)
        out.extend(batch.encode(pool))
    return out


@pytest.mark.parametrize("v2,dynamic,whole_word", [(False, False, False), (True, False, True), (False, True, False)])
def test_instance_batches_encode_what_they_were_given_whatever_the_batching(v2, dynamic, whole_word):
    rng = random.Random(2)
    docs = [_doc(rng, rng.randint(1, 12)) for _ in range(12)]
    docs[3] = [[rng.randrange(5, 250) for _ in range(9)] for _ in range(6)]  # ## pieces for whole words
    pool = pt.Pool.from_sentences(docs)
    params = pt.InstanceParams(max_seq_length=48, max_predictions_per_seq=7, dynamic_masking=dynamic,
                               do_whole_word_mask=whole_word)
    spec = specs.pretraining_spec(48, 7, v2_names=v2, dynamic_masking=dynamic)
    records = _batch_records(params, spec, pool, [range(12)])
    assert sorted(records) == sorted(_batch_records(params, spec, pool, [[i] for i in range(12)]))
    assert len({key for key, _ in records}) == len(records) and all(len(key) == 8 for key, _ in records)
    ids_name, seg_name = ("input_word_ids", "input_type_ids") if v2 else ("input_ids", "segment_ids")
    pairs = [pair for i in range(12) for p in range(2)
             for pair in pt.create_segment_pairs(pool, i, params, random.Random(i * 10 + p))]
    assert len(pairs) == len(records)
    for pair, (_, data) in zip(pairs, records, strict=True):
        a, b = _tokens(pool, pair)
        original = [INFO.cls_id, *a, INFO.sep_id, *b, INFO.sep_id]
        n, pad = len(original), 48 - len(original)
        parsed = _parse(spec, data)
        assert parsed[seg_name] == [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * pad
        if dynamic:
            assert parsed[ids_name] == original + [0] * pad
            continue
        k = int(sum(parsed["masked_lm_weights"]))
        positions = parsed["masked_lm_positions"][:k]
        assert k == min(7, max(1, round(n * 0.15))) or whole_word
        assert positions == sorted(set(positions)) and not {0, len(a) + 1, n - 1} & set(positions)
        assert parsed["masked_lm_ids"][:k] == [original[p] for p in positions]
        restored = list(parsed[ids_name])
        for p, v in zip(positions, parsed["masked_lm_ids"], strict=False):
            restored[p] = v
        assert restored == original + [0] * pad
        assert parsed["input_mask"] == [1] * n + [0] * pad
        assert parsed["next_sentence_labels"] == [int(pair.is_random_next)]
        assert parsed["masked_lm_weights"] == [1.0] * k + [0.0] * (7 - k)


def test_masking_everything_with_more_predictions_than_positions():
    """masked_lm_prob 1 masks every position but [CLS] and the two [SEP], and
    max_predictions_per_seq above max_seq_length pads the rest."""
    rng = random.Random(0)
    docs = [_doc(rng, rng.randint(1, 6), 1, 6) for _ in range(5)]
    pool = pt.Pool.from_sentences(docs)
    params = pt.InstanceParams(max_seq_length=16, max_predictions_per_seq=20, masked_lm_prob=1.0)
    spec = specs.pretraining_spec(16, 20)
    records = _batch_records(params, spec, pool, [range(5)])
    assert records
    for _, data in records:
        parsed = _parse(spec, data)
        n, k = sum(parsed["input_mask"]), int(sum(parsed["masked_lm_weights"]))
        first_b = parsed["segment_ids"].index(1)
        assert parsed["masked_lm_positions"] == sorted(set(range(1, n - 1)) - {first_b - 1}) + [0] * (20 - k)


def _parse(spec, data):
    """A record's values by feature, decoded with protobuf (independent of our encoder)."""
    from tensorflow.core.example import example_pb2

    feats = example_pb2.Example.FromString(data).features.feature
    assert data == example_pb2.Example.FromString(data).SerializeToString(deterministic=True)
    return {f.name: list(feats[f.name].float_list.value if f.dtype == specs.FLOAT32 else feats[f.name].int64_list.value)
            for f in spec.features}


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

    dofn = reading._ParseExampleDocuments("text", "lang", re.compile(r"/(\w+)\.tfrecord$"))
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

    out, tallies = _process(tlm._ParsePairs(), ("p", pair("Hello.", "Hallo.")), ("p", pair("x", " ")),
                            ("p", specs.encode_example({"src_raw": (specs.BYTES, "only")})))
    assert [o[2:] for o in out if isinstance(o, tuple)] == [("Hello.", "Hallo.", "en", "de")]
    assert tallies == {("in", ""): 3, ("out", ""): 1, ("filtered", "empty_side"): 1,
                       ("dead_lettered", "missing_text_feature"): 1}
