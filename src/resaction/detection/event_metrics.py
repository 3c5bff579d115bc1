"""How events are measured: truth segments and detected events of long videos, matched and counted.

The rules (also in docs/alarms.md, "How events are measured"):

- A span is half-open ``[start, end)`` in seconds. Temporal IoU (tIoU) is intersection over union
  of two spans; touching spans have tIoU 0; two zero-length spans at the same instant have tIoU 1,
  any other pair involving a zero-length span tIoU 0.
- Matching is ActivityNet's, per video and class: detections are taken by score, highest first
  (ties keep their given order), and each is matched to the still-unmatched truth span of its
  class with the highest tIoU, if that tIoU is at least the threshold (ties in tIoU go to the
  earlier truth span as given). A truth span matches at most one detection; a detection that
  finds none is a false positive, a truth span left unmatched a false negative. "At least" allows
  1e-9 of float rounding, so a detection exactly on the boundary counts.
- Precision, recall and F1 count the detections as given: they are the alarms at the operating
  threshold. A ratio whose denominator is 0 (precision without detections, recall without truth)
  is 0.0; the counts beside it tell the cases apart.
- AP is ActivityNet's: every detection of a class over all videos is ranked by score (videos in
  sorted order, ties keep that order), matched as above, and the all-point interpolated AP of the
  ranked list (:func:`resaction.detection.curves.interpolated_ap`) is taken, with recall over all
  truth spans of the class. AP of a class without truth is undefined (``None``) and left out of
  mAP; mAP is the mean over the AP tIoUs of the mean over classes with truth.
- A false alarm is a detection that overlaps no truth span of its class in its video at all
  (tIoU 0 with every one; touching is not overlapping). A detection that overlaps a truth span
  too little to match is a false positive but not a false alarm: it fired at the right event.
  Rates are per hour of footage (sum of ``durations`` / 3600) with the exact 95% Poisson
  (Garwood) interval of :mod:`resaction.detection.poisson`.
- Delay is measured for the truth spans matched at the lowest of ``tious``: the matched
  detection's start minus the truth start, in seconds; negative means the alarm came early.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resaction.detection.curves import interpolated_ap, plot_curves
from resaction.detection.poisson import poisson_interval
from resaction.errors import ConfigError

ROUNDING = 1e-9
MATCHING_RULE = (
    "ActivityNet: per video and class, detections by score descending (stable) each take the "
    "unmatched truth span with the highest tIoU if that tIoU >= threshold; a truth span matches "
    "at most one detection"
)
FALSE_ALARM_RULE = "a detection with tIoU 0 against every truth span of its class in its video"
DELAY_RULE = "detection start - truth start (s) for truth spans matched at the lowest tIoU"


@dataclass(frozen=True)
class Span:
    """A labelled interval ``[start, end)`` in seconds; truth spans keep ``score=1.0``."""

    label: str
    start: float
    end: float
    score: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ConfigError(f"span label must be a non-empty string, got {self.label!r}")
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ConfigError(f"span {self.label!r} times must be finite: {self.start}, {self.end}")
        if self.end < self.start:
            raise ConfigError(
                f"span {self.label!r} ends ({self.end}) before it starts ({self.start})"
            )
        if not math.isfinite(self.score):
            raise ConfigError(f"span {self.label!r} needs a finite score, got {self.score}")


def tiou_matrix(a: Sequence[Span], b: Sequence[Span]) -> np.ndarray:
    """Temporal IoU of every span of ``a`` (rows) with every span of ``b`` (columns)."""
    a_start, a_end = _bounds(a)
    b_start, b_end = _bounds(b)
    inter = np.clip(
        np.minimum(a_end[:, None], b_end[None, :]) - np.maximum(a_start[:, None], b_start[None, :]),
        0.0,
        None,
    )
    union = (a_end - a_start)[:, None] + (b_end - b_start)[None, :] - inter
    # union 0 only when both spans have zero length: the same instant is a perfect overlap
    same = (a_start[:, None] == b_start[None, :]) & (a_end[:, None] == b_end[None, :])
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), same.astype(np.float64))


def tiou(a: Span, b: Span) -> float:
    """Temporal IoU of two spans: 1 when identical, 0 when disjoint or touching."""
    return float(tiou_matrix([a], [b])[0, 0])


def match(truth: Sequence[Span], detections: Sequence[Span], threshold: float) -> list[int | None]:
    """Match the detections of one video to its truth (the ActivityNet rule of the module doc).

    Returns, for each detection in the given order, the index of the truth span it matched or
    ``None``. Only spans of the same label can match.
    """
    _check_tious([threshold], "threshold")
    result: list[int | None] = [None] * len(detections)
    for label in {d.label for d in detections}:
        truth_index = [j for j, s in enumerate(truth) if s.label == label]
        order = sorted(
            (i for i, d in enumerate(detections) if d.label == label),
            key=lambda i: -detections[i].score,
        )
        overlap = tiou_matrix([detections[i] for i in order], [truth[j] for j in truth_index])
        for row, column in enumerate(_greedy(overlap, threshold)):
            if column >= 0:
                result[order[row]] = truth_index[column]
    return result


@dataclass
class _Pair:
    """One video and one class: its truth, its detections by score and their tIoU matrix."""

    truth: list[Span]
    detections: list[Span]
    overlap: np.ndarray


def _greedy(overlap: np.ndarray, threshold: float) -> np.ndarray:
    """Truth column matched by each row (rows in score order), -1 for none."""
    matched = np.full(overlap.shape[0], -1, dtype=np.int64)
    if overlap.shape[1] == 0:
        return matched
    free = np.ones(overlap.shape[1], dtype=bool)
    for row, values in enumerate(overlap):
        candidates = np.where(free, values, -1.0)
        column = int(np.argmax(candidates))
        if candidates[column] >= threshold - ROUNDING:
            matched[row] = column
            free[column] = False
    return matched


def event_metrics(
    truth: Mapping[str, Sequence[Span]],
    detections: Mapping[str, Sequence[Span]],
    durations: Mapping[str, float],
    classes: Sequence[str],
    *,
    tious: Sequence[float] = (0.3, 0.5, 0.7),
    ap_tious: Sequence[float] = (0.3, 0.4, 0.5, 0.6, 0.7),
) -> dict[str, Any]:
    """Event precision/recall/F1, ActivityNet AP and mAP, false alarms per hour and delay.

    ``truth`` and ``detections`` map a video id to its spans; every such video needs a length in
    ``durations`` (seconds), whose sum is the footage that false-alarm rates are per hour of.
    Spans of labels outside ``classes`` are ignored and counted under ``"ignored"``. The result
    holds only JSON types; the rules are in the module docstring and its ``"protocol"`` entry.
    """
    tious, ap_tious = _check_tious(tious, "tious"), _check_tious(ap_tious, "ap_tious")
    hours = _footage_hours(truth, detections, durations)
    pairs, ignored = _pairs(truth, detections, _check_classes(classes))
    matches = {
        label: {t: [_greedy(p.overlap, t) for p in group] for t in {*tious, *ap_tious}}
        for label, group in pairs.items()
    }
    per_class = {
        label: _class_metrics(pairs[label], matches[label], tious, ap_tious, hours)
        for label in pairs
    }
    with_truth = [label for label in pairs if per_class[label]["truth"] > 0]
    map_by_tiou = {
        _key(t): _mean([per_class[c]["ap"][_key(t)] for c in with_truth]) for t in ap_tious
    }
    false_alarms = sum(m["false_alarms"]["count"] for m in per_class.values())
    overall = {
        "truth": sum(m["truth"] for m in per_class.values()),
        "detections": sum(m["detections"] for m in per_class.values()),
        "at_tiou": {_key(t): _micro(per_class, _key(t)) for t in tious},
        "map": _mean(list(map_by_tiou.values())),
        "map_by_tiou": map_by_tiou,
        "map_classes": with_truth,
        "false_alarms": _rate(false_alarms, hours),
        "delay": {
            "tiou": tious[0],
            **_delay_summary([v for m in per_class.values() for v in m["delay"]["values"]]),
        },
    }
    return {
        "protocol": _protocol(tious, ap_tious),
        "hours": hours,
        "videos": len(durations),
        "classes": per_class,
        "overall": overall,
        "ignored": ignored,
    }


def _class_metrics(
    group: list[_Pair],
    matches: dict[float, list[np.ndarray]],
    tious: list[float],
    ap_tious: list[float],
    hours: float,
) -> dict[str, Any]:
    n_truth = sum(len(p.truth) for p in group)
    n_detections = sum(len(p.detections) for p in group)
    at_tiou = {}
    for t in tious:
        tp = int(sum((m >= 0).sum() for m in matches[t]))
        at_tiou[_key(t)] = _counts(tp, n_detections - tp, n_truth - tp)
    ap = {}
    for t in ap_tious:
        recall, precision = _ranked_curve(group, matches[t], n_truth)
        ap[_key(t)] = interpolated_ap(precision, recall) if n_truth else None
    false_alarms = sum(
        len(p.detections) if not p.truth else int((p.overlap.max(axis=1) == 0).sum()) for p in group
    )
    lowest = tious[0]
    delays = [
        p.detections[row].start - p.truth[column].start
        for p, m in zip(group, matches[lowest], strict=True)
        for row, column in enumerate(m)
        if column >= 0
    ]
    return {
        "truth": n_truth,
        "detections": n_detections,
        "at_tiou": at_tiou,
        "ap": ap,
        "ap_mean": _mean(list(ap.values())),
        "false_alarms": _rate(false_alarms, hours),
        "delay": {"tiou": lowest, **_delay_summary(delays)},
    }


def _ranked_curve(
    group: list[_Pair], matches: list[np.ndarray], n_truth: int
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision down the pooled ranking of one class's detections over all videos."""
    scores = np.array([d.score for p in group for d in p.detections], dtype=np.float64)
    hits = np.concatenate([m >= 0 for m in matches]) if matches else np.zeros(0, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(hits[order])
    precision = true_positives / np.arange(1, len(order) + 1)
    recall = true_positives / n_truth if n_truth else np.zeros(len(order))
    return recall.astype(np.float64), precision.astype(np.float64)


def pr_curve_points(
    truth: Mapping[str, Sequence[Span]],
    detections: Mapping[str, Sequence[Span]],
    classes: Sequence[str],
    *,
    tiou: float = 0.5,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per class with truth, ``(recall, precision)`` down the pooled ranking of its detections.

    These are the curves whose interpolated AP :func:`event_metrics` reports at ``tiou``; feed
    them to :func:`plot_event_pr`. Classes without truth have no curve.
    """
    threshold = _check_tious([tiou], "tiou")[0]
    pairs, _ = _pairs(truth, detections, _check_classes(classes))
    curves = {}
    for label, group in pairs.items():
        n_truth = sum(len(p.truth) for p in group)
        if n_truth:
            matches = [_greedy(p.overlap, threshold) for p in group]
            curves[label] = _ranked_curve(group, matches, n_truth)
    return curves


def plot_event_pr(
    curves_by_class: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    tiou: float = 0.5,
) -> Path:
    """Plot :func:`pr_curve_points` (as ``pr_curves.png``), each class's AP in its legend."""
    legend = {
        label: f"AP {interpolated_ap(precision, recall):.3f}"
        for label, (recall, precision) in curves_by_class.items()
    }
    return plot_curves(
        curves_by_class,
        path,
        title=f"Event precision-recall at tIoU {tiou:g}",
        xlabel="recall",
        ylabel="precision",
        legend_values=legend,
    )


def frame_accuracy(
    truth: Sequence[Span],
    predicted: Sequence[tuple[float, str]],
    *,
    background: str | None = None,
) -> dict[str, Any]:
    """Accuracy of labels sampled at times (timeline window centres) against the truth of a video.

    The truth at time ``t`` is the label of every span with ``start <= t < end``, or
    ``background`` (``"none"`` when not given) where no span holds ``t``. A sample is correct if
    its label is one of the truth labels at its time; a class's recall is the share of samples
    where it is true that predicted it. Zero samples give accuracy 0.0.
    """
    spans = _spans(truth, "truth")
    nothing = "none" if background is None else background
    starts, ends = _bounds(spans)
    correct = 0
    seen: dict[str, int] = {}
    hits: dict[str, int] = {}
    for time, label in predicted:
        inside = np.flatnonzero((starts <= time) & (time < ends))
        wanted = {spans[i].label for i in inside} or {nothing}
        correct += label in wanted
        for name in wanted:
            seen[name] = seen.get(name, 0) + 1
            hits[name] = hits.get(name, 0) + (label == name)
    return {
        "samples": len(predicted),
        "correct": correct,
        "accuracy": correct / len(predicted) if predicted else 0.0,
        "background": nothing,
        "per_class_recall": {name: hits[name] / seen[name] for name in sorted(seen)},
        "per_class_samples": {name: seen[name] for name in sorted(seen)},
    }


def _pairs(
    truth: Mapping[str, Sequence[Span]],
    detections: Mapping[str, Sequence[Span]],
    classes: list[str],
) -> tuple[dict[str, list[_Pair]], dict[str, int]]:
    """Every (video, class) of the given classes, videos in sorted order; and what was ignored."""
    wanted = set(classes)
    ignored = {"truth": 0, "detections": 0}
    pairs: dict[str, list[_Pair]] = {label: [] for label in classes}
    for video in sorted({*truth, *detections}):
        video_truth = _spans(truth.get(video, ()), f"truth of {video!r}")
        video_detections = _spans(detections.get(video, ()), f"detections of {video!r}")
        ignored["truth"] += sum(s.label not in wanted for s in video_truth)
        ignored["detections"] += sum(s.label not in wanted for s in video_detections)
        for label in classes:
            spans = [s for s in video_truth if s.label == label]
            found = [d for d in video_detections if d.label == label]
            found.sort(key=lambda d: -d.score)
            pairs[label].append(_Pair(spans, found, tiou_matrix(found, spans)))
    return pairs, ignored


def _spans(spans: Sequence[Span], what: str) -> list[Span]:
    spans = list(spans)
    for span in spans:
        if not isinstance(span, Span):
            raise ConfigError(f"{what} must hold Span objects, got {type(span).__name__}")
    return spans


def _bounds(spans: Sequence[Span]) -> tuple[np.ndarray, np.ndarray]:
    starts = np.array([s.start for s in spans], dtype=np.float64)
    ends = np.array([s.end for s in spans], dtype=np.float64)
    return starts, ends


def _check_tious(values: Sequence[float], name: str) -> list[float]:
    values = sorted({float(v) for v in values})
    if not values:
        raise ConfigError(f"{name} needs at least one tIoU threshold")
    if not all(0 < v <= 1 for v in values):
        raise ConfigError(f"{name} must lie in (0, 1], got {values}")
    return values


def _check_classes(classes: Sequence[str]) -> list[str]:
    classes = list(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ConfigError(f"classes must be a non-empty list of distinct names, got {classes}")
    return classes


def _footage_hours(
    truth: Mapping[str, Sequence[Span]],
    detections: Mapping[str, Sequence[Span]],
    durations: Mapping[str, float],
) -> float:
    missing = sorted({*truth, *detections} - set(durations))
    if missing:
        raise ConfigError(f"durations lack the length of video(s) {', '.join(missing[:5])}")
    for video, seconds in durations.items():
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ConfigError(f"duration of video {video!r} must be seconds >= 0, got {seconds}")
    total = float(sum(durations.values()))
    if total <= 0:
        raise ConfigError("durations must add up to more than 0 seconds of footage")
    return total / 3600.0


def _counts(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def _micro(per_class: Mapping[str, dict[str, Any]], key: str) -> dict[str, Any]:
    totals = {n: sum(m["at_tiou"][key][n] for m in per_class.values()) for n in ("tp", "fp", "fn")}
    return _counts(totals["tp"], totals["fp"], totals["fn"])


def _rate(count: int, hours: float) -> dict[str, Any]:
    lower, upper = poisson_interval(count, hours)
    return {"count": count, "per_hour": count / hours, "per_hour_95": [lower, upper]}


def _delay_summary(delays: list[float]) -> dict[str, Any]:
    values = sorted(float(v) for v in delays)
    return {
        "count": len(values),
        "mean": float(np.mean(values)) if values else None,
        "median": float(np.median(values)) if values else None,
        "values": values,
    }


def _mean(values: list[float | None]) -> float | None:
    """Mean of the defined values; ``None`` (undefined) when there are none."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _key(threshold: float) -> str:
    return f"{threshold:g}"


def _protocol(tious: list[float], ap_tious: list[float]) -> dict[str, Any]:
    steps = np.diff(ap_tious)
    if len(ap_tious) > 2 and np.allclose(steps, steps[0]):
        grid = f"{ap_tious[0]:g}:{round(float(steps[0]), 6):g}:{ap_tious[-1]:g}"
    else:
        grid = ", ".join(_key(t) for t in ap_tious)
    return {
        "tious": tious,
        "ap_tious": ap_tious,
        "matching": MATCHING_RULE,
        "map": f"ActivityNet mAP over tIoU {grid}",
        "false_alarm": FALSE_ALARM_RULE,
        "false_alarm_interval": "exact 95% Poisson (Garwood) interval per hour of footage",
        "delay": DELAY_RULE,
        "zero_division": "precision, recall and F1 with a zero denominator are 0.0; AP of a class "
        "without truth is null and left out of mAP",
    }
