"""Clip samplers: which frames of a video make up each clip.

A sampler is a callable ``sampler(num_frames, fps, rng) -> list[np.ndarray]``; each array holds
one clip's frame indices (int64, within ``0..num_frames-1``, repeats allowed). Dense samplers take
``clip_len`` frames ``frame_interval`` apart, or resampled to ``target_fps`` (torchvision's
Kinetics models saw 15 fps: a step of ``fps / target_fps`` source frames, rounded per frame so
the error never accumulates). A video shorter than one clip is looped or padded with its last
frame (``short_video``), never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from resaction.errors import ConfigError, FrameIndexError

ShortVideo = Literal["loop", "pad"]
SHORT_VIDEO_MODES = ("loop", "pad")


@dataclass(frozen=True)
class DenseClipSampler:
    """Geometry shared by the samplers of consecutive (or evenly stepped) frames."""

    clip_len: int
    _: KW_ONLY
    frame_interval: int = 1
    target_fps: float | None = None
    short_video: ShortVideo = "loop"

    def __post_init__(self) -> None:
        if self.clip_len < 1:
            raise ConfigError(f"clip_len must be at least 1, got {self.clip_len}")
        if self.frame_interval < 1:
            raise ConfigError(f"frame_interval must be at least 1, got {self.frame_interval}")
        if self.target_fps is not None and not self.target_fps > 0:
            raise ConfigError(f"target_fps must be positive, got {self.target_fps}")
        if self.short_video not in SHORT_VIDEO_MODES:
            raise ConfigError(f"short_video must be 'loop' or 'pad', got {self.short_video!r}")

    def step(self, fps: float | None) -> float:
        """Source frames between sampled frames (``frame_interval`` when the fps is unknown)."""
        if self.target_fps is not None and fps is not None and math.isfinite(fps) and fps > 0:
            return fps / self.target_fps
        return float(self.frame_interval)

    def offsets(self, fps: float | None) -> np.ndarray:
        """Frame offsets of one clip from its first frame."""
        return np.floor(np.arange(self.clip_len) * self.step(fps) + 0.5).astype(np.int64)

    def span(self, fps: float | None) -> int:
        """Source frames one clip covers."""
        return int(self.offsets(fps)[-1]) + 1

    def clip_at(self, start: int, num_frames: int, fps: float | None) -> np.ndarray:
        """The clip starting at frame ``start``, looped or padded where it runs off the end."""
        indices = start + self.offsets(fps)
        if self.short_video == "loop":
            return indices % num_frames
        return np.minimum(indices, num_frames - 1)

    def _last_start(self, num_frames: int, fps: float | None) -> int:
        _check_frames(num_frames)
        return max(num_frames - self.span(fps), 0)


@dataclass(frozen=True)
class RandomClipSampler(DenseClipSampler):
    """One clip at a random position (training)."""

    @property
    def num_clips(self) -> int:
        return 1

    def __call__(
        self, num_frames: int, fps: float | None, rng: np.random.Generator
    ) -> list[np.ndarray]:
        start = int(rng.integers(0, self._last_start(num_frames, fps) + 1))
        return [self.clip_at(start, num_frames, fps)]


@dataclass(frozen=True)
class UniformClipSampler(DenseClipSampler):
    """``num_clips`` clips spread evenly from the first to the last possible start (testing).

    One clip is taken from the centre. ``rng`` is accepted and unused.
    """

    num_clips: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_clips < 1:
            raise ConfigError(f"num_clips must be at least 1, got {self.num_clips}")

    def __call__(
        self, num_frames: int, fps: float | None, rng: np.random.Generator | None = None
    ) -> list[np.ndarray]:
        last = self._last_start(num_frames, fps)
        if self.num_clips == 1:
            starts = [last // 2]
        else:
            starts = np.floor(np.linspace(0, last, self.num_clips) + 0.5).astype(np.int64).tolist()
        return [self.clip_at(start, num_frames, fps) for start in starts]


@dataclass(frozen=True)
class SegmentSampler:
    """TSN: the video cut into equal segments, ``segment_len`` consecutive frames from each.

    ``clip_len`` is the frames of one clip, so there are ``clip_len // segment_len`` segments;
    with ``segment_len`` > 1 the frames of a segment are ``frame_interval`` apart (the RGB
    difference models read them as motion). Training takes a random position in every segment
    (``num_clips`` independent draws); testing takes the centre, or for ``num_clips`` > 1 the
    positions at ``(k + 0.5) / num_clips`` of each segment. Videos with fewer frames than
    segments repeat frames evenly.
    """

    clip_len: int
    _: KW_ONLY
    train: bool = False
    num_clips: int = 1
    segment_len: int = 1
    frame_interval: int = 1

    def __post_init__(self) -> None:
        if self.clip_len < 1:
            raise ConfigError(f"the number of segments must be at least 1, got {self.clip_len}")
        if self.num_clips < 1:
            raise ConfigError(f"num_clips must be at least 1, got {self.num_clips}")
        if self.segment_len < 1 or self.clip_len % self.segment_len:
            raise ConfigError(
                f"segment_len must divide clip_len: {self.segment_len} does not divide "
                f"{self.clip_len}"
            )
        if self.frame_interval < 1:
            raise ConfigError(f"frame_interval must be at least 1, got {self.frame_interval}")

    @property
    def num_segments(self) -> int:
        return self.clip_len // self.segment_len

    def __call__(
        self, num_frames: int, fps: float | None, rng: np.random.Generator
    ) -> list[np.ndarray]:
        _check_frames(num_frames)
        within = np.arange(self.segment_len) * self.frame_interval
        usable = max(num_frames - int(within[-1]), 1)
        segments = self.num_segments
        length = usable / segments
        starts = np.arange(segments) * length
        if self.train:
            fractions = [rng.random(segments) for _ in range(self.num_clips)]
        else:
            fractions = [(k + 0.5) / self.num_clips for k in range(self.num_clips)]
        clips = []
        for fraction in fractions:
            first = np.clip(np.floor(starts + fraction * length), 0, usable - 1).astype(np.int64)
            clips.append(np.minimum(first[:, None] + within, num_frames - 1).reshape(-1))
        return clips


class Window(NamedTuple):
    """One sliding-window clip and the time it covers, in seconds."""

    indices: np.ndarray
    start: float
    end: float


@dataclass(frozen=True)
class SlidingWindowSampler(DenseClipSampler):
    """Every clip ``stride`` source frames apart, for timelines.

    With ``cover_end`` a last window ends on the last frame when the stride does not land there.
    """

    stride: int = 8
    cover_end: bool = True
    unit_len: int = 1
    unit_step: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stride < 1:
            raise ConfigError(f"stride must be at least 1 frame, got {self.stride}")
        if self.unit_len < 1 or self.clip_len % self.unit_len:
            raise ConfigError(f"unit_len {self.unit_len} must divide clip_len {self.clip_len}")
        if self.unit_step is not None and self.unit_step < 1:
            raise ConfigError(f"unit_step must be at least 1 frame, got {self.unit_step}")

    def offsets(self, fps: float | None) -> np.ndarray:
        """With ``unit_step``: units of ``unit_len`` frames (``frame_interval`` apart) whose
        first frames are ``unit_step`` apart, the lattice a live camera uses; else dense."""
        if self.unit_step is None:
            return super().offsets(fps)
        firsts = np.arange(self.clip_len // self.unit_len) * self.unit_step
        within = np.arange(self.unit_len) * self.frame_interval
        return (firsts[:, None] + within).reshape(-1).astype(np.int64)

    def starts(self, num_frames: int, fps: float | None) -> list[int]:
        last = self._last_start(num_frames, fps)
        starts = list(range(0, last + 1, self.stride))
        if self.cover_end and starts[-1] != last:
            starts.append(last)
        return starts

    def __call__(
        self, num_frames: int, fps: float | None, rng: np.random.Generator | None = None
    ) -> list[np.ndarray]:
        return [self.clip_at(s, num_frames, fps) for s in self.starts(num_frames, fps)]

    def windows(
        self, num_frames: int, timestamps: np.ndarray, fps: float | None = None
    ) -> list[Window]:
        """Windows with start and end times from the frames' timestamps.

        A window ends where the frame after its last one starts (for the last frame of the
        video: its timestamp plus one frame duration).
        """
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if len(timestamps) < num_frames:
            raise ValueError(f"{len(timestamps)} timestamps for {num_frames} frames")
        if fps is None:
            fps = _fps_from_timestamps(timestamps[:num_frames])
        frame_time = 1.0 / fps if fps else 0.0
        windows = []
        for indices in self(num_frames, fps):
            first, last = int(indices[0]), int(indices.max())
            end = timestamps[last + 1] if last + 1 < num_frames else timestamps[last] + frame_time
            windows.append(Window(indices, float(timestamps[first]), float(end)))
        return windows


Sampler = RandomClipSampler | UniformClipSampler | SegmentSampler | SlidingWindowSampler


def build_sampler(
    preprocess: Mapping[str, Any], protocol: Mapping[str, Any] | None = None, train: bool = False
) -> Sampler:
    """The sampler a preprocessing dict and an evaluation protocol describe.

    Training gives a random clip (or random TSN segments); evaluation gives
    ``protocol["num_clips"]`` uniform clips (or centre segments).
    """
    clip_len = int(preprocess.get("clip_len", 16))
    sampling = preprocess.get("sampling", "dense")
    clips = 1 if train else int((protocol or {}).get("num_clips", 1))
    if sampling == "segments":
        return SegmentSampler(
            clip_len,
            train=train,
            num_clips=clips,
            segment_len=int(preprocess.get("segment_len", 1) or 1),
            frame_interval=int(preprocess.get("frame_interval", 1) or 1),
        )
    if sampling != "dense":
        raise ConfigError(f"unknown sampling {sampling!r}: use 'dense' or 'segments'")
    target_fps = preprocess.get("target_fps")
    common = {
        "frame_interval": int(preprocess.get("frame_interval", 1) or 1),
        "target_fps": float(target_fps) if target_fps else None,
        "short_video": preprocess.get("short_video", "loop"),
    }
    if train:
        return RandomClipSampler(clip_len, **common)
    return UniformClipSampler(clip_len, num_clips=clips, **common)


def window_seconds(preprocess: Mapping[str, Any], given: float | None = None) -> float | None:
    """Seconds one inference window covers: ``given``, else the span of video the model's
    training clips covered (``window_s``, recorded by ``train`` for models that spread their
    frames over whole clips), else None (the model's own frame step decides)."""
    if given is not None:
        if not given > 0:
            raise ConfigError(f"a window must cover a positive time, got {given} s")
        return float(given)
    recorded = preprocess.get("window_s")
    return float(recorded) if recorded else None


def unit_step(preprocess: Mapping[str, Any], fps: float, window_s: float | None = None) -> int:
    """Source frames between the first frames of a window's units (a unit is one frame, or a
    difference model's ``segment_len`` consecutive frames): ``window_s`` seconds spread over
    the window's units, else the model's frame step (``frame_interval``, or the whole step
    nearest to ``target_fps``) times the unit length."""
    clip_len = int(preprocess.get("clip_len", 16))
    unit_len = int(preprocess.get("segment_len", 1) or 1)
    interval = int(preprocess.get("frame_interval", 1) or 1)
    unit_span = (unit_len - 1) * interval + 1
    if window_s is not None and fps > 0:
        return max(unit_span, round(window_s * fps / max(clip_len // unit_len, 1)))
    target = preprocess.get("target_fps")
    step = max(1, round(fps / float(target))) if target and fps > 0 else interval
    return step * unit_len


def _check_frames(num_frames: int) -> None:
    if num_frames < 1:
        raise FrameIndexError(f"video has {num_frames} frames: nothing to sample")


def _fps_from_timestamps(timestamps: np.ndarray) -> float | None:
    if len(timestamps) < 2:
        return None
    gaps = np.diff(timestamps)
    gaps = gaps[gaps > 0]
    return float(1.0 / np.median(gaps)) if len(gaps) else None
