"""One watched camera: its reader, evidence ring, lattice, decisions and open events.

The watcher's worker thread calls ``collect`` (new frames onto the scorer's lattice),
``decide`` (a window score through the hysteresis, opening and closing events) and
``finish_due`` (events whose post-roll has passed get their clip and are closed in the log).
The reader thread only feeds the frame sink and the packet ring.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from resaction.data.sampling import unit_step, window_seconds
from resaction.data.spec import ClipSpec
from resaction.detection.decisions import DecisionTracker, Transition
from resaction.errors import ResactionError, VideoNotFoundError
from resaction.inference.incremental import CameraTrack, LiveScorer, WindowScore
from resaction.io.camera_reader import CameraReader
from resaction.monitor.config import CameraConfig
from resaction.monitor.events import STOPPED, Event, EventLog, new_event_id
from resaction.monitor.evidence import PacketRing
from resaction.monitor.metrics import WatchMetrics

log = logging.getLogger(__name__)

EVIDENCE_LIMIT_S = 60.0
SEGMENTS_WINDOW_S = 2.0


@dataclass
class _Closing:
    event: Event
    due: float  # stream time at which the post-roll is complete


class WatchedCamera:
    def __init__(
        self,
        config: CameraConfig,
        classes: list[str],
        calibrated: dict[str, dict[str, Any]] | None,
        short_side: int | None,
        out_dir: Path,
        metrics: WatchMetrics,
        **reader_options: Any,
    ) -> None:
        self.config = config
        self.name = config.name
        self.classes = classes
        self.out_dir = out_dir
        self.metrics = metrics
        watched = config.classes or classes
        metrics.add_camera(self.name, list(watched))
        self.decisions = DecisionTracker(
            self.name,
            {classes.index(c): (c, config.thresholds_for(c, calibrated)) for c in watched},
        )
        self.ring = PacketRing(config.pre + config.post + EVIDENCE_LIMIT_S)
        try:
            self.reader = CameraReader(
                self.name,
                config.url,
                short_side=short_side,
                loop=config.loop,
                roi=config.roi,
                on_packet=self.ring.add,
                on_state=self._on_state,
                **reader_options,
            )
        except VideoNotFoundError as error:
            raise VideoNotFoundError(f"camera {self.name}: {error}") from None
        self.track: CameraTrack | None = None
        self.half_window = 0.0
        self.last_seq = -1
        self.latest: Any = None
        self.label: str | None = None
        self.score = 0.0
        self.open: dict[str, Event] = {}
        self.closing: list[_Closing] = []
        self.stream_time = 0.0
        self.listeners: list[Any] = []

    def _on_state(self, camera: str, state: str, message: str) -> None:
        if state in ("connecting", "live", "reconnecting", "down", "ended"):
            self.metrics.set_state(camera, state)
        for listener in self.listeners:
            listener({"type": "camera", "camera": camera, "state": state, "message": message})

    def collect(self, scorer: LiveScorer, spec: ClipSpec, rate: float) -> int:
        """Move the reader's new frames onto the lattice; the number of frames taken."""
        frames = self.reader.frames.take_new(timeout=None)
        if not frames:
            return 0
        if self.track is None:
            fps = self.reader.declared_fps or self.reader.stats().input_fps
            if fps <= 0:
                return len(frames)  # the frame rate is not known yet
            self.track = self._track(scorer, spec, rate, fps)
        counter = self.metrics.frames.labels(self.name)
        for frame in frames:
            gap = frame.seq - self.last_seq - 1
            if gap > 0 and self.last_seq >= 0:
                self.metrics.dropped.labels(self.name).inc(gap)
            self.last_seq = frame.seq
            counter.inc()
            if not scorer.add(self.track, frame) and frame is not frames[-1]:
                frame.release()  # off the lattice and not the latest: never converted
            self.stream_time = frame.time
        self.latest = frames[-1]
        return len(frames)

    def _track(self, scorer: LiveScorer, spec: ClipSpec, rate: float, fps: float) -> CameraTrack:
        """The lattice: units spread over ``window`` seconds (the camera's, else the span the
        model's training clips covered, else 2 s for models trained on segments of whole
        videos), or the model's own frame step."""
        preprocess = spec.to_dict()
        window = window_seconds(preprocess, self.config.settings.get("window"))
        if window is None and spec.sampling == "segments":
            window = SEGMENTS_WINDOW_S
        step = unit_step(preprocess, fps, window)
        span = step * (scorer.window_units - 1) + scorer.unit_len
        self.half_window = span / fps / 2
        units_per_second = fps / max(step, scorer.unit_len)
        return scorer.track(self.name, step, max(1, round(units_per_second / rate)))

    def decide(self, score: WindowScore, log: EventLog) -> list[Event]:
        """A window's probabilities through the decisions; the events opened."""
        self.metrics.windows.labels(self.name).inc()
        self.metrics.latency.labels(self.name).observe(time.monotonic() - score.captured)
        best = int(np.argmax(score.probabilities))
        self.label, self.score = self.classes[best], float(score.probabilities[best])
        wall = time.time() - (time.monotonic() - score.captured)
        opened = []
        centre = score.time - self.half_window  # the decisions see windows at their centres
        for change in self.decisions.update(score.probabilities, centre):
            event = self._transition(change, wall - (score.time - change.start), log)
            if event is not None:
                opened.append(event)
        return opened

    def _transition(self, change: Transition, start_wall: float, log: EventLog) -> Event | None:
        if change.kind == "open":
            event = Event(
                id=new_event_id(),
                camera=self.name,
                label=change.label,
                state="open",
                started_at=start_wall,
                ended_at=None,
                stream_start=change.start,
                stream_end=None,
                peak=change.peak,
                mean=change.mean,
                snapshot=None,
                clip=None,
            )
            event.snapshot = self._snapshot(event, change.end)
            log.open_event(event)
            self.open[change.label] = event
            self.metrics.events.labels(self.name, change.label).inc()
            self.tell({"type": "event", **event.to_dict()})
            return event
        event = self.open.pop(change.label, None)
        if event is not None:
            event.stream_end, event.peak, event.mean = change.end, change.peak, change.mean
            event.ended_at = event.started_at + (change.end - change.start)
            self.closing.append(_Closing(event, change.end + self.config.post))
        return None

    def finish_due(self, log: EventLog, everything: bool = False) -> None:
        """Cut the clips of events whose post-roll has been recorded and close them."""
        live = self.reader.state == "live"
        for closing in list(self.closing):
            if everything or not live or self.stream_time >= closing.due:
                self.closing.remove(closing)
                self._close(closing.event, log)

    def flush(self, log: EventLog) -> None:
        """Close open events at the last frame seen (the watcher stops)."""
        for change in self.decisions.flush(self.stream_time):
            stopped = self.open.get(change.label) if change.kind != "open" else None
            self._transition(change, time.time() - (self.stream_time - change.start), log)
            if stopped is not None:
                stopped.reason = STOPPED
        self.finish_due(log, everything=True)

    def _close(self, event: Event, log: EventLog) -> None:
        event.state = "closed"
        start = event.stream_start - self.config.pre
        end = (event.stream_end or event.stream_start) + self.config.post
        path = self.out_dir / "clips" / f"{event.id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.ring.write_clip(start, end, path) is not None:
                event.clip = str(path.relative_to(self.out_dir))
        except ResactionError as error:
            log.warning("camera %s: no clip for event %s: %s", self.name, event.id, error)
        log.close_event(event)
        self.tell({"type": "event", **event.to_dict()})

    def _snapshot(self, event: Event, at: float) -> str | None:
        path = self.out_dir / "snapshots" / f"{event.id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            written = self.ring.snapshot(at, path)
        except ResactionError as error:
            log.warning("camera %s: no snapshot for event %s: %s", self.name, event.id, error)
            written = None
        if written is None and self.latest is not None:
            # No packets to decode (a webcam read through OpenCV): the newest frame, small.
            image = cv2.cvtColor(np.ascontiguousarray(self.latest.image), cv2.COLOR_RGB2BGR)
            written = path if cv2.imwrite(str(path), image) else None
        return None if written is None else str(path.relative_to(self.out_dir))

    def tell(self, message: dict[str, Any]) -> None:
        """Hand ``message`` to every listener (see ``Watcher.subscribe``)."""
        for listener in self.listeners:
            listener(message)

    def status(self) -> dict[str, Any]:
        stats = self.reader.stats()
        self.metrics.input_fps.labels(self.name).set(stats.input_fps)
        latest = self.latest
        return {
            "name": self.name,
            "url": self.config.url,
            "state": stats.state,
            "message": stats.message,
            "label": self.label,
            "score": round(self.score, 4),
            "scores": {k: round(v, 4) for k, v in self.decisions.scores().items()},
            "open_events": [event.id for event in self.open.values()],
            "input_fps": round(stats.input_fps, 2),
            "frames": stats.frames_read,
            "dropped": stats.frames_dropped,
            "reconnects": stats.reconnects,
            "stream_time": round(stats.stream_time, 3),
            "frame_age": None if latest is None else round(time.monotonic() - latest.captured, 3),
        }
