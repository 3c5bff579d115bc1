"""From window scores to events: smoothing and hysteresis per camera and class.

A class's score is the mean of its last ``smooth`` window probabilities. An event starts when
that score has stayed at or above ``enter`` for ``min_duration`` seconds of stream time (its start
is the first window above), and ends when the score has stayed below ``exit`` for ``min_gap``
seconds (its end is the last window above ``exit``), so one fight with a dip in the middle is one
event, not fifty. After an event, the class stays quiet on that camera for ``cooldown`` seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resaction.errors import ConfigError

DEFAULT_WINDOW_RATE = 4.0
"""Windows per second the live watcher scores, and calibration replays at, by default."""
DECISION_KEYS = ("min_duration", "min_gap", "cooldown", "smooth")


@dataclass(frozen=True)
class Thresholds:
    """How a class's scores become events on one camera."""

    enter: float = 0.5
    exit: float | None = None
    min_duration: float = 0.5
    min_gap: float = 1.0
    cooldown: float = 5.0
    smooth: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.enter <= 1:
            raise ConfigError(f"threshold must lie in (0, 1], got {self.enter}")
        if not 0 <= self.exit_level <= self.enter:
            raise ConfigError(
                f"exit_threshold must lie in [0, threshold={self.enter}], got {self.exit_level}"
            )
        for name in ("min_duration", "min_gap", "cooldown"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be at least 0 seconds, got {getattr(self, name)}")
        if self.smooth < 1:
            raise ConfigError(f"smooth must be at least 1 window, got {self.smooth}")

    @property
    def exit_level(self) -> float:
        """``exit``, or 80% of ``enter`` when not given."""
        return self.enter * 0.8 if self.exit is None else self.exit


@dataclass
class Transition:
    """An event opening or closing on ``camera`` for ``label``; times are stream seconds."""

    kind: str  # "open" | "close"
    camera: str
    label: str
    start: float
    end: float
    peak: float
    mean: float


@dataclass
class _ClassState:
    thresholds: Thresholds
    recent: deque[float] = field(default_factory=deque)
    above_since: float | None = None
    below_since: float | None = None
    open: bool = False
    start: float = 0.0
    last_above: float = 0.0
    scores: list[float] = field(default_factory=list)
    quiet_until: float = float("-inf")
    score: float = 0.0


class DecisionTracker:
    """The hysteresis of one camera: ``update`` per window, transitions out."""

    def __init__(self, camera: str, watched: dict[int, tuple[str, Thresholds]]) -> None:
        self.camera = camera
        self._states = {index: (label, _ClassState(t)) for index, (label, t) in watched.items()}

    def update(self, probabilities: np.ndarray, time: float) -> list[Transition]:
        changes: list[Transition] = []
        for index, (label, state) in self._states.items():
            change = self._step(label, state, float(probabilities[index]), time)
            if change is not None:
                changes.append(change)
        return changes

    def scores(self) -> dict[str, float]:
        """The current smoothed score of every watched class."""
        return {label: state.score for label, state in self._states.values()}

    def open_labels(self) -> list[str]:
        return [label for label, state in self._states.values() if state.open]

    def flush(self, time: float) -> list[Transition]:
        """Close every open event (the camera went away or the watcher stops)."""
        closed = []
        for label, state in self._states.values():
            if state.open:
                closed.append(self._close(label, state, max(time, state.last_above)))
        return closed

    def _step(self, label: str, state: _ClassState, value: float, time: float) -> Transition | None:
        limits = state.thresholds
        state.recent.append(value)
        while len(state.recent) > limits.smooth:
            state.recent.popleft()
        score = state.score = float(np.mean(state.recent))
        if state.open:
            return self._step_open(label, state, score, time)
        if score < limits.enter or time < state.quiet_until:
            state.above_since = None
            state.scores = []
            return None
        if state.above_since is None:
            state.above_since = time
        state.scores.append(score)
        state.last_above = time
        if time - state.above_since < limits.min_duration:
            return None
        state.open, state.start, state.below_since = True, state.above_since, None
        return Transition("open", self.camera, label, state.start, time, *_peak_mean(state))

    def _step_open(
        self, label: str, state: _ClassState, score: float, time: float
    ) -> Transition | None:
        if score >= state.thresholds.exit_level:
            state.below_since = None
            state.scores.append(score)
            state.last_above = time
            return None
        if state.below_since is None:
            state.below_since = time
        if time - state.below_since < state.thresholds.min_gap:
            return None
        return self._close(label, state, state.last_above)

    def _close(self, label: str, state: _ClassState, end: float) -> Transition:
        peak, mean = _peak_mean(state)
        change = Transition("close", self.camera, label, state.start, end, peak, mean)
        state.open, state.above_since, state.below_since, state.scores = False, None, None, []
        state.quiet_until = end + state.thresholds.cooldown
        return change


def _peak_mean(state: _ClassState) -> tuple[float, float]:
    return max(state.scores), float(np.mean(state.scores))


@dataclass(frozen=True)
class DecidedEvent:
    """An event the tracker raised over a recorded sequence; ``alarm`` is the stream time at
    which it opened (when a live watcher would have sent it)."""

    label: str
    start: float
    end: float
    peak: float
    mean: float
    alarm: float


def replay(
    probabilities: np.ndarray,
    times: np.ndarray,
    watched: Mapping[int, tuple[str, Thresholds]],
    *,
    alarm_times: np.ndarray | None = None,
) -> list[DecidedEvent]:
    """Every event the live tracker raises over recorded windows, in time order.

    ``probabilities`` is (T, K), ``times`` each window's time (the one the tracker sees) and
    ``alarm_times`` when the window was complete (default: ``times``). Events still open at the
    end close at the last window, as a watcher stopping there would close them.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    alarms = times if alarm_times is None else np.asarray(alarm_times, dtype=np.float64)
    if len(probabilities) != len(times) or len(alarms) != len(times):
        raise ValueError(f"{len(probabilities)} windows but {len(times)} times")
    tracker = DecisionTracker("replay", dict(watched))
    opened: dict[str, float] = {}
    events: list[DecidedEvent] = []
    changes: list[tuple[Transition, float]] = []
    for row, time, alarm in zip(probabilities, times, alarms, strict=True):
        changes += [(change, float(alarm)) for change in tracker.update(row, float(time))]
    if len(times):
        changes += [(change, float(alarms[-1])) for change in tracker.flush(float(times[-1]))]
    for change, alarm in changes:
        if change.kind == "open":
            opened[change.label] = alarm
            continue
        events.append(
            DecidedEvent(
                change.label,
                change.start,
                change.end,
                change.peak,
                change.mean,
                opened.pop(change.label, alarm),
            )
        )
    return sorted(events, key=lambda event: (event.start, event.label))


def calibrated_settings(extra: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per class, the ``Thresholds`` settings a checkpoint's calibration chose: its
    ``thresholds`` ({label: enter}) with the decision settings it was calibrated under."""
    extra = extra or {}
    thresholds = extra.get("thresholds") or {}
    decision = (extra.get("calibration") or {}).get("decision") or {}
    shared = {key: decision[key] for key in DECISION_KEYS if key in decision}
    return {str(label): {**shared, "enter": float(v)} for label, v in thresholds.items()}
