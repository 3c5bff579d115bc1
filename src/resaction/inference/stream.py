"""Real-time recognition on a camera, network stream or file.

A reader thread (``io.camera_reader.CameraReader``, the watcher's) keeps only the newest frames:
one window (``clip_len * step``) plus one inference period's worth, so nothing is lost while the
model keeps up. Inference runs on the latest window at a target rate. When the model is slower
than the video, the frames it had no time for are dropped, never queued, so the label is never
more than one inference period behind the live frame. The last ``smooth`` predictions are
averaged to stop the label flickering. A file without ``realtime`` is read in order instead, no
frame dropped, with windows ``1 / rate`` seconds of video apart, as fast as the machine allows.
"""

from __future__ import annotations

import math
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from resaction.data.sampling import SlidingWindowSampler, unit_step
from resaction.data.transforms import ClipTransform
from resaction.detection.decisions import DecisionTracker, Transition
from resaction.errors import ConfigError
from resaction.inference.alarms import alarm_settings
from resaction.inference.annotate import draw_label
from resaction.inference.incremental import CameraTrack, LiveScorer, supports_incremental
from resaction.inference.results import RecordWriter
from resaction.inference.stream_stats import RollingMean, StreamStats
from resaction.inference.windows import check_window, window_spread
from resaction.io.camera_reader import CameraReader
from resaction.io.live import CapturedFrame, FrameSink, LatestFrames, OrderedFrames
from resaction.io.writer import VideoWriter

if TYPE_CHECKING:
    from resaction.inference.predictor import Predictor

DEFAULT_CAMERA_FPS = 30.0


@dataclass
class StreamConfig:
    """How to run a stream; every field is a ``resaction stream`` flag."""

    rate: float = 4.0
    smooth: int = 5
    realtime: bool = False
    duration: float | None = None
    window: int | None = None
    window_s: float | None = None
    background: str | None = None
    events: str | Path | None = None
    annotate: str | Path | None = None
    log_windows: bool = False
    open_timeout: float = 5.0
    read_timeout: float = 2.0
    reconnect_timeout: float = 30.0
    stats_every: float = 5.0
    incremental: bool = True

    def check(self) -> None:
        if not self.rate > 0:
            raise ConfigError(f"--rate must be positive (windows per second), got {self.rate}")
        if self.duration is not None and not self.duration > 0:
            raise ConfigError(f"--duration must be positive seconds, got {self.duration}")
        check_window(self.window, self.window_s)


def stream_step(preprocess: dict[str, Any], fps: float) -> int:
    """Frames between the frames of a window: ``frame_interval``, or the nearest whole step to
    ``target_fps`` (a live source cannot be resampled exactly)."""
    target = preprocess.get("target_fps")
    if target and fps > 0:
        return max(1, round(fps / float(target)))
    return max(1, int(preprocess.get("frame_interval") or 1))


class StreamRunner:
    """Runs a predictor on a live source; ``on_event`` hears every event as a dict."""

    def __init__(
        self,
        predictor: Predictor,
        source: str | int | Path,
        config: StreamConfig | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.config = config or StreamConfig()
        self.config.check()
        self.on_event = on_event
        self._source_events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._lost = False
        self.name = str(source)
        self.source = CameraReader(
            self.name,
            source,
            realtime=self.config.realtime,
            open_timeout=self.config.open_timeout,
            read_timeout=self.config.read_timeout,
            give_up_after=self.config.reconnect_timeout,
            threads=0,
            on_state=self._on_source_state,
        )
        self.clip_len = int(self.config.window or predictor.preprocess["clip_len"])
        self.window_s = window_spread(
            predictor.preprocess, self.config.window, self.config.window_s
        )
        watched, self.alarm_source, _ = alarm_settings(
            predictor.classes, predictor.decisions, background=self.config.background
        )
        self.decisions = DecisionTracker(str(source), watched)
        self.half_window = 0.0
        self._last_time = 0.0
        self.transform = predictor.clip_transform()
        self.scorer = _live_scorer(predictor, self.transform, self.clip_len, self.config)
        self.track: CameraTrack | None = None
        self.stats = StreamStats()
        self.smoother = RollingMean(self.config.smooth)
        self.label: str | None = None
        self.confidence: float | None = None
        self._writer: RecordWriter | None = None
        self._video: Any = None
        self._last_stats = time.monotonic()

    def run(self) -> dict[str, Any]:
        """Read until the file ends, ``duration`` passes or the source gives up; the summary."""
        live = self.source.kind != "file" or self.config.realtime
        fps = self.source.open().declared_fps or DEFAULT_CAMERA_FPS
        self.step = stream_step(self.predictor.preprocess, fps)
        self.offsets = self._offsets(fps)
        if self.scorer is not None:
            units = self.scorer.unit_len
            unit = int(self.offsets[units]) if len(self.offsets) > units else self.step * units
            self.track = self.scorer.track(self.name, unit)
        span = int(self.offsets[-1]) + 1
        self.half_window = span / fps / 2
        sink: FrameSink = (
            LatestFrames(span + math.ceil(fps / self.config.rate)) if live else OrderedFrames(span)
        )
        self.stats = StreamStats()
        self._open_outputs(fps)
        ring: deque[CapturedFrame] = deque(maxlen=span)
        reason = "end of input"
        try:
            self.source.start(sink)
            self._emit(
                {
                    "event": "start",
                    "source": self.name,
                    "fps": fps,
                    "step": self.step,
                    "window_s": self.window_s,
                    "alarms": self.alarm_source,
                }
            )
            reason = self._loop(sink, ring, live)
        except KeyboardInterrupt:
            reason = "interrupted"
        finally:
            self.source.stop()
            self._drain_source_events()  # the source's "ended" first, whenever its thread said it
            end = self._last_time - self.half_window
            self._alarms(self.decisions.flush(end), self._last_time)  # alarms still open end
            summary = {**self.stats.summary(self.source.frames_read), "stopped": reason}
            summary["incremental"] = self.track is not None
            summary["dropped_units"] = self.track.dropped_units if self.track else 0
            if not summary.get("windows") and reason == "end of input":
                self._emit({"event": "too_short", "message": self._too_short(span, fps)})
            self._emit({"event": "summary", **summary})
            self._close_outputs()
        if self.source.error is not None:
            raise self.source.error
        return summary

    def _loop(self, sink: FrameSink, ring: deque[CapturedFrame], live: bool) -> str:
        period = 1.0 / self.config.rate
        next_due = -math.inf
        last_seq = -1
        last_inferred = -1
        first_time: float | None = None
        while True:
            self._drain_source_events()
            if live:
                wait = next_due - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, 0.05))
                    continue
            new = sink.take_new(timeout=0.05 if live else 0.1)
            if not new:
                if self.source.finished.is_set():
                    new = sink.take_new(timeout=None)
                    if not new:
                        return "gave up" if self.source.error else "end of input"
                else:
                    continue
            for frame in new:
                if first_time is None:
                    first_time = frame.time
                self.stats.dropped += max(0, frame.seq - last_seq - 1)
                self.stats.frames += 1
                last_seq = frame.seq
                ring.append(frame)
                if self.track is not None:
                    self.scorer.add(self.track, frame)
                self._write_frame(frame)
                if not live and frame.time >= next_due - 1e-6 and self._window_ready(ring):
                    self._infer(ring)
                    last_inferred = frame.seq
                    next_due = frame.time + period if math.isinf(next_due) else next_due + period
                    while next_due <= frame.time:
                        next_due += period
            if live and self._window_ready(ring) and ring[-1].seq > last_inferred:
                next_due = time.monotonic() + period
                self._infer(ring)
                last_inferred = ring[-1].seq
            self._maybe_report_stats()
            if self.config.duration is not None and first_time is not None:
                elapsed = ring[-1].time - first_time
                if elapsed >= self.config.duration:
                    return "duration reached"

    def _too_short(self, span: int, fps: float) -> str:
        return (
            f"{self.name} ended after {self.stats.frames} frames, before one whole window of "
            f"{span} frames ({span / fps:.2f} s) arrived: nothing was labelled; give a shorter "
            "--window-seconds or --window"
        )

    def _maybe_report_stats(self) -> None:
        every = self.config.stats_every
        now = time.monotonic()
        if every and now - self._last_stats >= every:
            self._last_stats = now
            self._emit({"event": "stats", **self.stats.summary(self.source.frames_read)})

    def _window_ready(self, ring: deque[CapturedFrame]) -> bool:
        if self.track is not None:
            return self.track.ready()
        return len(ring) >= int(self.offsets[-1]) + 1

    def _offsets(self, fps: float) -> np.ndarray:
        """A window's frames, from its first: the model's units spread over ``window_s`` (by
        default the span its training clips covered), else ``clip_len`` frames ``step`` apart."""
        if self.window_s is None:
            return np.arange(self.clip_len) * self.step
        preprocess = self.predictor.preprocess
        return SlidingWindowSampler(
            self.clip_len,
            frame_interval=int(preprocess.get("frame_interval") or 1),
            unit_len=self.predictor.spec.segment_len,
            unit_step=unit_step(preprocess, fps, self.window_s),
        ).offsets(fps)

    def _window(self, ring: deque[CapturedFrame]) -> tuple[np.ndarray, float, float, int]:
        """The newest window's probabilities, its newest frame's time and capture, and how many
        frames the reader was ahead of that frame when the window was taken.

        A 2D-trunk model's frames went through its trunk as they arrived (``incremental``):
        the window pools their cached outputs. Other models run the whole window now."""
        read = self.source.frames_read
        if self.scorer is not None and self.track is not None:
            newest = self.scorer.score([self.track])[-1]
            behind = max(0, read - 1 - newest.seq)
            return newest.probabilities, newest.time, newest.captured, behind
        first = len(ring) - 1 - int(self.offsets[-1])
        picks = [ring[first + int(offset)] for offset in self.offsets]
        behind = max(0, read - 1 - picks[-1].seq)
        clip = torch.from_numpy(np.stack([frame.image for frame in picks]))
        probs = self.predictor.predict_clips(self.transform(clip).unsqueeze(0))[0]
        return probs, picks[-1].time, picks[-1].captured, behind

    def _infer(self, ring: deque[CapturedFrame]) -> None:
        probs, stream_time, captured, behind = self._window(ring)
        self._alarms(self.decisions.update(probs, stream_time - self.half_window), stream_time)
        smoothed = self.smoother(probs)
        latency = time.monotonic() - captured
        self.stats.add_window(latency)
        index = int(np.argmax(smoothed))
        label, confidence = self.predictor.classes[index], float(smoothed[index])
        self._emit(
            {
                "event": "window",
                "time": round(stream_time, 3),
                "label": label,
                "confidence": round(confidence, 4),
                "latency_ms": round(latency * 1000, 1),
                "frames_behind": behind,
            },
            record=self.config.log_windows,
        )
        if label != self.label:
            self.stats.label_changes += 1
            self._emit(
                {
                    "event": "label",
                    "time": round(stream_time, 3),
                    "label": label,
                    "confidence": round(confidence, 4),
                    "previous": self.label,
                    "latency_ms": round(latency * 1000, 1),
                }
            )
        self.label, self.confidence = label, confidence

    def _alarms(self, changes: list[Transition], stream_time: float) -> None:
        self._last_time = stream_time
        for change in changes:
            self._emit(
                {
                    "event": f"alarm_{change.kind}",
                    "time": round(stream_time, 3),
                    "label": change.label,
                    "start": round(change.start, 3),
                    "end": round(change.end, 3),
                    "peak": round(change.peak, 4),
                }
            )

    def _drain_source_events(self) -> None:
        while True:
            try:
                event = self._source_events.get_nowait()
            except queue.Empty:
                return
            kind, message = event
            if kind == "reconnected":
                self.stats.reconnects += 1
            self._emit({"event": kind, "message": message})

    def _on_source_state(self, _camera: str, state: str, message: str) -> None:
        """The reader's states, on its thread, as the stream's source events: lost,
        reconnecting, reconnected, gave_up, ended."""
        put = self._source_events.put
        if state in ("reconnecting", "down") and not self._lost:
            self._lost = True
            reason = self.source.reason
            put(("lost", f"{reason}; reconnecting"))
            put(("reconnecting", message.removeprefix(f"{reason}; ")))
        elif state == "live" and self._lost:
            self._lost = False
            put(("reconnected", f"reconnected to {self.name}"))
        elif state in ("ended", "failed"):
            put(("gave_up" if state == "failed" else "ended", message))

    def _emit(self, event: dict[str, Any], record: bool = True) -> None:
        event = {"wall": round(time.time(), 3), **event}
        if self._writer is not None and record:
            self._writer.write(event)
        if self.on_event is not None:
            self.on_event(event)

    def _open_outputs(self, fps: float) -> None:
        if self.config.events:
            self._writer = RecordWriter(self.config.events, fmt="jsonl", key="wall")
        if self.config.annotate:
            self._video = VideoWriter(self.config.annotate, fps=fps)

    def _write_frame(self, frame: CapturedFrame) -> None:
        if self._video is not None:
            note = f"t={frame.time:.2f}s"
            self._video.write(draw_label(frame.image, self.label, self.confidence, note))

    def _close_outputs(self) -> None:
        """Close the events file and the annotated video, keeping what was written so far."""
        if self._writer is not None:
            self._writer.close()
        if self._video is not None:
            if self._video.frames_written == 0:
                self._video.abort()
            else:
                self._video.close()


def _live_scorer(
    predictor: Predictor, transform: ClipTransform, clip_len: int, config: StreamConfig
) -> LiveScorer | None:
    """Incremental scoring when the model allows it (each frame through the trunk once)."""
    module = getattr(predictor.backend, "model", None)
    if not config.incremental or not supports_incremental(module):
        return None
    return LiveScorer(
        predictor.backend,
        module,
        transform,
        clip_len=clip_len,
        segment_len=predictor.spec.segment_len,
    )


def run_stream(
    predictor: Predictor,
    source: str | int | Path,
    config: StreamConfig | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``predictor`` on a live source until it ends; the summary statistics."""
    return StreamRunner(predictor, source, config, on_event).run()
