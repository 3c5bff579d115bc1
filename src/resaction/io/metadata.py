"""What every reader backend reports about a video."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VideoMetadata:
    """A video's stream properties.

    ``width`` and ``height`` are the display size (after ``rotation``, before any resize the
    reader applies). ``rotation`` is how far the coded pictures are turned counter-clockwise for
    display (0, 90, 180 or 270; the display-matrix convention of FFmpeg), and frames are returned
    already turned. ``fps`` is the mean frame rate, ``duration`` the seconds from the first frame
    to the end of the last.
    """

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str
    rotation: int
    pix_fmt: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_rate(timestamps: np.ndarray, nominal: float | None) -> float:
    """The mean frame rate of ``timestamps`` (seconds), preferring the container's nominal rate
    when it agrees within 1% (it is exact, e.g. 30000/1001, where the mean is rounded)."""
    if len(timestamps) < 2 or timestamps[-1] <= timestamps[0]:
        return float(nominal or 0.0)
    measured = (len(timestamps) - 1) / float(timestamps[-1] - timestamps[0])
    if nominal and abs(nominal - measured) <= 0.01 * measured:
        return float(nominal)
    return measured
