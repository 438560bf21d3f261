"""Semantic textual similarity of a sentence encoder as it is, without fine-tuning (STS-B's dev set in
SentEval's and sentence-transformers' ``EmbeddingSimilarityEvaluator``'s way): Spearman's correlation
between the gold scores and the cosine of the two sentences' embeddings. One function, so that the
embeddings of any system (an export through ``Embedder``, a peer's saved arrays) are scored alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from trainer.evaluation.metrics import pearson, spearman


def score_similarity(embed: Callable[[Sequence[str]], np.ndarray], first: Sequence[str], second: Sequence[str],
                     gold: Sequence[float]) -> dict[str, float]:
    """Spearman's and Pearson's correlation of ``gold`` with the cosines of the pairs' embeddings
    (normalised here, so an encoder that does not normalise is scored by cosine too)."""
    if not len(first) == len(second) == len(gold):
        raise ValueError(f"{len(first)} first sentences, {len(second)} second ones and {len(gold)} scores")
    a, b = (np.asarray(embed(s), np.float64) for s in (first, second))
    a /= np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    cosine = np.sum(a * b, axis=-1)
    return {"pairs": len(gold), "spearman": spearman(gold, cosine), "pearson": pearson(gold, cosine)}
