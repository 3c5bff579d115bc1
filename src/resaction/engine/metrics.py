"""Classification metrics from class probabilities and labels.

Plain numpy on purpose: the numbers are few and simple, and computing them here (rather than with
scikit-learn) keeps resaction's dependencies small. Classes that never occur and are never predicted
get precision, recall and F1 of 0 and are left out of the mean class accuracy, which averages recall
over the classes present in the labels. Ranking numbers (one-vs-rest average precision, two-class
ROC-AUC) come from ``detection.curves``; a class absent from the labels has AP NaN and is left out
of their mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from resaction.detection.curves import average_precision, roc_auc

TOPK = 5
POSITIVE_CLASS = 1  # the class whose probability ranks samples for ROC-AUC in two-class tasks


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts, shape ``(num_classes, num_classes)``."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    flat = labels * num_classes + predictions
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among their ``k`` highest scores (``k`` capped at width)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def one_vs_rest_average_precision(scores: np.ndarray, labels: np.ndarray) -> list[float]:
    """Interpolated AP of each class ranking every sample by that class's score (NaN if absent)."""
    return [
        average_precision(scores[:, index], labels == index) for index in range(scores.shape[1])
    ]


def classification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1, top-5, balanced accuracy, per-class precision/recall/F1/AP and the confusion matrix.

    ``scores`` is ``(N, num_classes)`` (probabilities or logits; only their order matters) and
    ``labels`` is ``(N,)`` class indices. ``mean_class_accuracy`` and ``balanced_accuracy`` are the
    same number (the mean recall over the classes present), kept under both names.
    ``average_precision`` is one-vs-rest per class (NaN for a class without both positives and
    negatives, where it says nothing) and ``mean_average_precision`` its mean over the others.
    With two classes, ``roc_auc`` ranks by the score of class ``roc_auc_positive`` (index 1).
    Everything returned is JSON-serialisable (NaN aside).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} do not match")
    num_classes = scores.shape[1]
    predictions = scores.argmax(axis=1) if len(scores) else np.zeros(0, dtype=np.int64)
    confusion = confusion_matrix(labels, predictions, num_classes)
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    present = support > 0
    balanced = float(recall[present].mean()) if present.any() else float("nan")
    ap = np.asarray(one_vs_rest_average_precision(scores, labels))
    ranked = present & (support < len(labels))  # AP is 1 by definition without negatives
    ap[~ranked] = np.nan
    metrics = {
        "num_samples": len(labels),
        "num_classes": num_classes,
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, TOPK),
        "top5_k": min(TOPK, num_classes),
        "mean_class_accuracy": balanced,
        "balanced_accuracy": balanced,
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "mean_average_precision": float(ap[ranked].mean()) if ranked.any() else float("nan"),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "average_precision": ap.tolist(),
        "confusion": confusion.tolist(),
    }
    if num_classes == 2:
        metrics["roc_auc"] = roc_auc(scores[:, POSITIVE_CLASS], labels == POSITIVE_CLASS)
        metrics["roc_auc_positive"] = POSITIVE_CLASS
    return metrics


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return float("nan"), float("nan")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std


def mean_and_spread(entry: dict[str, Any]) -> str:
    """A summary entry (``mean``, ``std`` and its ``folds``) as "mean ± std" in percent; one
    fold has no spread to show (its sample standard deviation is undefined)."""
    if len(entry["folds"]) < 2:
        return f"{100 * entry['mean']:.1f} (one fold)"
    return f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f}"
