"""The trainer's side of ``specs.vocabulary``: a vocabulary file's casing, two files compared, the
vocabulary a data section is read with (checked against what the data's spec records) and its special
ids."""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

import specs
from specs import vocabulary as sv
from specs.errors import ConfigError
from trainer.text.tokenization import SpecialTokens, load_vocab

DEFAULT_SPECIAL = SpecialTokens(vocab_size=0, padding_id=sv.BERT_SPECIAL_IDS["pad"],
                                start_of_sequence_id=sv.BERT_SPECIAL_IDS["cls"],
                                end_of_segment_id=sv.BERT_SPECIAL_IDS["sep"], mask_id=sv.BERT_SPECIAL_IDS["mask"],
                                unknown_id=sv.BERT_SPECIAL_IDS["unk"])



def uncased_vocabulary(vocab_file: str) -> bool:
    """True when no token of the vocabulary (besides ``[...]`` specials) has an upper-case letter: text must
    be lower-cased for it (Google's uncased vocabularies; cased ones hold thousands of such tokens)."""
    with tf.io.gfile.GFile(vocab_file) as f:
        return not any(t.strip() != t.strip().lower() for t in f if not t.startswith("["))


def same_file(a: str, b: str) -> bool:
    with tf.io.gfile.GFile(a, "rb") as fa, tf.io.gfile.GFile(b, "rb") as fb:
        return fa.read() == fb.read()


def special_tokens(data_cfg: Any, found: specs.FeatureSpec, where: str, key: str) -> SpecialTokens:
    """The special ids of the records: from ``vocab_file`` (checked against the data's recorded
    vocabulary and casing), else as the data's spec records them."""
    vocab = data_vocabulary(data_cfg, found.params, where, key)
    if vocab is not None:
        return SpecialTokens.from_vocabulary(vocab)
    ids = found.params.get("special_ids")
    if not ids:
        return DEFAULT_SPECIAL
    return SpecialTokens(int(found.params.get("vocab_size", 0)), ids["pad"], ids["cls"], ids["sep"], ids["mask"],
                         ids.get("unk", DEFAULT_SPECIAL.unknown_id))


def data_vocabulary(data_cfg: Any, params: dict[str, Any], where: str, key: str, vocab_file: str = "",
                    lower_case: bool | None = None) -> sv.Vocabulary | None:
    """The vocabulary (with its casing) a run uses with the data at ``where``: ``vocab_file`` and
    ``lower_case`` if given, else the data config's, the casing defaulting to what the data's spec
    records (cased when it records none). A setting that contradicts the data stops with one line;
    ``None`` when no vocabulary file is named."""
    explicit = lower_case if lower_case is not None else data_cfg.lower_case
    lower = sv.resolve_lower_case(explicit, params, f"{key}.lower_case", where)
    path = vocab_file or data_cfg.vocab_file
    if not path:
        return None
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"{key}.vocab_file {path} does not exist")
    vocab = load_vocab(path, bool(lower))
    vocab.check(params, where)
    return vocab


def find_vocab(data_cfg: Any, files: list[str], key: str) -> str:
    """The vocabulary to tokenise with: ``vocab_file``, else a ``vocab.txt`` next to the data."""
    if data_cfg.vocab_file:
        if not tf.io.gfile.exists(data_cfg.vocab_file):
            raise ConfigError(f"{key}.vocab_file {data_cfg.vocab_file} does not exist")
        return data_cfg.vocab_file
    beside = os.path.join(os.path.dirname(files[0]), "vocab.txt")
    if tf.io.gfile.exists(beside):
        return beside
    raise ConfigError(f"{key}.vocab_file is not set and there is no vocab.txt next to the data in "
                      f"{os.path.dirname(files[0])}")


