"""GLUE's evaluation metrics in numpy, for sentence-prediction fine-tuning.

The definitions GLUE scores with (and Model Garden's ``sentence_prediction`` task computes through
scikit-learn and scipy, which the trainer does not depend on): accuracy for every classification task,
F1 of the positive class for MRPC and QQP, Matthews correlation for CoLA, Pearson and Spearman
correlations for STS-B. Spearman ranks ties by their average rank, as ``scipy.stats.spearmanr`` does.
Degenerate inputs (a constant prediction, no positive example) give 0.0 where scikit-learn does,
and NaN for correlations of a constant series, as scipy does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]


def _pair(labels: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.shape[0]}) and predictions ({p.shape[0]}) differ in length")
    if y.size == 0:
        raise ValueError("no examples to score")
    return y, p


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Share of predictions equal to the label."""
    y, p = _pair(labels, predictions)
    return float(np.mean(y == p))


def f1(labels: np.ndarray, predictions: np.ndarray, positive: int = 1) -> float:
    """F1 of the positive class (MRPC, QQP): ``2 tp / (2 tp + fp + fn)``; 0.0 when there are no
    positive labels nor predictions."""
    y, p = _pair(labels, predictions)
    tp = int(np.sum((p == positive) & (y == positive)))
    fp = int(np.sum((p == positive) & (y != positive)))
    fn = int(np.sum((p != positive) & (y == positive)))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def matthews_corrcoef(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Matthews correlation (CoLA), the multi-class form (Gorodkin 2004) that reduces to
    ``(tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))`` for two classes; 0.0 when a side is constant."""
    y, p = _pair(labels, predictions)
    classes = np.unique(np.concatenate([y, p]))
    c = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(c, (np.searchsorted(classes, y), np.searchsorted(classes, p)), 1)
    t, q = c.sum(axis=1), c.sum(axis=0)  # true and predicted counts per class
    n, correct = c.sum(), np.trace(c)
    denominator = np.sqrt((n * n - q @ q) * (n * n - t @ t))
    return float((correct * n - t @ q) / denominator) if denominator else 0.0


def pearson(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Pearson's correlation (STS-B); NaN when either series is constant."""
    y, p = _pair(labels, predictions)
    y, p = y.astype(np.float64) - y.mean(), p.astype(np.float64) - p.mean()
    denominator = np.sqrt((y @ y) * (p @ p))
    return float(y @ p / denominator) if denominator else float("nan")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (``scipy.stats.rankdata``'s default)."""
    v = np.asarray(values).reshape(-1)
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], len(v)]  # each run of equal values is [start, end)
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Spearman's rank correlation (STS-B): Pearson's on average ranks."""
    y, p = _pair(labels, predictions)
    return pearson(average_ranks(y), average_ranks(p))


# What GLUE reports per task (the first is the task's headline metric).
GLUE_METRICS: dict[str, tuple[tuple[str, Metric], ...]] = {
    "CoLA": (("matthews_corrcoef", matthews_corrcoef),),
    "SST-2": (("accuracy", accuracy),),
    "MRPC": (("f1", f1), ("accuracy", accuracy)),
    "QQP": (("f1", f1), ("accuracy", accuracy)),
    "STS-B": (("pearson", pearson), ("spearman", spearman)),
    "MNLI": (("accuracy", accuracy),),
    "QNLI": (("accuracy", accuracy),),
    "RTE": (("accuracy", accuracy),),
    "WNLI": (("accuracy", accuracy),),
    "XNLI": (("accuracy", accuracy),),
    "PAWS-X": (("accuracy", accuracy),),
}


def glue_scores(task: str, labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """``{metric: value}`` for a GLUE task (class ids, or scores for STS-B)."""
    if task not in GLUE_METRICS:
        raise ValueError(f"no GLUE metrics for task {task!r} (known: {', '.join(GLUE_METRICS)})")
    return {name: fn(labels, predictions) for name, fn in GLUE_METRICS[task]}
