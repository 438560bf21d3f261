"""Sentence encoders in pipelines: the text_embedder export as a RunInference model (``handler``), the
pure margin arithmetic (``margin``: numpy only, tested without Beam, shared with pair mining), and
``ScorePairs`` (``scoring``), which scores and filters translation pairs bucket by bucket, and
``TeacherEmbeddings`` (``teacher``), which adds a teacher's embedding for ``labse/distill``, and
``MinePairs`` (``mining``), which mines bitext out of two monolingual corpora."""

from transforms.encoders.handler import TextEmbedderHandler, check_text_embedder
from transforms.encoders.margin import aligned_margins, cosine, cosine_matrix, neighbour_means, ratio, ratio_margins
from transforms.encoders.mining import MINE_MODES, MinePairs
from transforms.encoders.scoring import (
    EMBED_BATCH_SIZE,
    LOW_MARGIN,
    SCORE_STAGE,
    EmbedBuckets,
    ScorePairs,
    bucket_count,
    bucket_of,
    score_bucket,
    text_chunks,
)
from transforms.encoders.teacher import NO_TEACHER_LANGUAGE, TEACHER_STAGE, TeacherEmbeddings

__all__ = [
    "EMBED_BATCH_SIZE", "LOW_MARGIN", "MINE_MODES", "NO_TEACHER_LANGUAGE", "SCORE_STAGE", "TEACHER_STAGE",
    "EmbedBuckets", "MinePairs", "ScorePairs", "TeacherEmbeddings", "TextEmbedderHandler", "aligned_margins",
    "bucket_count", "bucket_of", "check_text_embedder", "cosine", "cosine_matrix", "neighbour_means", "ratio",
    "ratio_margins", "score_bucket", "text_chunks",
]
