"""Precision-recall, interpolated AP and ROC-AUC against small cases worked by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from resaction.detection.curves import (
    average_precision,
    interpolated_ap,
    plot_curves,
    precision_recall_curve,
    roc_auc,
    roc_curve,
)


def reference_ap(precision: list[float], recall: list[float]) -> float:
    """ActivityNet's interpolated_prec_rec, loop for loop."""
    mprec = [0.0, *precision, 0.0]
    mrec = [0.0, *recall, 1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum(
        (mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1]
    )


def mann_whitney(scores: np.ndarray, positives: np.ndarray) -> float:
    pos, neg = scores[positives], scores[~positives]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_tied_scores_are_one_threshold_step() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.1])
    precision, recall, thresholds = precision_recall_curve(scores, np.array([1, 0, 1, 0]))
    np.testing.assert_allclose(precision, [1.0, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 1.0, 1.0])
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.1])
    # the order of the tied samples changes nothing
    swapped = precision_recall_curve(scores, np.array([1, 1, 0, 0]))
    np.testing.assert_allclose(swapped[0], precision)
    assert average_precision(scores, np.array([1, 0, 1, 0])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # pairs (pos, neg): (.9,.8)=1 (.9,.1)=1 (.8,.8)=1/2 (.8,.1)=1
    assert roc_auc(scores, np.array([1, 0, 1, 0])) == pytest.approx(3.5 / 4)


def test_all_negative_gives_nan() -> None:
    scores, positives = np.array([0.3, 0.2, 0.1]), np.zeros(3, dtype=bool)
    _, recall, _ = precision_recall_curve(scores, positives)
    np.testing.assert_array_equal(recall, [0.0, 0.0, 0.0])
    assert math.isnan(average_precision(scores, positives))
    assert math.isnan(roc_auc(scores, positives))
    assert math.isnan(roc_auc(scores, np.ones(3, dtype=bool)))


def test_perfect_ranking() -> None:
    scores, positives = np.array([0.9, 0.7, 0.4, 0.2]), np.array([True, True, False, False])
    assert average_precision(scores, positives) == 1.0
    assert roc_auc(scores, positives) == 1.0
    fpr, tpr, thresholds = roc_curve(scores, positives)
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1, 1])
    assert thresholds[0] == np.inf
    assert roc_auc(scores, ~positives) == 0.0


def test_recall_that_never_reaches_one() -> None:
    # three detections, four ground-truth events: hit, miss, hit
    precision, recall = [1.0, 0.5, 2 / 3], [0.25, 0.25, 0.5]
    # envelope 1 on (0, .25], 2/3 on (.25, .5], 0 beyond
    assert interpolated_ap(np.array(precision), np.array(recall)) == pytest.approx(0.25 + 0.5 / 3)
    assert interpolated_ap(np.array(precision), np.array(recall)) == pytest.approx(
        reference_ap(precision, recall)
    )
    assert interpolated_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_ap_of_a_known_voc_example() -> None:
    # ranked relevance 1 0 1 1 0 0 1 0 0 1 (five positives): envelope 1, .75, .75, 4/7, .5
    relevance = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 1], dtype=bool)
    scores = np.linspace(1.0, 0.1, len(relevance))
    expected = 0.2 * (1 + 0.75 + 0.75 + 4 / 7 + 0.5)
    assert average_precision(scores, relevance) == pytest.approx(expected)
    precision, recall, _ = precision_recall_curve(scores, relevance)
    assert reference_ap(precision.tolist(), recall.tolist()) == pytest.approx(expected)


def test_constant_scores() -> None:
    positives = np.array([True, False, False, False])
    assert roc_auc(np.full(4, 0.5), positives) == 0.5
    assert average_precision(np.full(4, 0.5), positives) == pytest.approx(0.25)


def test_random_rankings_match_references() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.integers(0, 6, size=40) / 5.0  # many ties
        positives = rng.random(40) < 0.3
        if positives.all() or not positives.any():
            continue
        assert roc_auc(scores, positives) == pytest.approx(mann_whitney(scores, positives))
        precision, recall, _ = precision_recall_curve(scores, positives)
        assert average_precision(scores, positives) == pytest.approx(
            reference_ap(precision.tolist(), recall.tolist())
        )


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        precision_recall_curve(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError):
        roc_auc(np.array([0.1, np.nan]), np.array([0, 1]))


def test_plot_curves_writes_a_png(tmp_path: Path) -> None:
    out = plot_curves(
        {"fight": (np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.8, 0.4])), "walk": ([0, 1], [1, 0])},
        tmp_path / "sub" / "pr.png",
        title="PR",
        xlabel="recall",
        ylabel="precision",
        points={"fight": (0.5, 0.8), "threshold 0.5": (0.2, 0.9)},
        legend_values={"fight": "AP 0.71"},
    )
    assert out == tmp_path / "sub" / "pr.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 1000
