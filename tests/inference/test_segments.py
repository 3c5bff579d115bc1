from __future__ import annotations

import numpy as np
import pytest

from resaction.errors import ConfigError
from resaction.inference.segments import extract_segments, smooth_probs, window_cells

CLASSES = ["run", "walk", "wave"]


def one_hot_track(labels: list[int], confidence: float = 0.9) -> np.ndarray:
    """Probabilities with ``confidence`` on the given label per step (-1: uniform, no label)."""
    probs = np.full((len(labels), 3), 1 / 3)
    for step, label in enumerate(labels):
        if label >= 0:
            probs[step] = (1 - confidence) / 2
            probs[step, label] = confidence
    return probs


def test_mean_smoothing_is_centred_and_keeps_a_distribution() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=20)
    smoothed = smooth_probs(probs, "mean", 5)
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    np.testing.assert_allclose(smoothed[10], probs[8:13].mean(axis=0))
    np.testing.assert_allclose(smoothed[0], probs[0:3].mean(axis=0))
    np.testing.assert_allclose(smoothed[-1], probs[-3:].mean(axis=0))


def test_ema_is_causal() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=12)
    changed = probs.copy()
    changed[8:] = rng.dirichlet(np.ones(3), size=4)
    before = smooth_probs(probs, "ema", 4)
    after = smooth_probs(changed, "ema", 4)
    np.testing.assert_allclose(before[:8], after[:8])
    assert not np.allclose(before[8:], after[8:])
    alpha = 2 / 5
    np.testing.assert_allclose(before[1], alpha * probs[1] + (1 - alpha) * probs[0])


def test_smoothing_removes_a_single_flicker() -> None:
    labels = [0] * 6 + [1] + [0] * 6
    smoothed = smooth_probs(one_hot_track(labels), "mean", 5)
    assert (smoothed.argmax(axis=1) == 0).all()


def test_unknown_smoothing_is_a_user_error() -> None:
    with pytest.raises(ConfigError, match="unknown smoothing"):
        smooth_probs(np.ones((3, 2)) / 2, "median", 3)


def test_cells_tile_the_time_axis() -> None:
    times = np.array([0.5, 1.0, 1.5, 2.0])
    cells = window_cells(times, duration=2.1)
    np.testing.assert_allclose(cells[:, 0], [0.0, 0.75, 1.25, 1.75])
    np.testing.assert_allclose(cells[:, 1], [0.75, 1.25, 1.75, 2.1])
    np.testing.assert_allclose(cells[1:, 0], cells[:-1, 1])
    open_ended = window_cells(times)
    np.testing.assert_allclose(open_ended[[0, -1]], [[0.25, 0.75], [1.75, 2.25]])


def test_runs_above_threshold_become_segments() -> None:
    labels = [0, 0, 0, -1, -1, 2, 2, 2, 2, 1, 1]
    times = np.arange(len(labels)) * 0.5 + 0.25
    segments = extract_segments(one_hot_track(labels), times, CLASSES, threshold=0.5)
    assert [(s.label, s.start, s.end) for s in segments] == [
        ("run", 0.0, 1.5),
        ("wave", 2.5, 4.5),
        ("walk", 4.5, 5.5),
    ]
    assert all(s.confidence == pytest.approx(0.9) for s in segments)


def test_short_gaps_merge_and_short_segments_drop() -> None:
    labels = [0, 0, 0, -1, 0, 0, 0, 1, 0, 0, -1, -1, -1, -1, 0, 0]
    times = np.arange(len(labels)) * 0.5 + 0.25
    probs = one_hot_track(labels)
    kept = extract_segments(probs, times, CLASSES, threshold=0.5, merge_gap=0.0)
    assert len(kept) == 5
    merged = extract_segments(probs, times, CLASSES, threshold=0.5, merge_gap=0.5, min_duration=1.0)
    # The 0.5 s gap joins the first two runs; the lone "walk" step is shorter than 1 s, so it is
    # dropped and the "run" on either side joins up; the 2 s gap stays a gap.
    assert [(s.label, s.start, s.end) for s in merged] == [("run", 0.0, 5.0), ("run", 7.0, 8.0)]


def test_min_duration_drops_whole_segments_and_threshold_is_respected() -> None:
    labels = [1, 1, -1, 2, 2, 2, 2, 2]
    times = np.arange(len(labels)) + 0.5
    probs = one_hot_track(labels, confidence=0.6)
    assert extract_segments(probs, times, CLASSES, threshold=0.7) == []
    segments = extract_segments(probs, times, CLASSES, threshold=0.5, min_duration=3.0)
    assert [(s.label, s.start, s.end) for s in segments] == [("wave", 3.0, 8.0)]
    assert segments[0].to_dict()["duration"] == pytest.approx(5.0)
