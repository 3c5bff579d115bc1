"""Classification metrics from class probabilities and labels.

Plain numpy on purpose: the numbers are few and simple, and computing them here (rather than with
scikit-learn) keeps resaction's dependencies small. Classes that never occur and are never predicted
get precision, recall and F1 of 0 and are left out of the mean class accuracy, which averages recall
over the classes present in the labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TOPK = 5


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


def classification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1, top-5, mean class accuracy, per-class precision/recall/F1 and the confusion matrix.

    ``scores`` is ``(N, num_classes)`` (probabilities or logits; only their order matters) and
    ``labels`` is ``(N,)`` class indices. Everything returned is JSON-serialisable.
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
    return {
        "num_samples": len(labels),
        "num_classes": num_classes,
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, TOPK),
        "top5_k": min(TOPK, num_classes),
        "mean_class_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "confusion": confusion.tolist(),
    }


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return float("nan"), float("nan")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std
