"""Ranking curves and their areas: precision-recall, interpolated AP, ROC and ROC-AUC, and a plot.

Plain numpy, no scikit-learn. A curve walks the scores from the highest down; samples with equal
scores are one threshold step (as in scikit-learn), so the order of tied samples never changes a
number. Average precision is the all-point interpolated AP of PASCAL VOC (2010 on) and ActivityNet:
precision is made monotone from the right (each point takes the best precision at any higher
recall) and summed over the recall steps. It also takes the precision and recall of a ranked list
of detections matched to ground truth, where recall may stop short of 1 (missed events count as
precision 0 beyond the last detection).

An undefined number is NaN: AP without positives, ROC-AUC without positives or without negatives.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

MAX_LEGEND_ENTRIES = 20


def _ranked_counts(
    scores: np.ndarray, positives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives at or above each distinct score, highest score first."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives)
    if scores.ndim != 1 or positives.shape != scores.shape:
        raise ValueError(f"scores {scores.shape} and positives {positives.shape} must be 1-D alike")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    hits = positives[order].astype(bool)
    # the last sample of each run of equal scores closes one threshold step
    last_of_tie = np.flatnonzero(np.diff(ranked)) if len(ranked) else np.zeros(0, dtype=np.int64)
    steps = np.r_[last_of_tie, len(ranked) - 1] if len(ranked) else last_of_tie
    true_positives = np.cumsum(hits)[steps].astype(np.float64)
    false_positives = (steps + 1) - true_positives
    return true_positives, false_positives, ranked[steps]


def precision_recall_curve(
    scores: np.ndarray, positives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds, one entry per distinct score, highest threshold first.

    Entry ``i`` counts every sample scoring at least ``thresholds[i]`` as predicted positive, so
    recall rises along the arrays. No sentinel points are added (:func:`interpolated_ap` adds its
    own). Without positives recall is 0 everywhere.
    """
    true_positives, false_positives, thresholds = _ranked_counts(scores, positives)
    total_positives = true_positives[-1] if len(true_positives) else 0.0
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / total_positives if total_positives > 0 else np.zeros_like(precision)
    return precision, recall, thresholds


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP (VOC 2010 on; ActivityNet's ``interpolated_prec_rec``).

    ``precision`` and ``recall`` follow a ranked list from its top (recall non-decreasing). The
    curve is padded with recall 0 and recall 1 at precision 0, the precision envelope is made
    monotone from the right, and AP is the sum of envelope precision times each recall step. Recall
    that never reaches 1 therefore costs AP: the rest of the recall axis has precision 0.
    """
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    if precision.shape != recall.shape or precision.ndim != 1:
        raise ValueError(f"precision {precision.shape} and recall {recall.shape} must be 1-D alike")
    envelope = np.r_[0.0, precision, 0.0]
    padded_recall = np.r_[0.0, recall, 1.0]
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    changed = np.flatnonzero(padded_recall[1:] != padded_recall[:-1]) + 1
    steps = padded_recall[changed] - padded_recall[changed - 1]
    return float(np.sum(steps * envelope[changed]))


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Interpolated AP of ranking ``scores`` against boolean ``positives``; NaN without any."""
    precision, recall, _ = precision_recall_curve(scores, positives)
    if not np.asarray(positives).astype(bool).any():
        return float("nan")
    return interpolated_ap(precision, recall)


def roc_curve(
    scores: np.ndarray, positives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds, starting at (0, 0) for ``+inf``.

    One point per distinct score, highest threshold first. A rate whose class is absent is NaN.
    """
    true_positives, false_positives, thresholds = _ranked_counts(scores, positives)
    true_positives = np.r_[0.0, true_positives]
    false_positives = np.r_[0.0, false_positives]
    thresholds = np.r_[np.inf, thresholds]
    total_positives, total_negatives = true_positives[-1], false_positives[-1]
    nan = np.full_like(true_positives, np.nan)
    tpr = true_positives / total_positives if total_positives > 0 else nan
    fpr = false_positives / total_negatives if total_negatives > 0 else nan
    return fpr, tpr, thresholds


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve by trapezoids; NaN when either class is absent.

    Equal to the probability that a random positive scores above a random negative, ties counting
    one half (the Mann-Whitney statistic): constant scores give 0.5.
    """
    fpr, tpr, _ = roc_curve(scores, positives)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def plot_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    points: Mapping[str, tuple[float, float]] | None = None,
    legend_values: Mapping[str, str] | None = None,
) -> Path:
    """Write a PNG with one line per named ``(x, y)`` curve and return its path.

    ``points`` marks named points (an operating point); a point named like a curve takes its
    colour. ``legend_values[name]`` is appended to that curve's legend entry (``"AP 0.71"``). An
    axis whose values all lie in [0, 1] is drawn from 0 to 1. Past ``MAX_LEGEND_ENTRIES`` curves
    the legend is left out.
    """
    from matplotlib.figure import Figure

    points = points or {}
    legend_values = legend_values or {}
    figure = Figure(figsize=(6.4, 5.0), layout="constrained")
    axes = figure.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(curves))]
    colour_of = dict(zip(curves, colours, strict=True))
    for name, (x, y) in curves.items():
        label = f"{name} ({legend_values[name]})" if name in legend_values else name
        axes.plot(np.asarray(x), np.asarray(y), color=colour_of[name], linewidth=1.5, label=label)
    for name, (x, y) in points.items():
        colour = colour_of.get(name, "black")
        label = None if name in colour_of else name
        axes.plot([x], [y], marker="o", markersize=7, color=colour, linestyle="none", label=label)
    xs = [np.asarray(x, dtype=np.float64) for x, _ in curves.values()] + [
        np.array([x], dtype=np.float64) for x, _ in points.values()
    ]
    ys = [np.asarray(y, dtype=np.float64) for _, y in curves.values()] + [
        np.array([y], dtype=np.float64) for _, y in points.values()
    ]
    if _within_unit(xs):
        axes.set_xlim(-0.01, 1.01)
    if _within_unit(ys):
        axes.set_ylim(-0.01, 1.01)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, linewidth=0.4, alpha=0.5)
    if 0 < len(curves) + len(points) <= MAX_LEGEND_ENTRIES:
        axes.legend(fontsize=8, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    figure.clear()
    return path


def _within_unit(arrays: list[np.ndarray]) -> bool:
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
    values = values[np.isfinite(values)]
    return bool(values.size) and bool(values.min() >= 0.0) and bool(values.max() <= 1.0)
