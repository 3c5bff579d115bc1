"""Timelines measured against annotated truth: alarms as events, not clips.

Two kinds of detection are measured (the rules of matching, false alarms and intervals are
``detection.event_metrics``'s):

- **alarms**, the events the watcher's decisions raise at the operating thresholds
  (``Timeline.alarms``): precision, recall and F1 at "any overlap" and at tIoU 0.3 / 0.5 / 0.7;
  the budget's counts (``budget``): an alarm catches an incident when it matches it at tIoU 0.3,
  every other alarm is a false alarm, per hour with its 95% Poisson interval (also reported:
  alarms that overlap no incident at all); and delay: how long after the true start the event
  started, and how long after it the alarm went out (``alarm_delay``);
- **ranked segments**, for AP: the runs of each class as the smoothed top label, ranked by their
  mean probability, so AP describes the scores and not one threshold (the ActivityNet
  convention, mAP over tIoU 0.3:0.1:0.7).

Frame-level accuracy compares every frame's label (the smoothed top label of the window nearest
it in time) with the truth label there (the background class outside every truth span).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resaction.detection.decisions import DecidedEvent
from resaction.detection.event_metrics import (
    Span,
    event_metrics,
    frame_accuracy,
    match,
    plot_event_pr,
    pr_curve_points,
)
from resaction.detection.poisson import poisson_interval
from resaction.inference.segments import extract_segments, window_cells

if TYPE_CHECKING:
    from resaction.inference.timeline import Timeline

OVERLAP = 1e-6
"""The tIoU that stands for "any overlap" (reported beside the budget's counts)."""
CATCH_TIOU = 0.3
"""An alarm catches an incident when it matches it at this tIoU (one alarm, one incident);
every other alarm counts against the false-alarm budget. Any overlap would let one alarm that
never ends "catch" an incident with no false alarm at all."""
ALARM_TIOUS = (OVERLAP, CATCH_TIOU, 0.5, 0.7)
AP_TIOUS = (0.3, 0.4, 0.5, 0.6, 0.7)

BUDGET_RULE = (
    "an alarm catches an incident when it matches it at tIoU >= 0.3 (one alarm, one incident); "
    "every other alarm is a false alarm"
)

Truth = Mapping[str, Sequence[Span]]


def video_key(path: str | Path) -> str:
    """How videos are matched between truth and timelines: the resolved path."""
    return str(Path(path).expanduser().resolve())


def as_spans(alarms: Sequence[DecidedEvent]) -> list[Span]:
    """Alarms as spans scored by their peak smoothed probability."""
    return [Span(a.label, a.start, a.end, a.peak) for a in alarms]


def alarm_spans(timeline: Timeline, labels: Sequence[str]) -> list[Span]:
    """The timeline's alarms of ``labels`` as spans."""
    return as_spans([a for a in timeline.alarms if a.label in labels])


def ranked_spans(timeline: Timeline, labels: Sequence[str]) -> list[Span]:
    """Every run of a class as the smoothed top label, scored by its mean probability."""
    segments = extract_segments(
        timeline.smoothed,
        timeline.times,
        timeline.classes,
        threshold=0.0,
        min_duration=0.0,
        merge_gap=0.0,
        duration=timeline.duration,
    )
    return [Span(s.label, s.start, s.end, s.confidence) for s in segments if s.label in labels]


def evaluate_events(
    timelines: Sequence[Timeline],
    truth: Truth,
    *,
    labels: Sequence[str],
    background: str | None,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Event metrics of ``timelines`` against ``truth`` (keyed by ``video_key``) for the alarm
    classes ``labels``; with ``out_dir``, also the PR curves as ``pr_curves.png``."""
    keys = [video_key(t.video) for t in timelines]
    durations = {key: t.duration for key, t in zip(keys, timelines, strict=True)}
    facts = {key: list(truth.get(key, [])) for key in keys}
    alarms = {k: alarm_spans(t, labels) for k, t in zip(keys, timelines, strict=True)}
    ranked = {k: ranked_spans(t, labels) for k, t in zip(keys, timelines, strict=True)}
    measured = event_metrics(facts, alarms, durations, labels, tious=ALARM_TIOUS)
    scored = event_metrics(facts, ranked, durations, labels, tious=ALARM_TIOUS, ap_tious=AP_TIOUS)
    result: dict[str, Any] = {
        "protocol": {
            **measured["protocol"],
            "alarms": "events of the watcher's decisions at the operating thresholds",
            "ap_detections": "runs of each class as the smoothed top label, by mean probability",
            "map": scored["protocol"]["map"],
            "overlap_tiou": OVERLAP,
            "budget": BUDGET_RULE,
        },
        "hours": measured["hours"],
        "videos": len(keys),
        "budget": {
            **{label: budget_counts(v, measured["hours"]) for label, v in _items(measured)},
            "overall": budget_counts(measured["overall"], measured["hours"]),
        },
        "alarms": {
            "classes": measured["classes"],
            "overall": measured["overall"],
            "alarm_delay": _alarm_delays(timelines, keys, facts, labels),
        },
        "ap": {
            "classes": {c: {"ap": v["ap"], "ap_mean": v["ap_mean"]} for c, v in _items(scored)},
            "map": scored["overall"]["map"],
            "map_by_tiou": scored["overall"]["map_by_tiou"],
        },
        "frames": _frames(timelines, keys, facts, background),
    }
    if out_dir is not None:
        curves = pr_curve_points(facts, ranked, labels, tiou=0.5)
        path = plot_event_pr(curves, Path(out_dir) / "pr_curves.png", tiou=0.5)
        result["files"] = {"pr_curves": str(path)}
    return result


def write_events(
    timelines: Sequence[Timeline],
    truth: Truth,
    out_dir: str | Path,
    skipped: Sequence[tuple[str, str]] = (),
) -> Path:
    """``events.json`` (and ``pr_curves.png``) in ``out_dir`` for timelines that share one
    model: its alarm classes, background, window and where its thresholds came from."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = timelines[0]
    labels = list(first.extra.get("alarm_settings") or {})
    background = first.extra.get("background")
    result = evaluate_events(timelines, truth, labels=labels, background=background, out_dir=out)
    result["skipped"] = [{"video": video, "reason": reason} for video, reason in skipped]
    result["alarm_source"] = first.extra.get("alarm_source")
    result["alarm_settings"] = first.extra.get("alarm_settings")
    result["window_s"] = first.extra.get("window_s")
    path = out / "events.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def budget_counts(counts: Mapping[str, Any], hours: float) -> dict[str, Any]:
    """Caught incidents and false alarms under ``BUDGET_RULE`` from ``event_metrics`` counts."""
    matched = counts["at_tiou"][f"{CATCH_TIOU:g}"]
    low, high = poisson_interval(matched["fp"], hours) if hours > 0 else (0.0, float("inf"))
    return {
        "truth": counts["truth"],
        "alarms": counts["detections"],
        "caught": matched["tp"],
        "recall": matched["recall"],
        "precision": matched["precision"],
        "false_alarms": matched["fp"],
        "false_alarms_per_hour": matched["fp"] / hours if hours > 0 else 0.0,
        "false_alarms_per_hour_95": [low, high],
        "no_overlap_per_hour": counts["false_alarms"]["per_hour"],
    }


def _items(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return list(metrics["classes"].items())


def _alarm_delays(
    timelines: Sequence[Timeline], keys: list[str], truth: Truth, labels: Sequence[str]
) -> dict[str, Any]:
    """Seconds from each caught incident's true start to the alarm that caught it."""
    delays: list[float] = []
    for key, timeline in zip(keys, timelines, strict=True):
        for label in labels:
            events = [a for a in timeline.alarms if a.label == label]
            spans = as_spans(events)
            facts = [s for s in truth[key] if s.label == label]
            for event, matched in zip(events, match(facts, spans, CATCH_TIOU), strict=True):
                if matched is not None:
                    delays.append(event.alarm - facts[matched].start)
    if not delays:
        return {"count": 0, "mean": None, "median": None}
    return {
        "count": len(delays),
        "mean": float(np.mean(delays)),
        "median": float(np.median(delays)),
    }


def frame_labels(timeline: Timeline) -> list[tuple[float, str]]:
    """Every frame's label: the smoothed top label of the window whose cell holds the frame
    (cells reach halfway to the neighbouring windows and tile the video, as the timeline's
    segments do), so the whole video is measured, not only the window centres."""
    cells = window_cells(timeline.times, timeline.duration)
    top = timeline.smoothed.argmax(axis=1)
    frames = np.arange(max(1, round(timeline.duration * timeline.fps))) / timeline.fps
    which = np.clip(np.searchsorted(cells[:, 1], frames, side="right"), 0, len(top) - 1)
    return [(float(t), timeline.classes[top[i]]) for t, i in zip(frames, which, strict=True)]


def _frames(
    timelines: Sequence[Timeline], keys: list[str], truth: Truth, background: str | None
) -> dict[str, Any]:
    correct = samples = 0
    per_video = {}
    for key, timeline in zip(keys, timelines, strict=True):
        scores = frame_accuracy(truth[key], frame_labels(timeline), background=background)
        per_video[key] = scores["accuracy"]
        correct += scores["correct"]
        samples += scores["samples"]
    return {
        "accuracy": correct / samples if samples else 0.0,
        "samples": samples,
        "per_video": per_video,
        "rule": "every frame takes the smoothed top label of the window nearest it in time",
    }
