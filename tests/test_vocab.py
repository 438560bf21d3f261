"""WordPiece vocabulary learning: BERT pre-tokenisation parity, the learner wrapper, the pipeline on real
English and multilingual text (held-out [UNK] rate), language smoothing, accounting and determinism."""

from __future__ import annotations

import collections
import gzip
import json
import pathlib
import random
import unicodedata

import pytest

from pipelines import vocab as vocab_pipeline
from specs.errors import ConfigError
from transforms import vocab as wp
from transforms.core import runtime

# --- an independent, literal implementation of BERT's BasicTokenizer (tokenization.py's algorithm,
# character by character), the yardstick for pre_tokenize --------------------------------------


def _ref_is_whitespace(c: str) -> bool:
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def _ref_is_control(c: str) -> bool:
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf")


def _ref_is_punctuation(c: str) -> bool:
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def _ref_is_cjk(cp: int) -> bool:
    return any(a <= cp <= b for a, b in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                          (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF),
                                          (0x2F800, 0x2FA1F)])


def ref_basic_tokenize(text: str, lower: bool) -> list[str]:
    cleaned = []
    for c in text:
        if ord(c) in (0, 0xFFFD) or _ref_is_control(c):
            continue
        cleaned.append(" " if _ref_is_whitespace(c) else c)
    spaced = []
    for c in cleaned:
        spaced.extend([" ", c, " "] if _ref_is_cjk(ord(c)) else [c])
    out = []
    for token in "".join(spaced).strip().split():
        if lower:
            token = "".join(c for c in unicodedata.normalize("NFD", token.lower()) if unicodedata.category(c) != "Mn")
        current: list[str] = []
        for c in token:
            if _ref_is_punctuation(c):
                if current:
                    out.append("".join(current))
                    current = []
                out.append(c)
            else:
                current.append(c)
        if current:
            out.append("".join(current))
    return out


def ref_wordpiece(word: str, vocab: set[str]) -> list[str]:
    if len(word) > 200:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = ("##" if start else "") + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            return ["[UNK]"]
    return pieces


def unk_words(lines: list[str], vocab: set[str], lower: bool) -> tuple[list[str], int]:
    """The words BERT's full tokenizer (basic, then WordPiece) turns into [UNK], and the word count."""
    words, unk = 0, []
    for line in lines:
        for w in ref_basic_tokenize(line, lower):
            words += 1
            if ref_wordpiece(w, vocab) == ["[UNK]"]:
                unk.append(w)
    return unk, words


ADVERSARIAL = [
    "", "   ", "\t\n", "a\x00b\ufffdc", "zero\u200bwidth\u200djoiner", "\ufeffBOM first", "tab\there\x0bvt\x0cff",
    "ΟΔΟΣ ΚΑΙ ΣΟΦΙΑΣ.", "Straße ﬁne Ｆｕｌｌｗｉｄｔｈ ＡＢＣ！", "İstanbul ıI", "e\u0301 \u0301alone",
    "Grüße, naïve café",
    "日本語のテキスト、漢字かな交じり。", "中文（简体）测试：你好！", "한국어 문장입니다.", "ภาษาไทยไม่มีช่องว่าง",
    "\u1fefvaria `tick`", "¿Qué? ¡Sí!", "a\u2028b\u2029c\u00a0d\u3000e", "x\x1cy\x85z", "𠀀𪜀 ext-b", "١٢٣ ٪ ؟",
    "emoji 😀👍🏽 ok", "don't stop-believing... (really)", "C++/C# & <html>", "µ ½ ² ™ ©", "\U0002f800 compat",
    "ǅ ǈ titlecase", "ß".upper(), "ﬀ ﬃ ligatures",
]


def _sample_lines(shared: pathlib.Path, every: int) -> list[str]:
    lines = []
    files = [*sorted((shared / "text").rglob("*.txt")),
             *sorted((shared / "translation/flores200_devtest").glob("*.devtest"))]
    for f in files:
        raw = f.read_bytes().split(b"\n")
        lines += [wp.decode_line(x) for x in raw[::every]]
    return lines


def test_pre_tokenize_equals_bert_basic_tokenizer(shared_data):
    lines = _sample_lines(shared_data, 20) + ADVERSARIAL
    rng = random.Random(5)
    pool = "".join(set("".join(lines)))
    lines += ["".join(rng.choice(pool) for _ in range(40)) for _ in range(300)]  # random mixtures of all scripts
    assert len(lines) > 2000
    for lower in (True, False):
        diffs = [line for line in lines if wp.pre_tokenize(line, lower) != ref_basic_tokenize(line, lower)]
        assert diffs == [], (lower, diffs[:3])


def test_pre_tokenize_examples():
    assert wp.pre_tokenize("Héllo, WORLD! 日本語", True) == ["hello", ",", "world", "!", "日", "本", "語"]
    assert wp.pre_tokenize("Héllo, WORLD!", False) == ["Héllo", ",", "WORLD", "!"]
    assert wp.pre_tokenize("a\x00b c\u200bd", False) == ["ab", "cd"]
    assert wp.decode_line(b"ok\xff\xfe ok") == "ok ok"


def test_wordpiece_split_is_greedy_longest_match():
    vocab = {"un", "##aff", "##able", "a", "##f", "##ff"}
    assert wp.wordpiece_split("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wp.wordpiece_split("unx", vocab) is None
    assert wp.wordpiece_split("a" * 401, {"a", "##a"}) is None
    assert wp.wordpiece_split("a" * 400, {"a", "##a"}) == ["a"] + ["##a"] * 399


def test_reserved_tokens_give_bert_special_ids_and_reject_duplicates():
    tokens = wp.reserved_tokens(99, ["<S>", "<T>"])
    ids = [tokens.index(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<S>")]
    assert ids == [0, 100, 101, 102, 103, 104]
    with pytest.raises(ConfigError, match="duplicates"):
        wp.reserved_tokens(3, ["[MASK]"])
    with pytest.raises(ConfigError, match="vocab_size=300 leaves 196"):
        wp.LearnerConfig(300, tuple(tokens[:104]), 99, True).validate()


def test_language_weights_give_shares_proportional_to_size_pow_alpha():
    sizes = {"en": 1_000_000, "de": 100_000, "sw": 1_000}
    for alpha in (1.0, 0.7, 0.3, 0.0):
        w = wp.language_weights(sizes, alpha)
        assert w["en"] == 1.0 and all(x >= 1.0 for x in w.values())
        total = sum(sizes[k] * w[k] for k in sizes)
        norm = sum(n ** alpha for n in sizes.values())
        for k, n in sizes.items():
            assert sizes[k] * w[k] / total == pytest.approx(n ** alpha / norm)
    assert wp.weighted_count(3, 1.5) == 4 and wp.weighted_count(1, 1.0) == 1


def test_parse_jsonl_record_names_each_problem():
    assert wp.parse_jsonl_record(b'{"text": "hi", "lang": "en"}', "text", "lang", "und") == ("en", "hi")
    assert wp.parse_jsonl_record(b'{"text": "hi"}', "text", "lang", "und") == ("und", "hi")
    for line, reason in [(b"{bad", "invalid_json"), (b"[1]", "not_an_object"), (b'{"t": 1}', "missing_text_field"),
                         (b'{"text": 5}', "text_not_a_string"), (b'{"text": "x", "lang": 3}', "language_not_a_string"),
                         (b'{"text": "\xff"}', "invalid_json")]:
        with pytest.raises(wp.BadRecordError) as e:
            wp.parse_jsonl_record(line, "text", "lang", "und")
        assert e.value.reason == reason


def _word_counts(paths: list[pathlib.Path], lower: bool) -> list[tuple[str, int]]:
    c: collections.Counter = collections.Counter()
    for p in paths:
        for raw in p.read_bytes().splitlines():
            c.update(wp.pre_tokenize(wp.decode_line(raw), lower))
    return list(c.items())


def test_learn_wordpiece_layout_size_and_order_independence(shared_data):
    counts = _word_counts([shared_data / "text/bert_sample_text.txt"], True)
    cfg = wp.LearnerConfig(vocab_size=400, reserved=tuple(wp.reserved_tokens(99)), num_unused=99, lower=True,
                           min_token_count=5)
    vocab, report = wp.learn_wordpiece(counts, cfg)
    shuffled = counts[:]
    random.Random(1).shuffle(shuffled)
    assert wp.learn_wordpiece(shuffled, cfg)[0] == vocab
    assert len(vocab) == 400 == len(set(vocab)) == report["vocab_size"]
    assert vocab[:104] == list(cfg.reserved)
    assert report["unreachable_suffixes_removed"] > 10
    assert not any(t.startswith("##") and len(t) == 3 and wp.is_isolated_char(t[2]) for t in vocab)
    learned = [t for t in vocab if not t.startswith("[")]
    assert {"the", "and", "##s", ",", "."} <= set(learned)
    # Every character of the corpus (small alphabet) is in it, so no training word becomes [UNK].
    assert all(ref_wordpiece(w, set(vocab)) != ["[UNK]"] for w, _ in counts if len(w) <= 50)
    # A corpus alphabet larger than the budget is capped, never overflowing the vocabulary.
    cjk = [(chr(0x4E00 + i), 100 + i) for i in range(400)]
    small, rep = wp.learn_wordpiece(counts, cfg, char_counts=[*cjk, ("a", 1)])
    assert len(small) == 400 and rep["alphabet_capped"] and chr(0x4E00 + 399) in small
    assert "a" not in small and rep["words_dropped_for_rare_characters"] > 0


def test_threshold_search_is_geometric_and_lands_within_slack(shared_data):
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

    counts = sorted(_word_counts([shared_data / "text/gutenberg_novels/botchan.en.txt"], True),
                    key=lambda wc: (-wc[1], wc[0]))[:800]
    params = lib.Params(int(1e7), 5, 4, -1, 50, 1000, 600, 0.05, True, "##", list(wp.reserved_tokens(99)))
    upper, lower = lib.get_search_threshs(counts, params.upper_thresh, params.lower_thresh)
    assert upper > 2000  # an arithmetic bisection needs 11 or more runs of the learner here
    vocab, steps = wp.search_threshold(counts, lower, upper, params)
    assert 570 <= len(vocab) <= 600 and steps <= 7


def _run(argv: list[str]) -> dict:
    return runtime.run_pipeline("vocab", argv, vocab_pipeline.build)


@pytest.mark.slow
def test_english_vocabulary_tokenises_held_out_text(shared_data, tmp_path):
    out = tmp_path / "out"
    summary = _run([f"--input_patterns={shared_data}/text/wikitext-2/wiki.valid.tokens.txt",
                    f"--output_dir={out}", "--vocab_size=3000", "--do_lower_case", "--max_words=1500",
                    "--min_token_count=5"])
    assert summary["balanced"]
    total = summary["stages"]["count_words"]["total"]
    assert total["in"] == 3760 and total["filtered"] == {"blank_line": 1299}
    raw = (out / "vocab.txt").read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    vocab = raw.decode("utf-8").split("\n")[:-1]
    assert len(vocab) == 3000 and vocab.index("[UNK]") == 100 and vocab.index("[MASK]") == 103
    params = json.loads((out / "vocab_params.json").read_text())
    assert params["special_ids"] == {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
    assert params["learner"]["learner_input_words"] == 1500 and params["pruning"]["cut_by_max_words"] > 0
    assert params["training_text_coverage"]["ALL"]["unk_rate"] < 0.001
    learned = [t for t in vocab if not t.startswith("[")]
    assert all(t == t.lower() for t in learned)
    # Held out: another WikiText split and a novel from another source.
    held = (shared_data / "text/wikitext-2/wiki.test.tokens.txt").read_text(encoding="utf-8").splitlines()[::4]
    held += (shared_data / "text/gutenberg_novels/botchan.en.txt").read_text(encoding="utf-8-sig").splitlines()[::4]
    unk, words = unk_words(held, set(vocab), lower=True)
    assert words > 50_000 and len(unk) / words < 0.002, unk[:20]
    # Whole words it learned are overwhelmingly words Google's uncased vocabulary also has.
    bert = set((shared_data / "vocab/bert-base-uncased.vocab.txt").read_text(encoding="utf-8").splitlines())
    whole = [t for t in learned if not t.startswith("##") and len(t) > 1]
    assert sum(t in bert for t in whole) / len(whole) > 0.9
    # The vocabulary loads into TensorFlow Text's BERT tokenizer and agrees with the reference rules.
    import tensorflow as tf
    import tensorflow_text as tf_text

    tok = tf_text.BertTokenizer(tf.lookup.StaticVocabularyTable(
        tf.lookup.KeyValueTensorInitializer(vocab, tf.range(len(vocab), dtype=tf.int64)), 1), lower_case=True)
    sample = [line for line in held[:400] if line.strip()]
    got = tok.tokenize(sample).merge_dims(-2, -1).to_list()
    index = {t: i for i, t in enumerate(vocab)}
    want = [[index[p] for w in ref_basic_tokenize(line, True) for p in ref_wordpiece(w, set(vocab))] for line in sample]
    assert sum(g == w for g, w in zip(got, want, strict=True)) / len(sample) > 0.99


@pytest.mark.slow
def test_multilingual_vocabulary_with_smoothing_dead_letters_and_held_out_flores(shared_data, tmp_path):
    train, held = tmp_path / "train", {}
    train.mkdir()
    for f in sorted((shared_data / "translation/flores200_devtest").glob("*.devtest")):
        lines = f.read_text(encoding="utf-8").splitlines()
        lang = f.name.split(".")[0]
        held[lang] = lines[900:]
        if lang in ("deu_Latn", "jpn_Jpan"):  # two languages arrive as JSONL documents instead
            continue
        # Unequal sizes, so smoothing has something to do.
        n = 600 if lang == "eng_Latn" else 300
        (train / f"{lang}.txt").write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    docs = [json.dumps({"text": " ".join(f.read_text(encoding="utf-8").splitlines()[i:i + 5]),
                        "lang": f.name.split(".")[0]}, ensure_ascii=False)
            for f in sorted((shared_data / "translation/flores200_devtest").glob("[dj][ep][un]_*.devtest"))
            for i in range(0, 300, 5)]
    bad = ['{"text": ', '["a list"]', '{"body": "no text field"}', '{"text": 7}', '', '{"text": "  "}']
    with gzip.open(train / "docs.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(docs + bad) + "\n")
    out = tmp_path / "out"
    summary = _run([f"--input_patterns={train}/*.txt", f"--input_file={train}/*.jsonl.gz", f"--output_dir={out}",
                    "--vocab_size=14000", "--alpha=0.3", "--language_field=lang",
                    r"--language_pattern=/(\w+_\w+)\.txt$", "--max_words=800", "--max_unique_chars=8000",
                    "--max_token_length=24", "--min_token_count=3"])
    assert summary["balanced"]
    scope = summary["stages"]["count_words"]["scopes"][str(train / "docs.jsonl.gz")]
    assert scope["out"] == len(docs)
    assert scope["dead_lettered"] == {"invalid_json": 1, "missing_text_field": 1, "not_an_object": 1,
                                      "text_not_a_string": 1}
    assert scope["filtered"] == {"blank_line": 1, "no_words": 1}
    letters = [json.loads(x) for p in (out / "dead_letter").iterdir() for x in gzip.open(p).read().splitlines()]
    assert sorted(d["reason"] for d in letters) == sorted(scope["dead_lettered"])
    assert all(d["line"] > len(docs) for d in letters)

    params = json.loads((out / "vocab_params.json").read_text())
    langs = params["languages"]
    assert len(langs) == 34 and "und" not in langs
    shares = {k: v["share"] for k, v in langs.items()}
    norm = sum(s ** 0.3 for s in shares.values())
    for k, v in langs.items():  # p ∝ n^alpha
        assert v["smoothed_share"] == pytest.approx(shares[k] ** 0.3 / norm, rel=1e-9)
    by_size = sorted(langs, key=lambda k: langs[k]["characters"])
    assert langs[by_size[-1]]["weight"] == 1.0
    assert langs[by_size[0]]["weight"] == max(v["weight"] for v in langs.values())

    vocab = set((out / "vocab.txt").read_text(encoding="utf-8").splitlines())
    assert len(vocab) == 14000
    seen_chars = set("".join(p.read_text(encoding="utf-8") for p in train.glob("*.txt")) + "".join(docs))
    rates = {}
    for lang, lines in held.items():
        unk, words = unk_words(lines, vocab, lower=False)
        rates[lang] = len(unk) / words
        # Held out, cased, 34 languages: a word is [UNK] only for a character the training text lacks.
        assert all(set(w) - seen_chars for w in unk), (lang, [w for w in unk if not set(w) - seen_chars][:5])
    # Ideographs and Hangul syllables are characters by the thousand; elsewhere [UNK] is rare.
    assert max(v for k, v in rates.items() if not k.startswith(("jpn", "zho", "kor"))) < 0.01, rates
    assert sum(rates.values()) / len(rates) < 0.01, rates


@pytest.mark.slow
def test_output_is_identical_across_runner_modes(shared_data, tmp_path):
    def run(name: str, extra: list[str]) -> dict[str, bytes]:
        out = tmp_path / name
        _run([f"--input_patterns={shared_data}/text/bert_sample_text.txt,{shared_data}/text/gutenberg_novels/botchan.en.txt",
              f"--output_dir={out}", "--vocab_size=400", "--max_words=300", "--min_token_count=3", *extra])
        return {f: (out / f).read_bytes() for f in ("vocab.txt", "vocab_params.json", "word_counts.tsv")}

    a = run("single", [])
    b = run("multi", ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert a == b
    assert a["vocab.txt"].decode().splitlines()[104:110] != []


@pytest.mark.parametrize(("flags", "message"), [
    (["--vocab_size=3000"], "--input_patterns is required"),
    (["--input_patterns=/nonexistent/*.txt", "--vocab_size=3000"], "no file matches '/nonexistent/"),
    (["--input_patterns=X", "--vocab_size=200"], "--vocab_size=200 leaves 96 tokens"),
    (["--input_patterns=X", "--vocab_size=3000", "--alpha=1.5"], "--alpha must be in [0, 1]"),
    (["--input_patterns=X", "--vocab_size=3000", "--language_pattern=abc"], "needs a group"),
    (["--input_patterns=X", "--vocab_size=3000", "--input_format=xml"], "--input_format must be"),
])
def test_bad_configuration_fails_with_one_line(flags, message, tmp_path, capsys, shared_data):
    flags = [f.replace("=X", f"={shared_data}/text/bert_sample_text.txt") for f in flags]
    assert runtime.main("vocab", vocab_pipeline.build, [*flags, f"--output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_no_word_reaching_the_learner_leaves_the_run_unfinished(tmp_path, capsys, shared_data):
    """Every word under --min_word_count: the text was read, but vocab.txt would hold reserved tokens only
    (every word [UNK]); exit 1 and no completion marker unless --allow_empty."""
    argv = [f"--input_patterns={shared_data}/text/bert_sample_text.txt", "--vocab_size=1000",
            "--min_word_count=1000000", f"--output_dir={tmp_path / 'out'}"]
    assert runtime.main("vocab", vocab_pipeline.build, argv) == 1
    assert not (tmp_path / "out" / "_RUN_COMPLETE.json").exists()
    assert "warning: the learner's words (word_counts.tsv: a vocabulary of reserved tokens only)" in \
        capsys.readouterr().err
