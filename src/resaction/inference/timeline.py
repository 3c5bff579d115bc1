"""Sliding-window recognition over a whole video: what happens when.

The video is decoded once, in order (``iter_frames``). Each frame a window needs is transformed
on arrival (resize, centre crop, normalise: the evaluation transform, which works frame by
frame) and kept in a ring that holds only the frames of windows not yet run, so memory depends
on the window, never on the video's length. Windows are the ``SlidingWindowSampler``'s: ``window``
frames at the model's sampling step (``frame_interval`` or ``target_fps``), ``stride`` source
frames apart, so a window's logits are those ``evaluate`` gives a clip of the same frames.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resaction.data.sampling import SlidingWindowSampler, Window, unit_step
from resaction.detection.decisions import DecidedEvent
from resaction.errors import ConfigError, VideoError
from resaction.inference.alarms import alarm_rows, alarm_settings, replay_windows, settings_rows
from resaction.inference.plots import plot_timeline
from resaction.inference.segments import (
    SMOOTH_METHODS,
    Segment,
    extract_segments,
    smooth_probs,
)
from resaction.inference.window_run import score_windows, window_cache
from resaction.inference.windows import check_window, window_spread
from resaction.io import VideoReader
from resaction.runtime.scores import softmax

if TYPE_CHECKING:
    from resaction.inference.predictor import Predictor

log = logging.getLogger(__name__)


@dataclass
class TimelineConfig:
    """Every ``resaction timeline`` option.

    A window is ``window`` frames (default: the model's ``clip_len``) at the model's sampling
    step, or, with ``window_s`` (default: the span the model's training clips covered, when the
    checkpoint records one), the model's units spread over that many seconds, as in training.
    Windows start ``stride`` frames apart (default: ``rate`` windows per second when given, else
    one unit of a spread window, else 8 frames).
    """

    window: int | None = None
    stride: int | None = None
    smooth: str = "mean"
    smooth_window: int = 5
    threshold: float = 0.5
    min_duration: float = 1.0
    merge_gap: float = 0.5
    batch_size: int = 8
    incremental: bool = True
    window_s: float | None = None
    rate: float | None = None
    background: str | None = None

    def check(self) -> None:
        if self.smooth not in SMOOTH_METHODS:
            raise ConfigError(
                f"unknown smoothing {self.smooth!r}; use one of {', '.join(SMOOTH_METHODS)}"
            )
        if self.smooth_window < 1:
            raise ConfigError(f"--smooth-window must be at least 1, got {self.smooth_window}")
        check_window(self.window, self.window_s)
        if self.stride is not None and self.stride < 1:
            raise ConfigError(f"--stride must be at least 1 frame, got {self.stride}")
        if self.rate is not None and not self.rate > 0:
            raise ConfigError(f"--rate must be positive (windows per second), got {self.rate}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold must be between 0 and 1, got {self.threshold}")
        if self.min_duration < 0 or self.merge_gap < 0:
            raise ConfigError("--min-duration and --merge-gap must not be negative")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")


@dataclass
class Timeline:
    """Per-window scores of one video and the segments found in them.

    ``probs`` are each window's softmax, ``smoothed`` the same after temporal smoothing (what
    the segments are cut from). Times are seconds; a window's ``times`` entry is its centre.
    """

    video: str
    classes: list[str]
    fps: float
    duration: float
    num_frames: int
    starts: np.ndarray
    ends: np.ndarray
    frame_indices: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    smoothed: np.ndarray
    segments: list[Segment]
    config: TimelineConfig
    seconds: float = 0.0
    peak_buffered_frames: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    alarms: list[DecidedEvent] = field(default_factory=list)

    @property
    def times(self) -> np.ndarray:
        return (self.starts + self.ends) / 2

    @property
    def realtime_factor(self) -> float:
        """Seconds of video processed per second of wall time."""
        return self.duration / self.seconds if self.seconds > 0 else float("inf")


def window_sampler(
    preprocess: dict[str, Any], config: TimelineConfig, fps: float
) -> SlidingWindowSampler:
    """The timeline's windows for a video at ``fps``: see ``TimelineConfig``."""
    target = preprocess.get("target_fps")
    spread = window_spread(preprocess, config.window, config.window_s)
    unit_len = int(preprocess.get("segment_len", 1) or 1)
    step = unit_step(preprocess, fps, spread) if spread is not None else None
    stride = config.stride
    if stride is None and config.rate is not None:
        grain = step or 1
        stride = max(1, round(fps / config.rate / grain)) * grain
    return SlidingWindowSampler(
        int(config.window or preprocess["clip_len"]),
        frame_interval=int(preprocess.get("frame_interval") or 1),
        target_fps=float(target) if target and step is None else None,
        short_video=preprocess.get("short_video", "loop"),
        stride=stride or step or 8,
        unit_len=unit_len if step is not None else 1,
        unit_step=step,
    )


def check_before_decoding(predictor: Predictor, config: TimelineConfig) -> None:
    """Refuse now what would fail only after every window was decoded: a background class the
    model lacks, or a ``--window`` that an exported model's fixed clip length cannot take."""
    alarm_settings(predictor.classes, predictor.decisions, background=config.background)
    shape = getattr(predictor.backend, "input_shape", None)
    frames = shape[2] if shape is not None and len(shape) == 5 else None
    if isinstance(frames, int) and config.window is not None and config.window != frames:
        raise ConfigError(
            f"the model takes clips of {frames} frames (fixed when it was exported), so "
            f"--window {config.window} cannot be scored: drop --window"
        )


def run_timeline(
    predictor: Predictor,
    video: str | Path,
    config: TimelineConfig | None = None,
    *,
    progress: bool = False,
    on_window: Callable[[int, int], None] | None = None,
) -> Timeline:
    """Score every window of ``video`` and cut the smoothed scores into segments."""
    config = config or TimelineConfig()
    config.check()
    check_before_decoding(predictor, config)
    started = time.perf_counter()
    transform = predictor.clip_transform()
    with VideoReader(video, **transform.decode_hint()) as reader:
        num_frames, fps = reader.num_frames, float(reader.fps)
        sampler = window_sampler(predictor.preprocess, config, fps)
        windows = sampler.windows(num_frames, np.asarray(reader.timestamps, np.float64), fps)
        duration = float(reader.duration)
        cache = window_cache(predictor, sampler) if config.incremental else None
        scored = score_windows(
            reader,
            predictor,
            windows,
            cache,
            transform,
            batch_size=config.batch_size,
            progress=progress,
            on_window=on_window,
        )
    if not scored.windows:
        raise VideoError(f"{video}: no frames could be decoded for a timeline")
    timeline = _assemble(
        predictor,
        str(video),
        scored.windows,
        scored.logits,
        config,
        {
            "fps": fps,
            "duration": duration or float(scored.windows[-1].end),
            "num_frames": num_frames,
            "seconds": time.perf_counter() - started,
            "peak": scored.peak,
        },
    )
    timeline.extra["windows_skipped"] = scored.skipped
    return timeline


def _assemble(
    predictor: Predictor,
    video: str,
    windows: list[Window],
    logits: np.ndarray,
    config: TimelineConfig,
    facts: dict[str, Any],
) -> Timeline:
    probs = softmax(logits.astype(np.float64))
    smoothed = smooth_probs(probs, config.smooth, config.smooth_window)
    starts = np.array([w.start for w in windows])
    ends = np.array([w.end for w in windows])
    watched, source, background = alarm_settings(
        predictor.classes, predictor.decisions, background=config.background
    )
    segments = extract_segments(
        smoothed,
        (starts + ends) / 2,
        predictor.classes,
        threshold=config.threshold,
        min_duration=config.min_duration,
        merge_gap=config.merge_gap,
        duration=facts["duration"],
    )
    return Timeline(
        video=video,
        classes=list(predictor.classes),
        fps=facts["fps"],
        duration=facts["duration"],
        num_frames=facts["num_frames"],
        starts=starts,
        ends=ends,
        frame_indices=np.stack([w.indices for w in windows]),
        logits=logits,
        probs=probs,
        smoothed=smoothed,
        segments=segments,
        config=config,
        seconds=facts["seconds"],
        peak_buffered_frames=facts["peak"],
        alarms=replay_windows(probs, starts, ends, watched),
        extra={
            "alarm_settings": settings_rows(watched),
            "alarm_source": source,
            "background": background,
            "model": predictor.model_name,
            "preprocess": predictor.preprocess,
            "window_s": window_spread(predictor.preprocess, config.window, config.window_s),
        },
    )


SEGMENT_FIELDS = ["label", "start", "end", "duration", "confidence"]


def write_timeline(
    timeline: Timeline, out_dir: str | Path, *, plot: bool = True
) -> dict[str, Path]:
    """Write ``segments.json``, ``segments.csv``, ``windows.csv`` and ``timeline.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    segments = [_rounded(segment.to_dict()) for segment in timeline.segments]
    paths = {
        "segments_json": out / "segments.json",
        "segments_csv": out / "segments.csv",
        "windows_csv": out / "windows.csv",
    }
    summary = {
        "video": timeline.video,
        "model": timeline.extra.get("model"),
        "fps": timeline.fps,
        "duration": round(timeline.duration, 4),
        "num_frames": timeline.num_frames,
        "num_windows": len(timeline.starts),
        "windows_skipped": timeline.extra.get("windows_skipped", 0),
        "config": asdict(timeline.config),
        "preprocess": timeline.extra.get("preprocess"),
        "seconds": round(timeline.seconds, 3),
        "window_s": timeline.extra.get("window_s"),
        "segments": segments,
    }
    alarms = {
        "video": timeline.video,
        "source": timeline.extra.get("alarm_source"),
        "settings": timeline.extra.get("alarm_settings"),
        "alarms": alarm_rows(timeline.alarms),
    }
    paths["alarms_json"] = out / "alarms.json"
    paths["alarms_json"].write_text(json.dumps(alarms, indent=2) + "\n", encoding="utf-8")
    paths["segments_json"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with paths["segments_csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SEGMENT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(segments)
    _write_windows(timeline, paths["windows_csv"])
    if plot:
        paths["plot"] = plot_timeline(
            timeline.times,
            timeline.smoothed,
            timeline.classes,
            timeline.segments,
            out / "timeline.png",
            threshold=timeline.config.threshold,
            title=Path(timeline.video).name,
        )
    return paths


def _write_windows(timeline: Timeline, path: Path) -> None:
    """One row per window: its span, raw and smoothed top label, and every smoothed probability."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "start",
                "end",
                "first_frame",
                "last_frame",
                "label",
                "prob",
                "smoothed_label",
                "smoothed_prob",
                *timeline.classes,
            ]
        )
        for row in range(len(timeline.starts)):
            raw = int(timeline.probs[row].argmax())
            smooth = int(timeline.smoothed[row].argmax())
            writer.writerow(
                [
                    f"{timeline.starts[row]:.4f}",
                    f"{timeline.ends[row]:.4f}",
                    int(timeline.frame_indices[row].min()),
                    int(timeline.frame_indices[row].max()),
                    timeline.classes[raw],
                    f"{timeline.probs[row, raw]:.5f}",
                    timeline.classes[smooth],
                    f"{timeline.smoothed[row, smooth]:.5f}",
                    *(f"{p:.5f}" for p in timeline.smoothed[row]),
                ]
            )


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
