"""What live reading is made of: the frames a reader captures, the sinks it pushes them into,
and opening a camera (OpenCV), network stream or file (PyAV) in one line or one error.

A reader never waits for inference: it pushes every decoded frame into a sink, and the consumer
decides what the sink keeps (``LatestFrames`` keeps only the newest, so a slow model drops
frames instead of queueing them; ``OrderedFrames`` makes the reader wait, for files read as fast
as possible). The reader itself is ``io.camera_reader.CameraReader``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from resaction.errors import (
    SourceError,
    VideoNotFoundError,
    VideoOpenError,
    first_line,
)
from resaction.io.container import ffmpeg_path

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


class FrameSink(Protocol):
    dropped: int
    """Frames evicted before the consumer took them."""

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
        self.dropped = 0
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
    if path.is_dir():
        raise VideoNotFoundError(f"stream source {text} is a folder: give one video file")
    if not path.is_file():
        raise VideoNotFoundError(
            f"stream source {text} is not a camera index, a URL "
            f"({', '.join(NETWORK_SCHEMES[:5])}...) or an existing file"
        )
    return "file", str(path)


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
        name = ffmpeg_path(target) if file else target
        container = av.open(name, timeout=timeout, options=options or {})
    except Exception as error:
        if file:
            raise VideoOpenError(f"cannot open video {target}: {first_line(error)}") from None
        raise SourceError(f"cannot open stream {target}: {first_line(error)}") from None
    if not container.streams.video:
        container.close()
        error_type = VideoOpenError if file else SourceError
        raise error_type(f"{target} has no video stream")
    stream = container.streams.best("video")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return container, stream, float(rate) if rate else 0.0


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
