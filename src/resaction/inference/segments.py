"""From per-window probabilities to labelled time segments: smoothing, then extraction.

Windows are points in time (their centres); a segment spans the cells of the windows it holds,
each cell reaching halfway to the neighbouring windows (the outer ones to the ends of the video),
so cells tile the video without gaps or overlaps and a single window still has a duration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from resaction.errors import ConfigError

SmoothMethod = Literal["none", "mean", "ema"]
SMOOTH_METHODS: tuple[str, ...] = ("none", "mean", "ema")


def smooth_probs(probs: np.ndarray, method: str = "mean", window: int = 5) -> np.ndarray:
    """Smooth (T, K) probabilities along time.

    ``mean`` is a centred moving average of ``window`` steps (edges use the steps that exist),
    so it adds no lag; ``ema`` is a causal exponential average with ``alpha = 2 / (window + 1)``,
    the same filter a live stream can run, so it lags by about ``window / 2`` steps. Rows still
    sum to one afterwards.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"expected (T, K) probabilities, got shape {probs.shape}")
    if method not in SMOOTH_METHODS:
        raise ConfigError(f"unknown smoothing {method!r}; use one of {', '.join(SMOOTH_METHODS)}")
    if window < 1:
        raise ConfigError(f"smoothing window must be at least 1, got {window}")
    if method == "none" or window == 1 or len(probs) == 0:
        return probs.copy()
    if method == "mean":
        return _centred_mean(probs, window)
    return _ema(probs, 2.0 / (window + 1))


def _centred_mean(probs: np.ndarray, window: int) -> np.ndarray:
    before = (window - 1) // 2
    after = window - 1 - before
    cumulative = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    steps = np.arange(len(probs))
    lo = np.clip(steps - before, 0, len(probs))
    hi = np.clip(steps + after + 1, 0, len(probs))
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None]


def _ema(probs: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(probs)
    out[0] = probs[0]
    for step in range(1, len(probs)):
        out[step] = alpha * probs[step] + (1.0 - alpha) * out[step - 1]
    return out


def window_cells(times: np.ndarray, duration: float | None = None) -> np.ndarray:
    """(T, 2) start and end time of each window's cell: halfway to its neighbours.

    With ``duration`` the cells tile ``[0, duration]`` exactly (the first starts at 0, the last
    ends at the end of the video); without it the outer cells extend by half the neighbouring
    spacing.
    """
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        return np.zeros((0, 2))
    if len(times) == 1:
        return np.array([[0.0, duration if duration is not None else times[0]]])
    mids = (times[1:] + times[:-1]) / 2
    first = 0.0 if duration is not None else max(0.0, times[0] - (mids[0] - times[0]))
    last = duration if duration is not None else times[-1] + (times[-1] - mids[-1])
    return np.stack([np.concatenate([[first], mids]), np.concatenate([mids, [last]])], axis=1)


@dataclass
class Segment:
    """A stretch of video with one label; ``confidence``: its mean probability over the windows."""

    label: str
    label_index: int
    start: float
    end: float
    confidence: float
    windows: list[int] = field(default_factory=list, repr=False)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("windows")
        row["duration"] = self.duration
        return row


def extract_segments(
    probs: np.ndarray,
    times: np.ndarray,
    classes: list[str],
    *,
    threshold: float = 0.5,
    min_duration: float = 0.0,
    merge_gap: float = 0.0,
    duration: float | None = None,
) -> list[Segment]:
    """Contiguous runs of one top label whose probability reaches ``threshold``.

    In order: runs of the same arg-max label at or above the threshold become segments;
    neighbouring segments of one label separated by at most ``merge_gap`` seconds (and nothing
    else) are joined; segments shorter than ``min_duration`` are dropped; the joining is done
    again, so a short interruption that was dropped no longer splits its neighbours.
    """
    probs = np.asarray(probs, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(times):
        raise ValueError(f"probs {probs.shape} and times {times.shape} do not match")
    if probs.shape[1] != len(classes):
        raise ValueError(f"probs have {probs.shape[1]} classes, names {len(classes)}")
    if len(probs) == 0:
        return []
    cells = window_cells(times, duration)
    top = probs.argmax(axis=1)
    active = probs[np.arange(len(probs)), top] >= threshold
    runs: list[list[int]] = []
    for step in range(len(probs)):
        if not active[step]:
            continue
        if runs and runs[-1][-1] == step - 1 and top[runs[-1][-1]] == top[step]:
            runs[-1].append(step)
        else:
            runs.append([step])
    runs = _merge_runs(runs, top, cells, merge_gap)
    runs = [run for run in runs if cells[run[-1], 1] - cells[run[0], 0] >= min_duration]
    runs = _merge_runs(runs, top, cells, merge_gap)
    segments = []
    for run in runs:
        label = int(top[run[0]])
        segments.append(
            Segment(
                label=classes[label],
                label_index=label,
                start=float(cells[run[0], 0]),
                end=float(cells[run[-1], 1]),
                confidence=float(probs[run, label].mean()),
                windows=list(run),
            )
        )
    return segments


def _merge_runs(
    runs: list[list[int]], top: np.ndarray, cells: np.ndarray, merge_gap: float
) -> list[list[int]]:
    merged: list[list[int]] = []
    for run in runs:
        if merged:
            previous = merged[-1]
            gap = cells[run[0], 0] - cells[previous[-1], 1]
            if top[previous[0]] == top[run[0]] and gap <= merge_gap + 1e-9:
                merged[-1] = previous + run
                continue
        merged.append(list(run))
    return merged
