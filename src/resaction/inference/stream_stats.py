"""What a stream run keeps count of: the rolling mean behind the label, and its statistics."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from resaction.errors import ConfigError

LATENCY_HISTORY = 10_000


class RollingMean:
    """Mean of the last ``size`` probability vectors."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ConfigError(f"--smooth must be at least 1, got {size}")
        self._history: deque[np.ndarray] = deque(maxlen=size)

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        self._history.append(np.asarray(probs, dtype=np.float64))
        return np.mean(self._history, axis=0)

    def __len__(self) -> int:
        return len(self._history)


class StreamStats:
    """Counters and latencies of a stream run; percentiles over the last 10,000 windows."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.frames = 0
        self.dropped = 0
        self.windows = 0
        self.label_changes = 0
        self.reconnects = 0
        self.latencies: deque[float] = deque(maxlen=LATENCY_HISTORY)

    def add_window(self, latency: float) -> None:
        self.windows += 1
        self.latencies.append(latency)

    def summary(self, frames_read: int) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        latencies = np.asarray(self.latencies) * 1000.0
        return {
            "seconds": round(elapsed, 3),
            "frames_read": frames_read,
            "frames_seen": self.frames,
            "dropped_frames": self.dropped,
            "input_fps": round(frames_read / elapsed, 2),
            "windows": self.windows,
            "windows_per_s": round(self.windows / elapsed, 2),
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p95_ms": _percentile(latencies, 95),
            "label_changes": self.label_changes,
            "reconnects": self.reconnects,
        }


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None
