"""One tokenisation everywhere: the Beam engine, the in-graph engine (both implementations) and a
freshly exported TF Hub preprocessing model give the ids of Model Garden's reference
``FullTokenizer`` (``official/nlp/tools/tokenization.py``) on every FLORES devtest language and
WikiText, for an uncased, a cased and the multilingual cased vocabulary.

The preprocessing model is exported once (uncased vocabulary) and loaded from disk; the other two
vocabularies are checked through ``BertTokenization`` directly, which is what that export wraps.
"""

from __future__ import annotations

import collections

import pytest
import tensorflow as tf

from specs.vocabulary import Vocabulary
from trainer.text.tokenization import BertTokenization
from transforms.text.bert_tokenization import BertTokenizer

LINES_PER_FILE = 100
VOCABS = (("bert-base-uncased", True), ("bert-base-cased", False), ("bert-base-multilingual-cased", False))


@pytest.fixture(scope="module")
def corpus(shared_data) -> list[tuple[str, str]]:
    """(language, line): the first lines of each of the 34 FLORES devtest files and of WikiText-2."""
    out = []
    files = sorted((shared_data / "translation" / "flores200_devtest").glob("*.devtest"))
    assert len(files) == 34
    for path in files:
        out += [(path.stem, line) for line in path.read_text(encoding="utf-8").splitlines()[:LINES_PER_FILE]]
    wiki = (shared_data / "text" / "wikitext-2" / "wiki.test.tokens.txt").read_text(encoding="utf-8").splitlines()
    out += [("wikitext", line) for line in wiki if line.strip()][:LINES_PER_FILE]
    return out


def _batched(fn, lines: list[str], size: int = 512) -> list[list[int]]:
    out: list[list[int]] = []
    for i in range(0, len(lines), size):
        out += fn(lines[i:i + size])
    return out


def _differing(want: list[list[int]], got: list[list[int]], corpus) -> collections.Counter:
    return collections.Counter(lang for (lang, _), a, b in zip(corpus, want, got, strict=True) if a != b)


@pytest.mark.slow
@pytest.mark.parametrize("name,lower", VOCABS)
def test_beam_graph_and_export_equal_the_reference(name, lower, corpus, shared_data, model_garden, tmp_path):
    from official.nlp.tools import tokenization as reference

    path = str(shared_data / "vocab" / f"{name}.vocab.txt")
    lines = [line for _, line in corpus]
    oracle = reference.FullTokenizer(path, do_lower_case=lower)
    want = [oracle.convert_tokens_to_ids(oracle.tokenize(line)) for line in lines]
    vocab = Vocabulary.load(path, lower)

    beam = BertTokenizer(vocab)
    assert not _differing(want, [a.tolist() for a in beam.tokenize_batch(lines)], corpus)

    for implementation in ("fast", "table"):
        graph = BertTokenization(vocab, implementation=implementation)
        tokenize = tf.function(graph.tokenize_flat)
        got = _batched(lambda b, f=tokenize: f(tf.constant(b)).to_list(), lines)
        assert not _differing(want, got, corpus), implementation

    if name == "bert-base-uncased":
        from trainer.export.preprocessing import save_preprocessing

        save_preprocessing(str(tmp_path / "preprocessing"), path, lower)
        exported = tf.saved_model.load(str(tmp_path / "preprocessing"))
        got = _batched(lambda b: exported.tokenize(tf.constant(b)).merge_dims(-2, -1).to_list(), lines)
        assert not _differing(want, got, corpus)
        assert bool(exported.do_lower_case.numpy()) is True
        assert {k: int(v) for k, v in exported.tokenize.get_special_tokens_dict().items()} == \
            vocab.hub_special_tokens()


@pytest.mark.slow
def test_the_reference_character_rules_on_hard_lines(model_garden, shared_data):
    """Lines built to hit every rule: zero-width (non-)joiners, control and format characters, NUL,
    U+FFFD, exotic spaces, ASCII symbols, CJK and compatibility ideographs, accents, final sigma (also
    across a deleted joiner and before punctuation), dotted capital I, a 401-character word, a
    200-character word of 3-byte letters (over the fast path's byte limit), unassigned code points."""
    from official.nlp.tools import tokenization as reference

    hard = [
        "می\u200cخواهم\u200c ها کتاب\u200cهای", "నేను\u200cను ఇది", "a\u200db\ufeffc\x00d\ufffde\x7ff",
        "x\u00a0y\u3000z\u2028w\u2029v\u1680u\u202ft\tx\ry", "$5^2 `a`|b~c <d> @e {f}", "東京は日本の首都です。豈更",
        "Café naïve ÅNGSTRÖM Ωμέγα", "ΟΔΟΣ. ΑΣΒ Σ ΑΣ\u200dΒ ΑΣ\u0301 ΑΣ'Β ΑΣ\x01Β ΣΑΣ", "İstanbul ǅemal ß ﬁ",
        "a" * 401 + " b", "ก" * 200 + " ข" * 3, "x\U000e0001y \U0001F600 \u0378z \U000323AFw", "",
        "\u0e01\u0e34\u0e19 \u17a2\u17b6\u1785", "\U0001D165\U0001D16D music", "\u1fef\u0387 greek",
    ]
    for name, lower in VOCABS:
        path = str(shared_data / "vocab" / f"{name}.vocab.txt")
        oracle = reference.FullTokenizer(path, do_lower_case=lower)
        want = [oracle.convert_tokens_to_ids(oracle.tokenize(line)) for line in hard]
        vocab = Vocabulary.load(path, lower)
        assert [a.tolist() for a in BertTokenizer(vocab).tokenize_batch(hard)] == want, name
        for implementation in ("fast", "table"):
            got = BertTokenization(vocab, implementation=implementation).tokenize_flat(hard).to_list()
            assert got == want, (name, implementation, [i for i, (a, b) in enumerate(zip(want, got, strict=True))
                                                        if a != b])


def test_vocabulary_fingerprint_and_checks(tmp_path):
    import specs

    (tmp_path / "a.txt").write_bytes(b"[PAD]\r\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello \n")
    (tmp_path / "b.txt").write_bytes(b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello")
    a, b = Vocabulary.load(str(tmp_path / "a.txt"), True), Vocabulary.load(str(tmp_path / "b.txt"), True)
    assert a.tokens == b.tokens and a.fingerprint == b.fingerprint and a.fingerprint.startswith("sha256:")
    assert a.params()["special_ids"] == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    a.check(b.params(), "data")
    with pytest.raises(specs.SpecError, match="do_lower_case=True, but this run uses False"):
        Vocabulary(a.tokens, False).check(a.params(), "data")
    with pytest.raises(specs.SpecError, match="vocab_fingerprint"):
        Vocabulary((*a.tokens, "world"), True).check(a.params(), "data")


def test_trainer_and_export_take_the_datas_casing_and_stop_on_a_contradiction(tmp_path, shared_data):
    import specs
    from specs.errors import ConfigError
    from trainer import plan

    uncased = str(shared_data / "vocab" / "bert-base-uncased.vocab.txt")
    vocab = Vocabulary.load(uncased, True)
    spec = specs.pretraining_spec(128, 20, tokenization=vocab.params())
    (tmp_path / specs.SCHEMA_FILE).write_text(spec.to_schema_text())
    (tmp_path / specs.SPEC_FILE).write_text(spec.to_json())
    (tmp_path / "pretrain-00000-of-00001.tfrecord").write_bytes(b"")

    def cfg(**kw):
        settings = {"input_path": str(tmp_path / "*.tfrecord"), "vocab_file": uncased, "allow_incomplete": "true",
                    **kw}
        return plan.load_config("bert/pretraining", params_override=",".join(
            f"task.train_data.{k}={v}" for k, v in settings.items()))

    # start-up decides the run's vocabulary and casing once and writes them into the config (params.yaml)
    got = plan.resolve_vocabulary(cfg()).task.train_data
    assert got.lower_case is True and got.vocab_file == uncased
    assert plan.export_vocabulary("", cfg()) == (uncased, True)
    with pytest.raises(specs.SpecError, match=r"task\.train_data\.lower_case=false contradicts"):
        plan.resolve_vocabulary(cfg(lower_case="false"))
    with pytest.raises(ConfigError, match=r"do_lower_case=false but .* is an uncased vocabulary"):
        plan.export_vocabulary("", cfg(), "", "false")
    cased = str(shared_data / "vocab" / "bert-base-cased.vocab.txt")
    with pytest.raises(specs.SpecError, match="vocab_fingerprint"):
        plan.resolve_vocabulary(cfg(vocab_file=cased))
