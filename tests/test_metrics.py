"""GLUE metrics (trainer/evaluation/metrics.py) against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.evaluation import metrics, sts


def test_accuracy_and_f1():
    labels, predictions = [1, 0, 1, 1], [1, 1, 1, 0]
    assert metrics.accuracy(labels, predictions) == 0.5
    # tp 2, fp 1, fn 1: 2*2 / (2*2 + 1 + 1)
    assert metrics.f1(labels, predictions) == pytest.approx(2 / 3)
    assert metrics.f1([0, 0], [0, 0]) == 0.0  # no positive anywhere
    assert metrics.f1([1, 1], [0, 0]) == 0.0


def test_matthews_correlation():
    # tp 2, tn 0, fp 1, fn 1: (0 - 1) / sqrt(3 * 3 * 1 * 1)
    assert metrics.matthews_corrcoef([1, 0, 1, 1], [1, 1, 1, 0]) == pytest.approx(-1 / 3)
    # tp 2, tn 2, fp 1, fn 1: (4 - 1) / sqrt(3 * 3 * 3 * 3)
    assert metrics.matthews_corrcoef([1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]) == pytest.approx(1 / 3)
    # three classes: 4 of 6 right, balanced counts: (4*6 - 12) / sqrt((36 - 12) * (36 - 12))
    assert metrics.matthews_corrcoef([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 1, 2]) == pytest.approx(0.5)
    assert metrics.matthews_corrcoef([1, 0, 1], [1, 0, 1]) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef([1, 0, 1], [1, 1, 1]) == 0.0  # constant prediction


def test_pearson_and_spearman_with_ties():
    # dx = [-1.5, -.5, .5, 1.5], dy = [-3, -1, 0, 4]: 11 / sqrt(5 * 26)
    assert metrics.pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(130))
    assert metrics.average_ranks(np.array([3, 1, 3, 2, 3])).tolist() == [4, 1, 4, 2, 4]
    # ranks [1, 2.5, 2.5, 4] and [1, 2, 3.5, 3.5]: 3.75 / sqrt(4.5 * 4.5)
    assert metrics.spearman([1, 2, 2, 3], [10, 20, 30, 30]) == pytest.approx(5 / 6)
    assert metrics.spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)  # monotone, not linear
    assert math.isnan(metrics.pearson([1, 2, 3], [5, 5, 5]))


def test_glue_scores_and_errors():
    scores = metrics.glue_scores("MRPC", np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0]))
    assert scores == {"f1": pytest.approx(2 / 3), "accuracy": 0.5}
    assert set(metrics.glue_scores("STS-B", [1.0, 2.5, 4.0], [1.2, 2.0, 4.5])) == {"pearson", "spearman"}
    with pytest.raises(ValueError, match="differ in length"):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="no GLUE metrics"):
        metrics.glue_scores("SQuAD", [1], [1])


def test_against_scipy_on_random_data():
    """scipy (when installed) agrees on Pearson, Spearman and its average ranks, ties included."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 300).astype(float)  # many ties, like STS-B's 0-5 scores
    p = y + rng.normal(0, 1.5, 300).round(1)
    assert metrics.pearson(y, p) == pytest.approx(stats.pearsonr(y, p)[0], rel=1e-9)
    assert metrics.spearman(y, p) == pytest.approx(stats.spearmanr(y, p)[0], rel=1e-9)
    np.testing.assert_array_equal(metrics.average_ranks(p), stats.rankdata(p))


def test_similarity_is_scored_by_cosine_not_dot_product():
    # Cosines 1, 0.6, 0 (gold in that order: Spearman 1). Dot products 0.5, 6, 0 would rank them otherwise.
    vectors = {"a": [0.5, 0.0], "a'": [1.0, 0.0], "b": [10.0, 0.0], "b'": [0.6, 0.8], "c": [0.0, 3.0],
               "c'": [2.0, 0.0]}

    def embed(sentences):
        return np.array([vectors[s] for s in sentences])

    scores = sts.score_similarity(embed, ["a", "b", "c"], ["a'", "b'", "c'"], [5.0, 3.0, 0.0])
    assert scores["spearman"] == pytest.approx(1.0)
    assert scores["pearson"] == pytest.approx(metrics.pearson([5.0, 3.0, 0.0], [1.0, 0.6, 0.0]))
    assert sts.score_similarity(embed, ["a", "b", "c"], ["a'", "b'", "c'"], [0.0, 1.0, 2.0])["spearman"] == \
        pytest.approx(-1.0)
    with pytest.raises(ValueError, match="2 first sentences"):
        sts.score_similarity(embed, ["a", "b"], ["a'", "b'", "c'"], [1.0, 2.0, 3.0])
