"""``TeacherEmbeddings``: each translation pair gets a teacher encoder's sentence embedding of its side in
the teacher's language (``teacher_embedding``), the records ``labse/distill`` trains a student on
(multilingual distillation, Reimers & Gurevych 2020). A pair with no side in that language has nothing to
distil towards and is filtered (counted as ``no_teacher_language``).

The texts are embedded as ``ScorePairs`` embeds them, bucket by bucket (``scoring.bucket_of``: a hash of
the pair's content) in fixed, sorted chunks, so the embeddings, hence the bytes written, do not depend on
bundles; a worker holds one bucket's texts and embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
import numpy as np

from transforms.core import accounting
from transforms.core.accounting import Accounted, AccountedDoFn
from transforms.encoders.scoring import EMBED_BATCH_SIZE, EmbedBuckets
from transforms.translation.records import TranslationPair

TEACHER_STAGE = "teacher_embeddings"
NO_TEACHER_LANGUAGE = "no_teacher_language"
TEACHER = "teacher"


def teacher_text(pair: TranslationPair, language: str) -> str | None:
    """The pair's text in ``language`` (its source side first), or None."""
    return pair.src if pair.src_lang == language else pair.tgt if pair.tgt_lang == language else None


def with_teacher(pairs: Iterable[TranslationPair], embedded: Iterable[tuple[str, tuple[str, ...], np.ndarray]],
                 language: str) -> Iterator[tuple[TranslationPair, bool]]:
    """The bucket's pairs in content order, each with its teacher embedding set, and whether it has one."""
    vectors: dict[str, np.ndarray] = {}
    for _, texts, chunk in embedded:
        vectors.update(zip(texts, chunk, strict=True))
    for pair in sorted(pairs):
        text = teacher_text(pair, language)
        if text is None:
            yield pair, False
        else:
            yield pair._replace(teacher_embedding=tuple(float(x) for x in vectors[text])), True


class _AttachTeacher(AccountedDoFn):
    stage = TEACHER_STAGE

    def __init__(self, language: str) -> None:
        self._language = language

    def process(self, item: tuple[Any, Mapping[str, Any]]) -> Iterator[TranslationPair]:
        _, joined = item
        (pairs,) = joined["pairs"]
        for pair, has_teacher in with_teacher(pairs, joined["vectors"], self._language):
            self.took_in(pair.lang_pair)
            if not has_teacher:
                self.filtered(pair.lang_pair, NO_TEACHER_LANGUAGE)
                continue
            self.out(pair.lang_pair)
            yield pair


class TeacherEmbeddings(beam.PTransform):
    """``TranslationPair``s -> the pairs with a side in ``language``, with ``teacher_embedding`` (the text
    embedder export at ``export_path`` applied to that side). Returns ``Accounted``."""

    def __init__(self, export_path: str, language: str = "eng", bucket_size: int = 1000,
                 batch_size: int = EMBED_BATCH_SIZE) -> None:
        super().__init__()
        self._path, self._language, self._size, self._batch = export_path, language, bucket_size, batch_size

    def expand(self, pairs: beam.PCollection) -> Accounted:
        language = self._language

        def sides(pair: TranslationPair) -> tuple[tuple[str, str], ...]:
            text = teacher_text(pair, language)
            return () if text is None else ((TEACHER, text),)

        joined = pairs | "EmbedBuckets" >> EmbedBuckets(self._path, self._size, self._batch, sides)
        return accounting.apply_accounted(joined, "Teacher", _AttachTeacher(language))
