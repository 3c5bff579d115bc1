"""The live watcher inside the service (``resaction serve --watch CAMERAS.yaml``).

``WatchHub`` owns one ``monitor.Watcher`` (started and stopped with the app's lifespan) and
turns what it does into what the HTTP layer serves: camera tiles, the latest frame as a JPEG,
events with their evidence files, and a fan-out of the watcher's messages to every open
server-sent-events stream. The watcher calls its listeners from reader and worker threads and
they must not block, so a message only crosses into the event loop with
``call_soon_threadsafe``; a client too slow to keep up is told to resynchronise rather than
holding messages without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from resaction.monitor.config import load_watch_config
from resaction.monitor.events import Event
from resaction.monitor.watcher import Watcher, WatchOptions
from resaction.runtime.loading import LoadedModel
from resaction.serve.security import ApiError

MAX_FRAME_AGE_S = 2.0
STATUS_INTERVAL_S = 0.5
QUEUE_LIMIT = 256
RETRY_MS = 2000


class WatchHub:
    """A started-on-demand watcher plus the fan-out of its messages to SSE clients."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.out = Path(watcher.out).resolve()
        self.running = False
        self.closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        watcher.subscribe(self._hear)

    @classmethod
    def create(cls, cameras_file: Path, model: LoadedModel, out: Path) -> WatchHub:
        """The hub of the cameras in ``cameras_file``; a mistake there, or an alert class the
        model lacks, is a one-line ``ConfigError`` before anything starts."""
        config = load_watch_config(cameras_file)
        return cls(Watcher(config, model, WatchOptions(out=out, metrics_port=None)))

    # ---- lifespan ------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.watcher.start()
        self.running = True

    def end_streams(self) -> None:
        """End every open event stream and refuse new ones (any thread). The server calls it
        as it begins to shut down: an open stream would otherwise hold the shutdown."""
        self.closing = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            for queue in list(self._queues):
                loop.call_soon_threadsafe(_put_last, queue)

    def stop(self) -> dict[str, Any]:
        """Stop the watcher (open events are closed at their last frame) and end every stream."""
        self.end_streams()
        self.running, self._loop = False, None
        return self.watcher.stop()

    # ---- cameras ---------------------------------------------------------------------------

    def cameras(self) -> list[dict[str, Any]]:
        """Every camera's status, with the sequence number of its latest frame."""
        statuses = self.watcher.cameras_status()
        for status, camera in zip(statuses, self.watcher.cameras, strict=True):
            latest = camera.latest
            status["frame_seq"] = None if latest is None else latest.seq
        return statuses

    def worker_error(self) -> str | None:
        """Why the watcher's worker stopped, when it did (the cameras then stop scoring)."""
        error = self.watcher.error
        return None if error is None else f"the watcher's worker failed: {error}"

    def camera(self, name: str) -> Any:
        for camera in self.watcher.cameras:
            if camera.name == name:
                return camera
        names = ", ".join(camera.name for camera in self.watcher.cameras)
        raise ApiError(404, "camera_not_found", f"no camera {name!r}; the cameras are: {names}")

    def frame_jpeg(self, name: str, max_age: float) -> tuple[bytes, int, float]:
        """The camera's latest frame as JPEG bytes, its sequence number and age in seconds;
        refused (503) when it is older than ``max_age``, so a tile never shows a stale picture
        as live."""
        latest = self.camera(name).latest
        if latest is None:
            raise ApiError(
                503,
                "no_frame",
                f"camera {name!r} has not delivered a frame yet",
                {"Retry-After": "1"},
            )
        age = time.monotonic() - latest.captured
        if age > max_age:
            raise ApiError(
                503,
                "stale_frame",
                f"camera {name!r}'s latest frame is {age:.1f} s old (limit {max_age:g} s); "
                "its state in GET /cameras says why",
                {"Retry-After": "1"},
            )
        image = np.ascontiguousarray(latest.image[..., ::-1])  # RGB -> BGR for OpenCV
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise ApiError(500, "encode_failed", f"camera {name!r}'s frame could not be encoded")
        return data.tobytes(), latest.seq, age

    # ---- events ----------------------------------------------------------------------------

    def event(self, event_id: str) -> Event:
        event = self.watcher.log.get(event_id) if event_id.isalnum() else None
        if event is None:
            raise ApiError(404, "event_not_found", f"no event {event_id!r}")
        return event

    def evidence(self, event_id: str, kind: str) -> Path:
        """The event's ``clip`` or ``snapshot`` file, only ever a file under the watcher's
        output folder (the stored path is resolved, links followed, before the check)."""
        event = self.event(event_id)
        stored = getattr(event, kind)
        if not stored:
            why = (
                "its clip is cut once the event has ended and its post-roll is recorded"
                if kind == "clip" and event.state == "open"
                else "none was written for it (see the server log)"
            )
            raise ApiError(404, f"no_{kind}", f"event {event_id} has no {kind}: {why}")
        path = (self.out / stored).resolve()
        if not path.is_relative_to(self.out) or not path.is_file():
            raise ApiError(404, f"no_{kind}", f"event {event_id}'s {kind} file is gone")
        return path

    # ---- server-sent events ------------------------------------------------------------------

    def _hear(self, message: dict[str, Any]) -> None:
        """The watcher's listener (any thread, never blocks)."""
        loop = self._loop
        if loop is None:
            return
        if message.get("type") == "event":
            message = with_links(message)
        with contextlib.suppress(RuntimeError):  # the loop closed while the watcher stopped
            loop.call_soon_threadsafe(self._fan_out, message)

    def _fan_out(self, message: dict[str, Any]) -> None:
        for queue in list(self._queues):
            if queue.full():  # a slow client: drop what it missed, ask it to reload
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait({"type": "resync"})
            else:
                queue.put_nowait(message)

    async def stream(self) -> AsyncIterator[str]:
        """Server-sent events: ``cameras`` (every camera's status, twice a second), ``camera``
        (a state change), ``event`` (an event opened or closed) and ``resync`` (messages were
        dropped: reload ``GET /events``). Ends when the watcher stops."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.add(queue)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            due = 0.0
            while self.running and not self.closing:
                now = time.monotonic()
                if now >= due:
                    due = now + STATUS_INTERVAL_S
                    status = {"cameras": self.cameras(), "error": self.worker_error()}
                    yield sse("cameras", {"type": "cameras", **status})
                try:
                    message = await asyncio.wait_for(queue.get(), max(0.0, due - now))
                except TimeoutError:
                    continue
                if message is None:
                    return
                yield sse(message["type"], message)
        finally:
            self._queues.discard(queue)


def sse(kind: str, data: dict[str, Any]) -> str:
    """One server-sent event: its type and one line of JSON."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _put_last(queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(None)


def with_links(event: dict[str, Any]) -> dict[str, Any]:
    """An event as the API shows it: its fields and the URLs of its evidence and of the
    explanation of its clip."""
    clip = bool(event.get("clip"))
    links = {
        "snapshot": f"/events/{event['id']}/snapshot.jpg" if event.get("snapshot") else None,
        "clip": f"/events/{event['id']}/clip.mp4" if clip else None,
        "explain": f"/events/{event['id']}/explain.mp4" if clip else None,
    }
    return {**event, "links": links}
