"""Raw text pairs (or triplets) for the dual encoder, and the translation pairs' spec."""

from __future__ import annotations

from specs.errors import SpecError
from specs.example_codec import BYTES, FLOAT32
from specs.feature_spec import Feature, FeatureSpec


def text_pair_spec(num_texts: int = 2, with_langs: bool = False, name: str = "text_pairs",
                   with_scores: bool = False) -> FeatureSpec:
    """Raw text pairs (or triplets) for the dual encoder: ``src_raw`` anchor, ``tgt_raw`` positive,
    ``neg_raw`` an optional hard negative; LaBSE's published format for translation pairs.

    ``with_scores`` adds the sentence encoder's judgement of the pair (``--score_with``), so a consumer can
    filter again at another threshold without re-embedding; readers that only need the texts (the
    trainer's ``require``) accept the extra features."""
    if num_texts not in (2, 3):
        raise SpecError(f"text pairs have 2 or 3 texts, not {num_texts}")
    feats = [Feature("src_raw", BYTES, (), "anchor text, UTF-8"), Feature("tgt_raw", BYTES, (), "positive text, UTF-8")]
    if num_texts == 3:
        feats.append(Feature("neg_raw", BYTES, (), "hard-negative text, UTF-8"))
    if with_langs:
        feats += [Feature("src_lang", BYTES, (), "language code of src_raw"),
                  Feature("tgt_lang", BYTES, (), "language code of tgt_raw")]
    if with_scores:
        feats += [Feature("score", FLOAT32, (), "cosine of the two sides' sentence embeddings"),
                  Feature("margin", FLOAT32, (), "ratio margin of the cosine over both sides' k nearest neighbours "
                                                 "(Artetxe & Schwenk 2019)")]
    return FeatureSpec(name, tuple(feats), {"num_texts": num_texts})


TRANSLATION_PAIRS = text_pair_spec(2, with_langs=True, name="translation_pairs")

# What ``pipelines.translation_pairs --score_with`` writes: the translation pairs with their score and margin.
SCORED_TRANSLATION_PAIRS = text_pair_spec(2, with_langs=True, name="scored_translation_pairs", with_scores=True)


TEACHER_EMBEDDING = "teacher_embedding"


def distillation_pairs_spec(teacher_dim: int, teacher: str = "", teacher_language: str = "eng",
                            scored: bool = False) -> FeatureSpec:
    """Translation pairs with the teacher encoder's embedding of the pair's ``teacher_language`` side, for
    multilingual distillation (Reimers & Gurevych, 2020): the student learns to map both sides onto it.
    ``teacher`` names the encoder (its export), recorded so a reader knows what it distils; ``scored``: the
    pairs also carry ``--score_with``'s score and margin."""
    if teacher_dim < 1:
        raise SpecError(f"a teacher embedding has at least one dimension, not {teacher_dim}")
    feats = (*(SCORED_TRANSLATION_PAIRS if scored else TRANSLATION_PAIRS).features,
             Feature(TEACHER_EMBEDDING, FLOAT32, (teacher_dim,),
                     f"the teacher's sentence embedding of the {teacher_language} side"))
    return FeatureSpec("distillation_pairs", feats, {"num_texts": 2, "teacher_dim": teacher_dim, "teacher": teacher,
                                                     "teacher_language": teacher_language})
