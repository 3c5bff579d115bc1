"""One process watching many cameras: readers, one batching inference worker, events, sinks.

Each camera has a reader thread (``readers.CameraReader``) that decodes straight to the model's
input size and drops frames rather than queueing them. One worker thread takes every camera's
new frames onto its lattice, runs the ready units of all cameras as one batch
(``incremental.LiveScorer``), passes each window's scores through the camera's hysteresis and
writes events to the SQLite log before any sink sees them (``events.EventLog``); one deliverer
thread per sink sends what the log holds (``sinks.Deliverer``), so a receiver that is down or a
watcher that is killed loses nothing. Evidence clips are remuxed from each camera's ring of
compressed packets once the post-roll has been recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resaction.data.spec import ViewProtocol
from resaction.detection.decisions import calibrated_settings
from resaction.folder_lock import FolderLock
from resaction.inference.incremental import LiveScorer
from resaction.monitor.camera import WatchedCamera
from resaction.monitor.config import WatchConfig
from resaction.monitor.events import EventLog
from resaction.monitor.metrics import WatchMetrics
from resaction.monitor.sinks import Backoff, Deliverer, make_sink
from resaction.runtime.loading import LoadedModel

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.005


@dataclass
class WatchOptions:
    """How to watch; every field is a ``resaction watch`` flag."""

    out: Path = Path("watch")
    metrics_port: int | None = None
    max_batch: int = 32
    rate: float = 4.0
    incremental: bool = True
    max_pending: int = 2
    duration: float | None = None
    reader: dict[str, Any] = field(default_factory=dict)
    delivery_backoff: Backoff = field(default_factory=Backoff)


class Watcher:
    """``start()`` runs everything in background threads; ``run()`` blocks until every camera
    has ended (files not looped), ``duration`` has passed, or ``stop()``."""

    def __init__(
        self,
        config: WatchConfig,
        model: LoadedModel,
        options: WatchOptions | None = None,
        lock: FolderLock | None = None,
    ) -> None:
        """``lock``: the out folder's, already taken (``watch_lock``); else taken here."""
        config.check_classes(model.classes)
        self.config = config
        self.model = model
        self.options = options or WatchOptions()
        self.out = Path(self.options.out)
        self.lock = lock if lock is not None else watch_lock(self.out)
        self.spec = model.spec.with_options(direction_blind=False)
        self.scorer = LiveScorer(
            model.backend,
            model.module,
            self.spec.transform(train=False, views=ViewProtocol(num_crops=1)),
            clip_len=self.spec.clip_len,
            segment_len=self.spec.segment_len,
            max_batch=self.options.max_batch,
            incremental=self.options.incremental,
            max_pending=self.options.max_pending,
            runner=model.extra.get("frame_runner"),  # a frames .onnx: ONNX Runtime, per frame
        )
        self.metrics = WatchMetrics()
        self.log = EventLog(self.out / "events.db", config.sinks)
        self.deliverers = [
            Deliverer(
                self.log,
                make_sink(spec, self.out, **config.sink_options.get(spec, {})),
                backoff=self.options.delivery_backoff,
            )
            for spec in config.sinks
        ]
        calibrated = calibrated_settings(model.extra if isinstance(model.extra, dict) else None)
        short_side, size = _reader_size(self.spec.resize)
        self.cameras = [
            WatchedCamera(
                camera,
                model.classes,
                calibrated,
                short_side,
                self.out,
                self.metrics,
                size=size,
                **self.options.reader,
            )
            for camera in config.cameras
        ]
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._last_second = 0.0
        self.error: BaseException | None = None
        self.started = 0.0

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """``listener(message)`` hears camera state changes and events as they happen (on the
        worker's or a reader's thread: it must not block)."""
        for camera in self.cameras:
            camera.listeners.append(listener)

    def start(self) -> Watcher:
        recovered = self.log.recover([camera.name for camera in self.cameras])
        if recovered:
            log.warning("closed %d event(s) a previous run left open", len(recovered))
        by_name = {camera.name: camera for camera in self.cameras}
        for event in recovered:
            by_name[event.camera].tell({"type": "event", **event.to_dict()})
        for deliverer in self.deliverers:
            deliverer.start()
        if self.options.metrics_port is not None:
            self.metrics.serve(self.options.metrics_port)
        for camera in self.cameras:
            camera.reader.start()
        self.started = time.monotonic()
        self._worker = threading.Thread(target=self._work, name="resaction-watch", daemon=True)
        self._worker.start()
        return self

    def run(self) -> dict[str, Any]:
        """Watch until the cameras end, ``duration`` passes or ``stop()``; the summary."""
        self.start()
        try:
            while not self._stop.wait(0.2):
                if self._finished():
                    break
        except KeyboardInterrupt:
            pass
        return self.stop()

    def request_stop(self) -> None:
        """Ask ``run()`` to stop (safe from a signal handler); it then stops as ``stop()`` does."""
        self._stop.set()

    def _finished(self) -> bool:
        duration = self.options.duration
        if duration is not None and time.monotonic() - self.started >= duration:
            return True
        if self._worker is not None and not self._worker.is_alive():
            return True
        return all(camera.reader.state == "ended" for camera in self.cameras) and not any(
            camera.track and camera.track.pending for camera in self.cameras
        )

    def stop(self, delivery_timeout: float = 5.0) -> dict[str, Any]:
        """Stop reading, close open events at the last frame, deliver for up to
        ``delivery_timeout`` seconds (what is left is delivered by the next run)."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(10.0)
        cameras = self.cameras_status()
        for camera in self.cameras:
            camera.reader.stop()
        for camera in self.cameras:
            camera.flush(self.log)
        drained = all(d.stop(delivery_timeout) for d in self.deliverers)
        summary = {**self.summary(), "cameras": cameras, "delivered_all": drained}
        self.log.close()
        self.lock.close()
        if self.error is not None:
            raise self.error
        return summary

    def summary(self) -> dict[str, Any]:
        """The cameras' status, event and delivery counts, and how windows are scored."""
        return {
            "cameras": self.cameras_status(),
            "events": self.log.counts(),
            "incremental": self.scorer.incremental,
            "seconds": round(time.monotonic() - self.started, 2),
        }

    def cameras_status(self) -> list[dict[str, Any]]:
        return [camera.status() for camera in self.cameras]

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.step():
                    self._stop.wait(IDLE_WAIT_S)
        except BaseException as error:  # reported by stop(); the readers keep the cameras
            log.exception("the watcher's worker failed")
            self.error = error

    def step(self) -> bool:
        """One round: collect frames, score the ready units, decide; false when idle."""
        taken = sum(c.collect(self.scorer, self.spec, self.options.rate) for c in self.cameras)
        tracks = [camera.track for camera in self.cameras if camera.track is not None]
        pending = self.scorer.pending_units(tracks)
        self.metrics.queue_depth.set(pending)
        scores = self.scorer.score(tracks) if pending else []
        for size in self.scorer.batches:
            self.metrics.batch_size.observe(size)
        self.scorer.batches.clear()
        by_name = {camera.name: camera for camera in self.cameras}
        for score in scores:
            by_name[score.camera].decide(score, self.log)
        for camera in self.cameras:
            camera.finish_due(self.log)
        self._every_second()
        return bool(taken or pending)

    def _every_second(self) -> None:
        """Once a second: each camera's input rate for the metrics, and how far open events got
        (``EventLog.touch``), so a killed run's events close where they were."""
        now = time.monotonic()
        if now - self._last_second < 1.0:
            return
        self._last_second = now
        for camera in self.cameras:
            self.metrics.input_fps.labels(camera.name).set(camera.reader.stats().input_fps)
            for event in camera.open.values():
                self.log.touch(event.id, time.time(), camera.stream_time, event.peak, event.mean)


def watch_lock(out: Path, wait: float = 0.0) -> FolderLock:
    """The one watcher allowed on ``out``: two would each deliver the events the log owes."""
    return FolderLock(out, "another watcher is working on", "stop it or use another --out", wait)


def _reader_size(resize: Any) -> tuple[int | None, tuple[int, int] | None]:
    """The reader's output: the short side the transform resizes to, or a fixed (H, W)."""
    if resize is None:
        return None, None
    if isinstance(resize, int):
        return resize, None
    height, width = resize
    return None, (int(height), int(width))
