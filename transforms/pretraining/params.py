"""What instance making and masking are given: the reference's parameters and the vocabulary's ids (no Beam)."""

from __future__ import annotations

import dataclasses

from specs.vocabulary import Vocabulary


@dataclasses.dataclass(frozen=True)
class InstanceParams:
    """The reference's instance and masking parameters (same names, same meanings)."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    do_whole_word_mask: bool = False
    max_ngram_size: int | None = None
    dynamic_masking: bool = False

    @property
    def max_num_tokens(self) -> int:
        return self.max_seq_length - 3


@dataclasses.dataclass(frozen=True)
class VocabInfo:
    """What masking and encoding need from the vocabulary."""

    size: int
    cls_id: int
    sep_id: int
    mask_id: int
    continuation: tuple[bool, ...]  # per id: a "##" piece (joins the word before it)

    @classmethod
    def from_vocabulary(cls, vocab: Vocabulary) -> VocabInfo:
        return cls(vocab.size, vocab.cls_id, vocab.sep_id, vocab.mask_id,
                   tuple(t.startswith("##") for t in vocab.tokens))
