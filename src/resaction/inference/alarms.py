"""Alarms over a recorded video: the live watcher's decisions replayed on a timeline's windows.

The decisions are ``detection.decisions``'s tracker, the one the watcher runs: the same
smoothing (a mean of the last ``smooth`` windows), hysteresis, minimum duration, gap and
cooldown. The tracker sees each window at its centre time, so an event's start and end estimate
when the action happened; the alarm time is when the window that opened it was complete, which
is when a live watcher would have sent it. Thresholds come from the model's calibration
(``resaction calibrate``), else 0.5 for every class; the background class raises no alarms.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from resaction.detection.decisions import DecidedEvent, Thresholds, calibrated_settings, replay
from resaction.errors import ConfigError

log = logging.getLogger(__name__)

Watched = dict[int, tuple[str, Thresholds]]


def alarm_labels(classes: Sequence[str], background: str | None) -> list[str]:
    """The classes that raise alarms: all but ``background``."""
    if background is not None and background not in classes:
        raise ConfigError(
            f"background class {background!r} is not one of the model's classes: "
            + ", ".join(classes)
        )
    return [label for label in classes if label != background]


def alarm_settings(
    classes: Sequence[str],
    decisions: Mapping[str, Any] | None,
    *,
    background: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Watched, str, str | None]:
    """Each alarm class's ``Thresholds``, where they came from (for the user to read), and the
    background class.

    ``decisions`` is what the model file carries (``thresholds``, ``calibration``,
    ``background``); ``overrides`` are ``Thresholds`` settings given on the command line, applied
    to every class over the calibration.
    """
    decisions = decisions or {}
    background = background if background is not None else decisions.get("background")
    calibrated = calibrated_settings(decisions)
    watched: Watched = {}
    for label in alarm_labels(classes, background):
        values = {**calibrated.get(label, {}), **(overrides or {})}
        watched[list(classes).index(label)] = (label, Thresholds(**values))
    if overrides and "enter" in overrides:
        source = f"threshold {overrides['enter']} given"
    elif calibrated:
        source = "calibrated thresholds from the model file"
    else:
        source = "threshold 0.5: the model is not calibrated (run resaction calibrate)"
    return watched, source, background


def replay_windows(
    probabilities: np.ndarray, starts: np.ndarray, ends: np.ndarray, watched: Watched
) -> list[DecidedEvent]:
    """The alarms the live tracker raises over windows spanning ``starts``..``ends``."""
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    return replay(probabilities, (starts + ends) / 2, watched, alarm_times=ends)


def alarm_rows(alarms: Sequence[DecidedEvent]) -> list[dict[str, Any]]:
    """Alarms as rounded plain dicts (JSON and CSV rows)."""
    return [
        {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(alarm).items()}
        for alarm in alarms
    ]


def settings_rows(watched: Watched) -> dict[str, dict[str, Any]]:
    """Per alarm class, the decision settings used (for the JSON beside the alarms)."""
    return {
        label: {**asdict(limits), "exit": limits.exit_level} for label, limits in watched.values()
    }
