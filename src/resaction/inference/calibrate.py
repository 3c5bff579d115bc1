"""Thresholds set by a false-alarm budget (or a precision), on the watcher's own decisions.

Each validation video's windows are scored once, at the watcher's rate and window; then, for
every candidate threshold of every alarm class, the live tracker (``detection.decisions``: the
same smoothing, hysteresis, minimum duration, gap and cooldown) is replayed over the recorded
scores and its alarms are matched to the truth. A true incident counts as caught when an alarm
matches it at tIoU 0.3 (one alarm catches one incident); every other alarm is a false alarm
(``event_eval.BUDGET_RULE``: any overlap would let one alarm that never ends catch an incident
with no false alarm at all). Per class the chosen threshold has the highest recall whose false
alarms per hour of footage stay within the budget (or whose precision reaches the target);
among equals, the middle one, so new footage has room on both sides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resaction.detection.curves import plot_curves
from resaction.detection.decisions import DEFAULT_WINDOW_RATE, Thresholds
from resaction.detection.event_metrics import event_metrics
from resaction.errors import ConfigError, ResactionError
from resaction.inference.alarms import alarm_labels, replay_windows
from resaction.inference.event_eval import (
    BUDGET_RULE,
    CATCH_TIOU,
    Truth,
    as_spans,
    budget_counts,
    video_key,
)
from resaction.inference.timeline import Timeline, TimelineConfig, run_timeline

if TYPE_CHECKING:
    from resaction.inference.predictor import Predictor

log = logging.getLogger(__name__)

CANDIDATES = np.round(np.arange(0.05, 1.0, 0.01), 2)
"""Thresholds tried for every class."""


@dataclass(frozen=True)
class Target:
    """The operating point asked for: a false-alarm budget per hour, or a precision."""

    false_alarms_per_hour: float | None = None
    precision: float | None = None

    def __post_init__(self) -> None:
        if (self.false_alarms_per_hour is None) == (self.precision is None):
            raise ConfigError("give one of --false-alarms-per-hour or --precision")
        if self.false_alarms_per_hour is not None and self.false_alarms_per_hour < 0:
            raise ConfigError("--false-alarms-per-hour must not be negative")
        if self.precision is not None and not 0 < self.precision <= 1:
            raise ConfigError(f"--precision must lie in (0, 1], got {self.precision}")

    def meets(self, point: Mapping[str, Any]) -> bool:
        if self.false_alarms_per_hour is not None:
            return point["false_alarms_per_hour"] <= self.false_alarms_per_hour + 1e-12
        return point["alarms"] > 0 and point["precision"] >= self.precision - 1e-12

    def describe(self) -> str:
        if self.false_alarms_per_hour is not None:
            return f"at most {self.false_alarms_per_hour:g} false alarms per hour"
        return f"precision at least {self.precision:g}"

    def doubts(self, label: str, point: Mapping[str, Any], hours: float) -> list[str]:
        """Why ``label``'s operating point should not be trusted: it catches no incident, or
        the footage is too short to show the budget (the false-alarm rate's 95% interval
        reaches past twice the budget)."""
        found = []
        if point["truth"] and not point["caught"]:
            found.append(
                f"{label}: the threshold catches none of its {point['truth']} incident(s) "
                f"within {self.describe()}"
            )
        high = point["false_alarms_per_hour_95"][1]
        budget = self.false_alarms_per_hour
        if budget is not None and high > max(2 * budget, 1e-9):
            found.append(
                f"{label}: {hours * 60:.1f} min of footage cannot show {budget:g} false "
                f"alarm(s) per hour (its 95% interval reaches {high:.1f}/h); calibrate on "
                "more footage without incidents"
            )
        return found


@dataclass
class Calibration:
    """The chosen thresholds, the operating point, every class's sweep, and what was skipped."""

    thresholds: dict[str, float]
    record: dict[str, Any]
    sweeps: dict[str, list[dict[str, Any]]]
    timelines: list[Timeline] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def score_videos(
    predictor: Predictor,
    videos: Sequence[str | Path],
    config: TimelineConfig,
    *,
    on_video: Callable[[int, int, str], None] | None = None,
) -> tuple[list[Timeline], list[tuple[str, str]]]:
    """One timeline per video; a video that cannot be read is skipped and listed."""
    timelines, skipped = [], []
    for number, video in enumerate(videos, 1):
        try:
            timelines.append(run_timeline(predictor, video, config))
        except ResactionError as error:
            log.warning("skipped %s: %s", video, error)
            skipped.append((str(video), str(error)))
        if on_video is not None:
            on_video(number, len(videos), str(video))
    return timelines, skipped


def sweep_class(
    timelines: Sequence[Timeline],
    truth: Truth,
    label: str,
    decision: Mapping[str, Any],
    candidates: Sequence[float] = tuple(CANDIDATES),
) -> list[dict[str, Any]]:
    """Recall, precision and false alarms per hour of ``label``'s alarms at every candidate."""
    keys = [video_key(t.video) for t in timelines]
    durations = {k: t.duration for k, t in zip(keys, timelines, strict=True)}
    facts = {k: [s for s in truth.get(k, []) if s.label == label] for k in keys}
    index = timelines[0].classes.index(label)
    points = []
    for threshold in candidates:
        watched = {index: (label, Thresholds(enter=float(threshold), **decision))}
        alarms = {
            k: as_spans(replay_windows(t.probs, t.starts, t.ends, watched))
            for k, t in zip(keys, timelines, strict=True)
        }
        measured = event_metrics(facts, alarms, durations, [label], tious=(CATCH_TIOU,))
        counts = budget_counts(measured["classes"][label], measured["hours"])
        points.append({"threshold": float(threshold), **counts})
    return points


def choose(points: Sequence[Mapping[str, Any]], target: Target, label: str) -> Mapping[str, Any]:
    """The point with the highest recall that meets ``target``; among equals the middle
    threshold, which leaves room on both sides for footage the calibration did not see; a
    one-line error with the best achievable rate when none does."""
    meeting = [p for p in points if target.meets(p)]
    if not meeting:
        top = max(points, key=lambda p: p["threshold"])
        if target.false_alarms_per_hour is not None:
            best = min(points, key=lambda p: (p["false_alarms_per_hour"], -p["threshold"]))
            achieved = f"the fewest is {best['false_alarms_per_hour']:.2f} per hour"
            at_top = f"{top['false_alarms_per_hour']:.2f} per hour"
        else:
            best = max(points, key=lambda p: (p["precision"], p["threshold"]))
            achieved = f"the best precision is {best['precision']:.2f}"
            at_top = f"precision {top['precision']:.2f}"
        raise ConfigError(
            f"no threshold of class {label!r} meets {target.describe()} on this data: {achieved} "
            f"(threshold {best['threshold']:.2f}; at the highest, {top['threshold']:.2f}, "
            f"{at_top}); relax the target or add validation footage"
        )
    best = max(p["recall"] for p in meeting)
    tied = sorted((p for p in meeting if p["recall"] == best), key=lambda p: p["threshold"])
    return tied[(len(tied) - 1) // 2]


def calibrate(
    predictor: Predictor,
    videos: Sequence[str | Path],
    truth: Truth,
    target: Target,
    *,
    decision: Mapping[str, Any] | None = None,
    window_s: float | None = None,
    rate: float = DEFAULT_WINDOW_RATE,
    background: str | None = None,
    on_video: Callable[[int, int, str], None] | None = None,
) -> Calibration:
    """Score ``videos``, sweep every alarm class and pick its threshold for ``target``."""
    decision = {**default_decision(), **(decision or {})}
    Thresholds(**decision)  # one-line errors for bad settings before any video is read
    background = background if background is not None else predictor.decisions.get("background")
    labels = alarm_labels(predictor.classes, background)
    config = TimelineConfig(window_s=window_s, rate=rate, background=background)
    config.check()
    timelines, skipped = score_videos(predictor, videos, config, on_video=on_video)
    if not timelines:
        raise ConfigError("no validation video could be read: nothing to calibrate on")
    wanted = {s.label for spans in truth.values() for s in spans}
    labels = [label for label in labels if label in wanted]
    if not labels:
        raise ConfigError("the validation truth has no event of any class the model alarms on")
    sweeps = {label: sweep_class(timelines, truth, label, decision) for label in labels}
    chosen = {label: choose(points, target, label) for label, points in sweeps.items()}
    hours = sum(t.duration for t in timelines) / 3600
    record = {
        "target": {k: v for k, v in vars(target).items() if v is not None},
        "decision": decision,
        "window_s": timelines[0].extra.get("window_s"),
        "rate": rate,
        "background": background,
        "hours": hours,
        "videos": len(timelines),
        "classes": {label: dict(point) for label, point in chosen.items()},
        "rule": BUDGET_RULE,
    }
    thresholds = {label: float(point["threshold"]) for label, point in chosen.items()}
    return Calibration(thresholds, record, sweeps, timelines, skipped)


def default_decision() -> dict[str, Any]:
    defaults = Thresholds()
    return {
        "min_duration": defaults.min_duration,
        "min_gap": defaults.min_gap,
        "cooldown": defaults.cooldown,
        "smooth": defaults.smooth,
    }


def write_calibration(calibration: Calibration, out_dir: str | Path) -> dict[str, Path]:
    """``calibration.json`` (operating point, every sweep, skipped videos) and
    ``recall_vs_false_alarms.png`` with each class's operating point marked."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "calibration.json", "plot": out / "recall_vs_false_alarms.png"}
    data = {
        "thresholds": calibration.thresholds,
        "calibration": calibration.record,
        "sweeps": calibration.sweeps,
        "skipped": [{"video": v, "reason": r} for v, r in calibration.skipped],
    }
    paths["json"].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    curves, points = {}, {}
    for label, sweep in calibration.sweeps.items():
        rates = np.array([p["false_alarms_per_hour"] for p in sweep])
        recalls = np.array([p["recall"] for p in sweep])
        order = np.argsort(rates, kind="stable")
        curves[label] = (rates[order], recalls[order])
        chosen = calibration.record["classes"][label]
        points[label] = (chosen["false_alarms_per_hour"], chosen["recall"])
    plot_curves(
        curves,
        paths["plot"],
        title=f"event recall against false alarms ({calibration.record['hours']:.2f} h of footage)",
        xlabel="false alarms per hour",
        ylabel="recall (incidents an alarm overlapped)",
        points=points,
        legend_values={k: f"threshold {v:.2f}" for k, v in calibration.thresholds.items()},
    )
    return paths
