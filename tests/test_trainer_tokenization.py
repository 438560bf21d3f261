"""The trainer's in-graph tokenisation on real vocabularies and Tatoeba lines."""

import pytest
import tensorflow as tf

import specs
from specs.vocabulary import Vocabulary
from trainer.text.tokenization import BertTokenization, SpecialTokens, load_vocab, pack_inputs


@pytest.fixture(scope="module")
def mbert(shared_data):
    return str(shared_data / "vocab" / "bert-base-multilingual-cased.vocab.txt")


@pytest.fixture(scope="module")
def mbert_fast(mbert):
    """Built once: the 119,547-token vocabulary takes a few seconds to compile."""
    return BertTokenization(mbert, lower_case=False)


@pytest.fixture(scope="module")
def tatoeba_lines(shared_data):
    root = shared_data / "translation" / "laser_tatoeba_v1"
    lines = []
    for name in ("tatoeba.deu-eng.deu", "tatoeba.cmn-eng.cmn", "tatoeba.rus-eng.rus", "tatoeba.deu-eng.eng"):
        lines += (root / name).read_text(encoding="utf-8").splitlines()[:300]
    return lines


def test_special_tokens_and_words_from_the_real_vocab(mbert, mbert_fast):
    tok = mbert_fast
    assert tok.special.as_dict() == {"vocab_size": 119547, "padding_id": 0, "start_of_sequence_id": 101,
                                     "end_of_segment_id": 102, "mask_id": 103}
    vocab = load_vocab(mbert, False).tokens
    ids = tok.tokenize_flat(["Hello world", ""]).to_list()
    assert [vocab[i] for i in ids[0]] == ["Hello", "world"] and ids[1] == []
    with pytest.raises(specs.SpecError, match=r"lacks \[MASK\]"):
        Vocabulary(("[PAD]", "[CLS]", "[SEP]", "[UNK]"), False)


@pytest.mark.slow
def test_word_structure_matches_the_flat_ids_and_table_implementation(mbert, mbert_fast, tatoeba_lines):
    fast = mbert_fast
    table = BertTokenization(mbert, lower_case=False, implementation="table")
    words = fast.tokenize(tatoeba_lines)
    assert words.ragged_rank == 2 and words.dtype == tf.int32
    assert words.merge_dims(-2, -1).to_list() == fast.tokenize_flat(tatoeba_lines).to_list()
    # Both implementations split words by the reference's rules (U+00A0 is whitespace, as in the
    # reference), so they agree on every line.
    assert any("\u00a0" in s for s in tatoeba_lines)
    assert fast.tokenize(tatoeba_lines).to_list() == table.tokenize(tatoeba_lines).to_list()
    vocab = load_vocab(mbert, False).tokens
    first = fast.tokenize(["Unbelievably fine."]).to_list()[0]
    assert all(not vocab[w[0]].startswith("##") and all(vocab[p].startswith("##") for p in w[1:]) for w in first)


def test_lower_case_flag(shared_data):
    uncased = BertTokenization(str(shared_data / "vocab" / "bert-base-uncased.vocab.txt"), lower_case=True)
    cased = BertTokenization(str(shared_data / "vocab" / "bert-base-cased.vocab.txt"), lower_case=False)
    assert uncased.tokenize_flat(["HELLO Café"]).to_list() == uncased.tokenize_flat(["hello cafe"]).to_list()
    assert cased.tokenize_flat(["Hello"]).to_list() != cased.tokenize_flat(["hello"]).to_list()


def test_packing_layout_trimming_and_padding():
    special = SpecialTokens(vocab_size=10, padding_id=0, start_of_sequence_id=1, end_of_segment_id=2, mask_id=3,
                            unknown_id=4)
    a = tf.ragged.constant([[5, 6, 7, 8, 9], [5]], tf.int32)
    b = tf.ragged.constant([[[7], [8, 9]], [[6]]], tf.int32)
    out = pack_inputs([a, b], 8, special)
    # 8 - 3 specials = 5 tokens; round-robin keeps 3 of a and 2 of b in the first row.
    assert out["input_word_ids"].numpy().tolist() == [[1, 5, 6, 7, 2, 7, 8, 2], [1, 5, 2, 6, 2, 0, 0, 0]]
    assert out["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0]]
    assert out["input_mask"].numpy().tolist() == [[1] * 8, [1] * 5 + [0] * 3]
    single = pack_inputs([a], 4, special, out_dtype=tf.int64)
    assert single["input_word_ids"].dtype == tf.int64
    assert single["input_word_ids"].numpy().tolist() == [[1, 5, 6, 2], [1, 5, 2, 0]]


def test_call_traces_with_a_tensor_seq_length(mbert_fast):
    tok = mbert_fast

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32)])
    def encode(s, n):
        return tok(s, s, seq_length=n)

    out = encode(tf.constant(["Hallo Welt", "x"]), tf.constant(6))
    assert out["input_word_ids"].shape == (2, 6)
    eager = tok(["Hallo Welt", "x"], ["Hallo Welt", "x"], seq_length=6)
    assert out["input_word_ids"].numpy().tolist() == eager["input_word_ids"].numpy().tolist()
