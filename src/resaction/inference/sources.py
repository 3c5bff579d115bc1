"""Live frame sources for ``stream``: a reader thread per camera, network stream or file.

The reader never waits for inference. It pushes every decoded frame into a sink; the stream
decides what the sink keeps (``LatestFrames`` keeps only the newest, so a slow model drops
frames instead of queueing them). Cameras are read with OpenCV; network streams and files with
PyAV, which gives real timestamps and honours a read timeout. A network stream that goes away
is reopened with back-off until ``reconnect_timeout`` runs out; each step is reported as a
``SourceEvent``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from resaction.errors import (
    ResactionError,
    SourceError,
    VideoNotFoundError,
    VideoOpenError,
    first_line,
)

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "rtp")


_CONVERTING = threading.Lock()


class CapturedFrame:
    """One frame as read: ``seq`` counts frames from 0, ``time`` is its stream time in seconds
    (presentation time for files, seconds since the start for cameras and network streams) and
    ``captured`` the ``time.monotonic()`` at which the reader had it.

    ``image`` is an ``(H, W, 3)`` uint8 RGB array, given, or converted from the decoded
    ``picture`` by ``convert`` the first time it is asked for: a watcher scores only the frames
    on its lattice (one in six of a 25 fps camera), so the others are never converted. Lazy
    conversions take one lock, so a reader's converter is never used by two threads at once."""

    __slots__ = ("_convert", "_image", "_picture", "captured", "seq", "time")

    def __init__(
        self,
        seq: int,
        time: float,
        captured: float,
        image: np.ndarray | None = None,
        *,
        picture: Any = None,
        convert: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        if image is None and (picture is None or convert is None):
            raise ValueError("a captured frame needs an image, or a picture and its converter")
        self.seq, self.time, self.captured = seq, time, captured
        self._image, self._picture, self._convert = image, picture, convert

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            with _CONVERTING:
                if self._image is None:
                    if self._convert is None or self._picture is None:
                        raise RuntimeError(f"frame {self.seq} was released unconverted")
                    self._image = self._convert(self._picture)
                    self._picture = self._convert = None
        return self._image

    def release(self) -> None:
        """Drop the decoded picture of a frame that will never be converted."""
        if self._image is None:
            with _CONVERTING:
                self._picture = None


@dataclass
class SourceEvent:
    """Something that happened to the source: lost, reconnecting, reconnected, gave_up, ended."""

    kind: str
    message: str
    time: float = field(default_factory=time.monotonic)


class FrameSink(Protocol):
    def put(self, frame: CapturedFrame) -> None: ...

    def take_new(self, timeout: float | None = None) -> list[CapturedFrame]: ...

    def wake(self) -> None: ...

    def close(self) -> None: ...


class LatestFrames:
    """The newest ``capacity`` frames; older ones are evicted, never queued.

    ``put`` never blocks (the reader keeps the live pace); ``take_new`` hands the consumer
    the frames it has not seen yet, so the consumer can tell from gaps in ``seq`` how many frames
    it missed.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.dropped = 0
        """Frames evicted before the consumer took them."""
        self._frames: deque[CapturedFrame] = deque(maxlen=capacity)
        self._ready = threading.Condition()

    def put(self, frame: CapturedFrame) -> None:
        with self._ready:
            frames = self._frames
            if len(frames) == self.capacity:
                self.dropped += 1
            frames.append(frame)
            self._ready.notify_all()

    def __len__(self) -> int:
        return len(self._frames)

    def take_new(self, timeout: float | None = None) -> list[CapturedFrame]:
        """Frames newer than the last call, oldest first; waits up to ``timeout`` for one.
        Taken frames leave the buffer, so it holds no more than the frames not yet taken."""
        with self._ready:
            if timeout is not None and not self._frames:
                self._ready.wait(timeout)
            new = list(self._frames)
            self._frames.clear()
            return new

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def close(self) -> None:
        self.wake()


class OrderedFrames:
    """A short blocking queue: the reader waits for the consumer, so no frame is lost.

    Used when a file is processed as fast as possible rather than at its own frame rate.
    """

    def __init__(self, capacity: int) -> None:
        self._queue: queue.Queue[CapturedFrame] = queue.Queue(maxsize=max(1, capacity))
        self._closed = threading.Event()

    def put(self, frame: CapturedFrame) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    def take_new(self, timeout: float | None = None) -> list[CapturedFrame]:
        try:
            first = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return []
        return [first]

    def close(self) -> None:
        self._closed.set()

    def wake(self) -> None:
        pass


def parse_source(source: str | int | Path) -> tuple[str, str | int]:
    """``("camera", index)``, ``("network", url)`` or ``("file", path)``; a missing file raises."""
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return "camera", int(source)
    text = str(source)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in NETWORK_SCHEMES:
        return "network", text
    path = Path(text).expanduser()
    if not path.is_file():
        raise VideoNotFoundError(
            f"stream source {text} is not a camera index, a URL "
            f"({', '.join(NETWORK_SCHEMES[:5])}...) or an existing file"
        )
    return "file", str(path)


Opened = tuple[Iterator[tuple[float, np.ndarray]], float, Callable[[], None]]


class FrameSource:
    """Reads a camera, network stream or file in a thread and pushes frames into a sink.

    ``start()`` opens the source first and raises ``SourceError`` (or a ``VideoError`` for a
    file) if it cannot, so an unreachable source fails at once with one line. ``realtime`` paces
    a file at its own frame rate; cameras and network streams are paced by their sender.
    ``on_event`` hears about losses and reconnections as they happen.
    """

    def __init__(
        self,
        source: str | int | Path,
        *,
        realtime: bool = False,
        open_timeout: float = 5.0,
        read_timeout: float = 2.0,
        reconnect_timeout: float = 30.0,
        backoff: tuple[float, float] = (0.25, 4.0),
        on_event: Callable[[SourceEvent], None] | None = None,
    ) -> None:
        self.kind, self.target = parse_source(source)
        self.name = str(source)
        self.realtime = realtime or self.kind != "file"
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.reconnect_timeout = reconnect_timeout
        self.backoff = backoff
        self.on_event = on_event
        self.fps = 0.0
        self.frames_read = 0
        self.reconnects = 0
        self.error: ResactionError | None = None
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened: Opened | None = None
        self._sink: FrameSink | None = None
        self._started_at = 0.0

    def open(self) -> FrameSource:
        """Open the source now (raising if it cannot be), so ``fps`` is known before ``start``."""
        if self._opened is None:
            self._opened = self._open()
            self.fps = self._opened[1]
        return self

    def start(self, sink: FrameSink) -> FrameSource:
        self.open()
        self._sink = sink
        self._started_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(sink,), name=f"resaction-reader[{self.name}]", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._sink is not None:
            self._sink.close()
        if self._thread is not None:
            self._thread.join(timeout=self.read_timeout + 2.0)

    def _emit(self, kind: str, message: str) -> None:
        log.info("%s: %s", self.name, message)
        if self.on_event is not None:
            self.on_event(SourceEvent(kind, message))

    def _open(self) -> Opened:
        if self.kind == "camera":
            return _open_camera(int(self.target))
        if self.kind == "file":
            return _open_pyav(str(self.target), None, file=True)
        return _open_pyav(str(self.target), (self.open_timeout, self.read_timeout), file=False)

    def _run(self, sink: FrameSink) -> None:
        seq = 0
        try:
            while not self._stop.is_set():
                frames, _, close = self._opened
                first_time: float | None = None
                paced_from = time.monotonic()
                lost_reason = "the stream ended"
                try:
                    for stamp, image in frames:
                        if self._stop.is_set():
                            break
                        if first_time is None:
                            first_time = stamp
                        relative = stamp - first_time
                        if self.kind == "file" and self.realtime:
                            delay = paced_from + relative - time.monotonic()
                            if delay > 0:
                                self._stop.wait(delay)
                        now = time.monotonic()
                        frame_time = relative if self.kind == "file" else now - self._started_at
                        sink.put(CapturedFrame(seq, frame_time, now, image))
                        seq += 1
                        self.frames_read = seq
                except Exception as error:  # decoders raise many types when a stream breaks
                    lost_reason = first_line(error)
                finally:
                    close()
                if self._stop.is_set() or self.kind == "file":
                    if self.kind == "file" and not self._stop.is_set():
                        cause = "" if lost_reason == "the stream ended" else f" ({lost_reason})"
                        self._emit("ended", f"end of {self.name} after {seq} frames{cause}")
                    return
                self._emit("lost", f"lost {self.name} ({lost_reason}); reconnecting")
                self._opened = self._reconnect()
                if self._opened is None:
                    return
                self.reconnects += 1
                self._emit("reconnected", f"reconnected to {self.name}")
        finally:
            self.finished.set()
            sink.wake()

    def _reconnect(self) -> Opened | None:
        started = time.monotonic()
        backoff = Backoff(*self.backoff)
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            try:
                return self._open()
            except ResactionError as error:
                delay = backoff.next()
                waited = time.monotonic() - started
                if waited + delay > self.reconnect_timeout:
                    self.error = SourceError(
                        f"{self.name} has been unreachable for {waited:.0f} s "
                        f"({attempt} attempts, last: {error}); giving up"
                    )
                    self._emit("gave_up", str(self.error))
                    return None
                self._emit("reconnecting", f"attempt {attempt} failed; retrying in {delay:.2g} s")
                self._stop.wait(delay)
        return None


class Backoff:
    """Waits between reconnection attempts: ``first`` seconds, doubling up to ``most``."""

    def __init__(self, first: float, most: float) -> None:
        self.first = first
        self.most = most
        self._delay = first

    def next(self) -> float:
        delay = self._delay
        self._delay = min(delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self._delay = self.first


def open_stream(
    target: str,
    timeout: tuple[float, float] | None,
    *,
    file: bool,
    options: dict[str, str] | None = None,
) -> tuple[Any, Any, float]:
    """A file or network stream opened with PyAV: ``(container, first video stream, frame rate
    or 0)``; raises ``VideoOpenError`` for a file, ``SourceError`` for a stream, in one line.
    ``timeout`` is (open, read) seconds; ``options`` go to the demuxer and protocol."""
    import av

    try:
        container = av.open(target, timeout=timeout, options=options or {})
    except Exception as error:
        if file:
            raise VideoOpenError(f"cannot open video {target}: {first_line(error)}") from None
        raise SourceError(f"cannot open stream {target}: {first_line(error)}") from None
    if not container.streams.video:
        container.close()
        error_type = VideoOpenError if file else SourceError
        raise error_type(f"{target} has no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return container, stream, float(rate) if rate else 0.0


def _open_pyav(target: str, timeout: tuple[float, float] | None, *, file: bool) -> Opened:
    container, stream, fps = open_stream(target, timeout, file=file)
    stream.thread_type = "AUTO"

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        step = 1.0 / fps if fps > 0 else 0.0
        for index, frame in enumerate(container.decode(stream)):
            stamp = frame.time if frame.time is not None else index * step
            yield float(stamp), frame.to_ndarray(format="rgb24")

    return frames(), fps, container.close


def open_camera(index: int) -> tuple[Any, float]:
    """An OpenCV ``VideoCapture`` on camera ``index`` and its frame rate (0 if unknown); OpenCV's
    own warnings are kept quiet and a missing camera is one ``SourceError`` line."""
    import cv2

    quiet = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        capture = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(quiet)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open camera {index}; check that it exists and is not in use")
    return capture, float(capture.get(cv2.CAP_PROP_FPS) or 0.0)


def _open_camera(index: int) -> Opened:
    import cv2

    capture, fps = open_camera(index)
    started = time.monotonic()

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        while True:
            ok, image = capture.read()
            if not ok:
                raise SourceError(f"camera {index} stopped delivering frames")
            yield time.monotonic() - started, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    return frames(), fps, capture.release
