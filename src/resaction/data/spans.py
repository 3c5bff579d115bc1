"""How much video an entry covers: in seconds (for annotations and the training window) and in
frames (for the sampler).

``video_facts`` reads a video's duration and frame rate from its container header, without
building a frame index or decoding (milliseconds a file; cached per file while it is unchanged),
so annotation files with thousands of rows and the trainer's training window stay cheap.

``frame_window`` is the one rule for sampling inside a labelled segment: the sampler sees the
segment's frames, offset to where they start. A dense clip longer than its segment is centred
on the segment and runs into the video around it; it keeps the segment's label when the segment
fills at least half of the clip (``MIN_COVER``), else the entry is skipped and reported: a clip
mostly of something else would teach the wrong label.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resaction.data.entries import VideoEntry
from resaction.errors import DatasetError, ResactionError
from resaction.io import VideoReader
from resaction.io.container import open_container

MIN_COVER = 0.5
MAX_PROBED = 1000
_AV_TIME_BASE = 1_000_000  # FFmpeg's AV_TIME_BASE: container durations are in microseconds


@dataclass(frozen=True)
class VideoFacts:
    """A video's length in seconds and its mean frame rate, as its container states them."""

    duration: float
    fps: float


class SegmentFitError(DatasetError):
    """A labelled segment too short for the model's clips (see ``frame_window``)."""


def video_facts(path: str | Path) -> VideoFacts:
    """Duration and frame rate from the container header; ``VideoError`` if it cannot be read.

    Files whose header lacks them (some streams) fall back to the frame index."""
    path = Path(path)
    stat = path.stat() if path.is_file() else None
    key = (stat.st_size, stat.st_mtime_ns) if stat else (0, 0)
    return _cached_facts(str(path.resolve() if stat else path), *key)


@functools.lru_cache(maxsize=4096)
def _cached_facts(path: str, size: int, mtime_ns: int) -> VideoFacts:
    container, stream = open_container(path)
    try:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / _AV_TIME_BASE
        elif stream.frames and fps:
            duration = stream.frames / fps
    finally:
        container.close()
    if duration > 0 and fps > 0:
        return VideoFacts(duration, fps)
    with VideoReader(path) as reader:
        return VideoFacts(float(reader.duration), float(reader.fps))


def entry_seconds(entry: VideoEntry) -> float:
    """Seconds of video ``entry`` labels: its segment, or the whole video."""
    if entry.start is not None and entry.end is not None:
        return float(entry.end - entry.start)
    return video_facts(entry.path).duration


def median_span(entries: Sequence[VideoEntry], limit: int = MAX_PROBED) -> float | None:
    """The median of ``entry_seconds`` (of at most ``limit`` evenly spaced entries, which
    estimates it closely and bounds the probing); None without readable entries."""
    if not entries:
        return None
    picked = np.unique(np.linspace(0, len(entries) - 1, min(len(entries), limit)).astype(int))
    seconds = []
    for index in picked.tolist():
        try:
            seconds.append(entry_seconds(entries[index]))
        except (ResactionError, OSError):  # unreadable: the dataset skips and reports it
            continue
    return float(statistics.median(seconds)) if seconds else None


def training_window(preprocess: Mapping[str, Any], entries: Sequence[VideoEntry]) -> float | None:
    """Seconds of video one training clip covered: for models that spread their frames over
    whole clips or segments (``sampling: segments``) the median entry length; None for dense
    clips, whose span is fixed by the clip length and frame step."""
    if preprocess.get("sampling") != "segments":
        return None
    return median_span(entries)


def frame_window(entry: VideoEntry, timestamps: np.ndarray, span: int | None) -> tuple[int, int]:
    """``(first frame, frame count)`` for the sampler of ``entry``; ``span`` is the frames one
    dense clip covers (None for samplers that spread over any length).

    A segment holds the frames whose timestamps lie in ``[start, end)`` (at least the frame on
    screen at ``start``). A dense clip longer than that is centred on it (see the module)."""
    num_frames = len(timestamps)
    if entry.start is None or entry.end is None:
        return 0, num_frames
    first = int(np.searchsorted(timestamps, entry.start, side="left"))
    stop = int(np.searchsorted(timestamps, entry.end, side="left"))
    if stop <= first:
        first = max(int(np.searchsorted(timestamps, entry.start, side="right")) - 1, 0)
        stop = first + 1
    first = min(first, num_frames - 1)
    count = min(stop, num_frames) - first
    if span is None or span <= count:
        return first, count
    if count < MIN_COVER * span:
        raise SegmentFitError(
            f"segment {entry.start:.2f}-{entry.end:.2f} s has {count} frames, under half of "
            f"the {span} a clip covers: label longer segments or use shorter clips"
        )
    start = min(max(first - (span - count) // 2, 0), max(num_frames - span, 0))
    return start, min(span, num_frames - start)


def segment_name(entry: VideoEntry) -> str:
    """The video and, for a segment, its time range: how reports name an entry."""
    if entry.start is None or entry.end is None:
        return str(entry.path)
    return f"{entry.path} [{entry.start:.2f}-{entry.end:.2f} s]"
