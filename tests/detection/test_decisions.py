"""Hysteresis: one fight is one event, short blips none, cooldown holds."""

from __future__ import annotations

import numpy as np
import pytest

from resaction.detection.decisions import DecisionTracker, Thresholds, replay
from resaction.errors import ConfigError


def run(values: list[float], thresholds: Thresholds, period: float = 0.25):
    tracker = DecisionTracker("gate", {1: ("fight", thresholds)})
    changes = []
    for index, value in enumerate(values):
        changes += tracker.update(np.array([1 - value, value]), index * period)
    return tracker, changes


def test_one_fight_with_a_dip_is_one_event() -> None:
    fight = [0.1] * 8 + [0.9] * 12 + [0.3] * 2 + [0.9] * 8 + [0.1] * 12
    _, changes = run(fight, Thresholds(enter=0.6, min_duration=0.5, min_gap=1.0, smooth=1))
    assert [c.kind for c in changes] == ["open", "close"]
    opened, closed = changes
    assert opened.start == pytest.approx(8 * 0.25)
    assert closed.start == opened.start
    assert closed.end == pytest.approx(29 * 0.25)
    assert closed.peak == pytest.approx(0.9) and 0.6 < closed.mean <= 0.9


def test_a_blip_shorter_than_min_duration_raises_nothing() -> None:
    _, changes = run(
        [0.1] * 4 + [0.95] * 2 + [0.1] * 10, Thresholds(enter=0.6, min_duration=1.0, smooth=1)
    )
    assert changes == []


def test_smoothing_and_cooldown() -> None:
    values = [0.9] * 8 + [0.0] * 8 + [0.9] * 8 + [0.0] * 30 + [0.9] * 8
    limits = Thresholds(enter=0.6, min_duration=0.25, min_gap=0.5, cooldown=5.0, smooth=2)
    tracker, changes = run(values, limits)
    opens = [c for c in changes if c.kind == "open"]
    # The second burst falls inside the cooldown after the first event; the third does not.
    assert len(opens) == 2
    assert opens[1].start > changes[1].end + 5.0
    assert tracker.scores()["fight"] == pytest.approx(0.9)
    assert tracker.open_labels() == ["fight"]
    assert [c.kind for c in tracker.flush(100.0)] == ["close"]


def test_thresholds_are_checked() -> None:
    with pytest.raises(ConfigError, match="exit_threshold"):
        Thresholds(enter=0.5, exit=0.7)
    with pytest.raises(ConfigError, match="threshold must lie"):
        Thresholds(enter=1.5)


def test_replay_gives_the_live_trackers_events_with_their_alarm_times() -> None:
    values = [0.1] * 8 + [0.9] * 12 + [0.1] * 12 + [0.9] * 6
    limits = Thresholds(enter=0.6, min_duration=0.5, min_gap=1.0, cooldown=0.0, smooth=1)
    _, live = run(values, limits)
    times = np.arange(len(values)) * 0.25
    probs = np.stack([1 - np.array(values), np.array(values)], axis=1)
    events = replay(probs, times, {1: ("fight", limits)}, alarm_times=times + 1.0)
    closed = [c for c in live if c.kind == "close"]
    assert [(e.start, e.end) for e in events[:1]] == [(closed[0].start, closed[0].end)]
    # The first event opened once min_duration had passed, 2 windows after its start.
    assert events[0].alarm == pytest.approx(events[0].start + 0.5 + 1.0)
    # The second is still open at the end: replay closes it at the last window.
    assert len(events) == 2 and events[1].end == pytest.approx(times[-1])
