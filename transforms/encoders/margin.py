"""Cosine and the ratio margin of Artetxe & Schwenk (2019), "Margin-based parallel corpus mining with
multilingual sentence embeddings" (no Beam, no TensorFlow: numpy on one bucket's embeddings).

A raw cosine is a poor judge of a translation pair: some sentences (short ones, boilerplate) are close
to everything, so a fixed cosine threshold keeps their wrong pairs and drops good pairs of sentences in
sparse regions. The ratio margin divides the pair's cosine by the mean cosine of each side to its k
nearest candidates::

    margin(x, y) = cos(x, y) / (sum_{z in NN_k(x)} cos(x, z) / 2k + sum_{z in NN_k(y)} cos(y, z) / 2k)

with ``NN_k(x)`` taken among the targets and ``NN_k(y)`` among the sources of the same candidate set
(``ScorePairs``: one bucket of one language pair). A true pair stands out from its neighbourhood
(margin > 1 when it is its sides' nearest neighbour); a wrong pair does not (margin around or below 1).

Everything is computed in float64, so the result of one bucket does not depend on BLAS's summation
order at float32 precision (the job's output must be byte-identical across runs and shardings).
"""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` (``[n, dim]``) as float64 rows of length 1 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def cosine_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[n, m]`` cosines of every row of ``x`` (``[n, dim]``) with every row of ``y`` (``[m, dim]``)."""
    return unit_rows(x) @ unit_rows(y).T


def cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise cosines of two aligned ``[n, dim]`` arrays (or of two vectors): ``[n]`` (or a scalar)."""
    return np.sum(unit_rows(x) * unit_rows(y), axis=-1)


def neighbour_means(similarity: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the ``k`` largest entries of each row (``[n]``: each source's k nearest targets) and of
    each column (``[m]``: each target's k nearest sources); ``k`` is capped at the candidates there are.
    The k values are sorted before the mean, so the sum does not depend on ``np.partition``'s order."""
    if k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    n, m = similarity.shape
    rows = -np.partition(-similarity, min(k, m) - 1, axis=1)[:, :min(k, m)]
    cols = -np.partition(-similarity, min(k, n) - 1, axis=0)[:min(k, n), :]
    return np.sort(rows, axis=1).mean(axis=1), np.sort(cols, axis=0).mean(axis=0)


def ratio_margins(similarity: np.ndarray, k: int) -> np.ndarray:
    """The ratio margin of every (source, target) candidate: ``[n, m]`` from the ``[n, m]`` cosines (what
    mining ranks candidates by)."""
    rows, cols = neighbour_means(similarity, k)
    return ratio(similarity, rows[:, None], cols[None, :])


def ratio(scores: np.ndarray | float, source_means: np.ndarray | float,
          target_means: np.ndarray | float) -> np.ndarray | float:
    """The ratio margin from cosines and the k-NN mean cosines of their sources and targets (broadcast):
    the formula's one home, so that a margin computed from a whole candidate matrix and one computed from
    neighbour lists merged across blocks (``mining``) are the same float."""
    return scores / (source_means / 2 + target_means / 2)


def aligned_margins(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``n`` aligned pairs (row i of ``x`` with row i of ``y``): their cosines and ratio margins,
    ``([n], [n])``, with the neighbours of each source among all ``y`` and of each target among all ``x``."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} sources and {len(y)} targets are not aligned pairs")
    similarity = cosine_matrix(x, y)
    rows, cols = neighbour_means(similarity, k)
    scores = np.diagonal(similarity).copy()
    return scores, ratio(scores, rows, cols)
