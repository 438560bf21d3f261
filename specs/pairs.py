"""Raw text pairs (or triplets) for the dual encoder, and the translation pairs' spec."""

from __future__ import annotations

from specs.errors import SpecError
from specs.example_codec import BYTES
from specs.feature_spec import Feature, FeatureSpec


def text_pair_spec(num_texts: int = 2, with_langs: bool = False, name: str = "text_pairs") -> FeatureSpec:
    """Raw text pairs (or triplets) for the dual encoder: ``src_raw`` anchor, ``tgt_raw`` positive,
    ``neg_raw`` an optional hard negative; LaBSE's published format for translation pairs."""
    if num_texts not in (2, 3):
        raise SpecError(f"text pairs have 2 or 3 texts, not {num_texts}")
    feats = [Feature("src_raw", BYTES, (), "anchor text, UTF-8"), Feature("tgt_raw", BYTES, (), "positive text, UTF-8")]
    if num_texts == 3:
        feats.append(Feature("neg_raw", BYTES, (), "hard-negative text, UTF-8"))
    if with_langs:
        feats += [Feature("src_lang", BYTES, (), "language code of src_raw"),
                  Feature("tgt_lang", BYTES, (), "language code of tgt_raw")]
    return FeatureSpec(name, tuple(feats), {"num_texts": num_texts})


TRANSLATION_PAIRS = text_pair_spec(2, with_langs=True, name="translation_pairs")
