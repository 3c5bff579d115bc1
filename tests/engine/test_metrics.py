from __future__ import annotations

import numpy as np
import pytest

from resaction.engine.metrics import (
    classification_metrics,
    confusion_matrix,
    mean_and_std,
    topk_accuracy,
)
from resaction.runtime.scores import softmax


def one_hot_scores(predictions: list[int], num_classes: int) -> np.ndarray:
    scores = np.zeros((len(predictions), num_classes))
    scores[np.arange(len(predictions)), predictions] = 1.0
    return scores


def test_metrics_of_a_hand_worked_example() -> None:
    labels = [0, 0, 0, 1, 1, 2]
    predictions = [0, 0, 1, 1, 2, 2]
    metrics = classification_metrics(one_hot_scores(predictions, 3), np.array(labels))

    assert metrics["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert metrics["top1"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx([1.0, 0.5, 0.5])
    assert metrics["recall"] == pytest.approx([2 / 3, 0.5, 1.0])
    assert metrics["f1"] == pytest.approx([0.8, 0.5, 2 / 3])
    assert metrics["mean_class_accuracy"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert metrics["support"] == [3, 2, 1]


def test_metrics_agree_with_a_per_sample_loop() -> None:
    rng = np.random.default_rng(0)
    num_classes, count = 7, 200
    scores = rng.random((count, num_classes))
    labels = rng.integers(0, num_classes, count)
    metrics = classification_metrics(scores, labels)

    predictions = scores.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=int)
    top5_hits = 0
    for score, label, predicted in zip(scores, labels, predictions, strict=True):
        confusion[label, predicted] += 1
        top5_hits += label in np.argsort(score)[-5:]
    assert np.array_equal(np.array(metrics["confusion"]), confusion)
    assert metrics["top1"] == pytest.approx(np.mean(predictions == labels))
    assert metrics["top5"] == pytest.approx(top5_hits / count)
    for c in range(num_classes):
        assert metrics["recall"][c] == pytest.approx(confusion[c, c] / confusion[c].sum())
        assert metrics["precision"][c] == pytest.approx(confusion[c, c] / confusion[:, c].sum())


def test_absent_class_is_left_out_of_mean_class_accuracy() -> None:
    metrics = classification_metrics(one_hot_scores([0, 1, 1], 3), np.array([0, 1, 0]))
    assert metrics["recall"][2] == 0.0 and metrics["precision"][2] == 0.0
    assert metrics["mean_class_accuracy"] == pytest.approx((0.5 + 1.0) / 2)


def test_balanced_accuracy_on_an_imbalanced_example() -> None:
    # eight of class 0, two of class 1, and a model that always says 0
    metrics = classification_metrics(one_hot_scores([0] * 10, 2), np.array([0] * 8 + [1] * 2))
    assert metrics["top1"] == pytest.approx(0.8)
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)  # (8/8 + 0/2) / 2
    assert metrics["balanced_accuracy"] == metrics["mean_class_accuracy"]


def test_per_class_average_precision_and_two_class_roc_auc() -> None:
    positive = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    labels = np.array([1, 0, 1, 0, 0])
    metrics = classification_metrics(np.stack([1 - positive, positive], axis=1), labels)
    # class 1 ranked: hit (P 1, R 1/2), miss, hit (P 2/3, R 1)
    # class 0 ranked by 1 - p: hit, hit, miss, hit (P 3/4, R 1), miss
    assert metrics["average_precision"] == pytest.approx([(1 + 1 + 0.75) / 3, 0.5 + 0.5 * 2 / 3])
    assert metrics["mean_average_precision"] == pytest.approx(np.mean(metrics["average_precision"]))
    # positives .9, .7 against negatives .8, .6, .2: 3 + 2 of 6 pairs ordered right
    assert metrics["roc_auc"] == pytest.approx(5 / 6)
    assert metrics["roc_auc_positive"] == 1


def test_absent_class_has_no_average_precision_and_many_classes_no_roc_auc() -> None:
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.1, 0.4]])
    metrics = classification_metrics(scores, np.array([0, 1, 1]))
    assert np.isnan(metrics["average_precision"][2])
    # class 0: hit at the top (AP 1); class 1: hit, miss, hit (P 1 at R 1/2, P 2/3 at R 1)
    assert metrics["mean_average_precision"] == pytest.approx((1 + 0.5 + 1 / 3) / 2)
    assert "roc_auc" not in metrics


def test_a_class_without_negatives_has_no_average_precision() -> None:
    """Scored on videos of one class only, that class's AP is 1 whatever the scores (every
    video is a positive), so it is no evidence: mAP is undefined rather than 100%."""
    scores = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6], [0.3, 0.7]])
    metrics = classification_metrics(scores, np.array([0, 0, 0, 0]))
    assert metrics["top1"] == pytest.approx(0.25)
    assert np.isnan(metrics["average_precision"][0]) and np.isnan(metrics["average_precision"][1])
    assert np.isnan(metrics["mean_average_precision"])


def test_top5_with_fewer_classes_is_capped_and_says_so() -> None:
    scores = np.array([[0.9, 0.1], [0.8, 0.2]])
    metrics = classification_metrics(scores, np.array([1, 1]))
    assert metrics["top1"] == 0.0
    assert metrics["top5"] == 1.0
    assert metrics["top5_k"] == 2


def test_topk_accuracy_is_monotonic_in_k() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((50, 10))
    labels = rng.integers(0, 10, 50)
    accuracies = [topk_accuracy(scores, labels, k) for k in range(1, 11)]
    assert accuracies == sorted(accuracies)
    assert accuracies[-1] == 1.0


def test_confusion_matrix_counts_every_sample_once() -> None:
    labels = np.array([2, 2, 0])
    matrix = confusion_matrix(labels, np.array([2, 0, 0]), 3)
    assert matrix.sum() == 3 and matrix[2, 2] == 1 and matrix[2, 0] == 1 and matrix[0, 0] == 1


def test_softmax_rows_sum_to_one_and_keep_order() -> None:
    logits = np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]])
    probs = softmax(logits)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs[0].argmax() == 1 and np.allclose(probs[1], 1 / 3)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        classification_metrics(np.zeros((3, 2)), np.zeros(2, dtype=int))


def test_mean_and_sample_std() -> None:
    mean, std = mean_and_std([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7)
    assert std == pytest.approx(0.2)
    assert mean_and_std([0.4]) == (0.4, 0.0)
