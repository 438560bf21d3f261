"""Raw text pairs (or triplets) for the dual encoder, and the translation pairs' spec."""

from __future__ import annotations

from specs.errors import SpecError
from specs.example_codec import BYTES, FLOAT32
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


TEACHER_EMBEDDING = "teacher_embedding"


def distillation_pairs_spec(teacher_dim: int, teacher: str = "", teacher_language: str = "eng") -> FeatureSpec:
    """Translation pairs with the teacher encoder's embedding of the pair's ``teacher_language`` side, for
    multilingual distillation (Reimers & Gurevych, 2020): the student learns to map both sides onto it.
    ``teacher`` names the encoder (its export), recorded so a reader knows what it distils."""
    if teacher_dim < 1:
        raise SpecError(f"a teacher embedding has at least one dimension, not {teacher_dim}")
    feats = (*TRANSLATION_PAIRS.features,
             Feature(TEACHER_EMBEDDING, FLOAT32, (teacher_dim,),
                     f"the teacher's sentence embedding of the {teacher_language} side"))
    return FeatureSpec("distillation_pairs", feats, {"num_texts": 2, "teacher_dim": teacher_dim, "teacher": teacher,
                                                     "teacher_language": teacher_language})
