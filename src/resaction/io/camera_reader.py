"""``CameraReader``: one thread per live source that reads, decodes and shrinks frames; the one
reader under ``watch`` (many cameras) and ``stream`` (one source).

It demuxes the camera's compressed packets (handed to ``on_packet`` for the evidence ring),
decodes them and puts each picture into a sink: by default a ``LatestFrames`` that drops the
oldest frames rather than queueing them (``stream`` starts it on an ``OrderedFrames`` to read a
file as fast as possible, every frame). A picture is converted straight to the model's input
size during colour conversion (``io.convert.FrameConverter``) only when asked for
(``CapturedFrame.image``): the watcher scores the frames on its lattice, about one in six
(converting a 640x480 picture costs about 0.2 ms, decoding it about 1.1 ms). A camera that
cannot be reached, at start or later, is retried with capped exponential back-off, forever
(``watch``) or until ``give_up_after`` seconds (``stream``); its health is one of ``STATES``.
``open()`` connects in the caller's thread first, so a source that cannot be opened at all fails
at once, in one line.

Threads, not processes: PyAV releases the GIL while demuxing, decoding and scaling; on 2 cores
``benchmarks/watch_readers.py`` kept 1 to 16 cameras at real time with the least CPU by threads.

Stream time is seconds from the first frame of the session and only ever increases: within a
connection it follows the source's presentation times; a looped file continues one frame after
its last frame; a network stream that comes back continues at the wall-clock time since the
session began (so an outage shows as a gap); a jump in the source's own timestamps (a camera
restarting its clock) continues one frame on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resaction.errors import ResactionError, SourceError, describe_error, first_line
from resaction.io.convert import FrameConverter
from resaction.io.geometry import check_roi, output_size
from resaction.io.live import (
    Backoff,
    CapturedFrame,
    FrameSink,
    LatestFrames,
    open_camera,
    open_stream,
    parse_source,
)

log = logging.getLogger(__name__)

STATES = ("connecting", "live", "reconnecting", "down", "ended", "stopped", "failed")
FPS_WINDOW_S = 2.0
MAX_JUMP_S = 10.0
MAX_DECLARED_FPS = 240.0

PacketCallback = Callable[[Any, float, Any], None]
StateCallback = Callable[[str, str, str], None]


@dataclass(frozen=True)
class ReaderStats:
    camera: str
    state: str
    message: str
    frames_read: int
    frames_dropped: int
    reconnects: int
    input_fps: float
    stream_time: float


class StreamClock:
    """Maps a connection's presentation times (seconds) onto the session's stream time."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._last_dts: float | None = None

    def begin(self, raw: float, at: float) -> None:
        """A new connection: presentation time ``raw`` is stream time ``at``."""
        self.offset = at - raw
        self._last_dts = None

    def follow(self, raw_dts: float, step: float) -> None:
        """Re-anchor when the source's decode times jump back or far ahead."""
        last = self._last_dts
        if last is not None and not -1.0 <= raw_dts - last <= MAX_JUMP_S:
            self.offset = last + self.offset + step - raw_dts
        self._last_dts = raw_dts

    def __call__(self, raw: float) -> float:
        return raw + self.offset


class CameraReader:
    """Reads one camera (webcam index, network URL or file) in a thread. ``size=(H, W)`` or
    ``short_side`` fix the frames' size (``short_side`` from the first frame's aspect, kept for
    the session; neither: the source's size). Files play at their own frame rate
    (``realtime=False``: as fast as the sink takes them), ``loop`` replays them.
    ``on_packet(packet, time, stream)`` sees every demuxed video packet first (``time`` in
    stream-time seconds, as the frames'); ``on_state(camera, state, message)`` hears every
    change of ``state``. ``roi=(x, y, width, height)`` in source pixels: only that region comes
    out, at the requested size (the picture is scaled so the region is). After ``down_after``
    seconds without a frame the camera is ``down`` (still retried, every ``backoff[1]`` s);
    after ``give_up_after`` seconds, if given, it is ``failed`` and ``error`` says why.
    Callbacks run on the reader's thread: keep them short.
    """

    def __init__(
        self,
        camera: str,
        source: str | int | Path,
        *,
        size: tuple[int, int] | None = None,
        short_side: int | None = None,
        capacity: int = 64,
        realtime: bool = True,
        loop: bool = False,
        on_packet: PacketCallback | None = None,
        on_state: StateCallback | None = None,
        open_timeout: float = 5.0,
        read_timeout: float = 2.0,
        backoff: tuple[float, float] = (0.25, 4.0),
        down_after: float = 30.0,
        give_up_after: float | None = None,
        options: dict[str, str] | None = None,
        threads: int = 1,
        interpolation: str = "BILINEAR",
        roi: tuple[int, int, int, int] | None = None,
    ) -> None:
        self.camera = camera
        self.kind, self.target = parse_source(source)
        output_size(1, 1, size, short_side)  # checks the options now, not in the thread
        self.size = size
        self.short_side = short_side
        self.realtime = realtime
        self.loop = loop
        self.on_packet = on_packet
        self.on_state = on_state
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.down_after = down_after
        self.give_up_after = give_up_after
        self.options = dict(options or {})
        if str(self.target).lower().startswith("rtsp"):
            self.options.setdefault("rtsp_transport", "tcp")
        self.threads = threads
        self.interpolation = interpolation
        self.roi = roi
        self._crop: tuple[int, int, int, int] | None = None
        self.frames: FrameSink = LatestFrames(capacity)
        self.frames_read = 0
        self.reconnects = 0
        self.state = "connecting"
        self.message = ""
        self.reason = ""
        """Why the last connection ended or failed."""
        self.error: ResactionError | None = None
        """Set when the reader gave up (``failed``)."""
        self.finished = threading.Event()
        self._pending: tuple[Any, Any] | None = None
        self._attempts = 0
        self._backoff = Backoff(*backoff)
        self._clock = StreamClock()
        self._converter: FrameConverter | None = None
        self._started_at: float | None = None
        self._last_time = -1e-3
        self._was_live = False
        self._step = 1 / 25
        self.declared_fps = 0.0
        """The frame rate the source declares (0 when it declares none or an implausible one);
        the measured rate (``stats().input_fps``) is bursty while a connection starts."""
        self._lost_since: float | None = None
        self._arrivals: deque[float] = deque(maxlen=512)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> CameraReader:
        """Connect in the caller's thread, raising a one-line ``SourceError`` (``VideoError``
        for a file) if it cannot; the thread then starts on this connection."""
        if self._pending is None and self._thread is None:
            self._pending = self._connect()
        return self

    def start(self, sink: FrameSink | None = None) -> CameraReader:
        """Read in a thread into ``sink`` (default: a ``LatestFrames`` of ``capacity``)."""
        if sink is not None:
            self.frames = sink
        if self._thread is None:
            self._set_state("connecting", f"opening {self.target}", force=True)
            self._thread = threading.Thread(
                target=self._run, name=f"resaction-camera[{self.camera}]", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self.frames.close()
        if self._thread is not None:
            wait = self.open_timeout + self.read_timeout + 1.0
            self._thread.join(wait if timeout is None else timeout)
        elif self._pending is not None:
            self._close(*self._pending)
            self._pending = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> ReaderStats:
        return ReaderStats(
            camera=self.camera,
            state=self.state,
            message=self.message,
            frames_read=self.frames_read,
            frames_dropped=self.frames.dropped,
            reconnects=self.reconnects,
            input_fps=self._input_fps(),
            stream_time=max(0.0, self._last_time),
        )

    def _set_rate(self, fps: float) -> None:
        """The source's declared frame rate, when it declares a plausible one."""
        if 0 < fps <= MAX_DECLARED_FPS:
            self._step = 1 / fps
            self.declared_fps = fps

    def _input_fps(self) -> float:
        arrivals = list(self._arrivals)
        now = time.monotonic()
        recent = [moment for moment in arrivals if now - moment <= FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def _set_state(self, state: str, message: str, *, force: bool = False) -> None:
        self.message = message
        if state == self.state and not force:
            return
        self.state = state
        log.info("camera %s: %s (%s)", self.camera, state, message)
        if self.on_state is not None:
            try:
                self.on_state(self.camera, state, message)
            except Exception:  # a listener's bug must not stop the camera
                log.exception("camera %s: on_state failed", self.camera)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    reason = self._read_once()
                except ResactionError as error:
                    reason = str(error)
                except Exception as error:  # a bug (ours or a callback's) must not end the camera
                    log.exception("camera %s: reader failed", self.camera)
                    reason = describe_error(error)
                if self._stop.is_set():
                    break
                if self.kind == "file" and not self.loop:
                    cause = "" if reason is None else f" ({reason})"
                    played = f"end of {self.target} after {self.frames_read} frames{cause}"
                    self._set_state("ended", played)
                    return
                if reason is None:  # a looped file played to its end
                    continue
                if not self._wait_to_retry(reason):
                    return
        finally:
            if self._stop.is_set():
                self._set_state("stopped", "stopped")
            self.finished.set()
            self.frames.wake()

    def _wait_to_retry(self, reason: str) -> bool:
        """Wait before the next attempt; ``False`` when the reader gives up instead."""
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
        self.reason = reason
        self._attempts += 1
        delay = self._backoff.next()
        away = now - self._lost_since
        if self.give_up_after is not None and away + delay > self.give_up_after:
            self.error = SourceError(
                f"{self.target} has been unreachable for {away:.0f} s "
                f"({self._attempts} attempts, last: {reason}); giving up"
            )
            self._set_state("failed", str(self.error))
            return False
        if away >= self.down_after:
            message = f"{reason}; unreachable for {away:.0f} s, retrying every {delay:.2g} s"
            self._set_state("down", message)
        else:
            self._set_state("reconnecting", f"{reason}; retrying in {delay:.2g} s")
        self._stop.wait(delay)
        return True

    def _connect(self) -> tuple[Any, Any]:
        """A new connection, its declared rate noted: ``(OpenCV capture, None)`` for a camera,
        ``(container, video stream)`` for a network stream or file."""
        if self.kind == "camera":
            capture, fps = open_camera(int(self.target))
            self._set_rate(fps)
            return capture, None
        is_file = self.kind == "file"
        timeout = None if is_file else (self.open_timeout, self.read_timeout)
        container, stream, fps = open_stream(
            str(self.target), timeout, file=is_file, options=self.options
        )
        stream.thread_count = self.threads
        if self.threads != 1:
            stream.thread_type = "AUTO"
        self._set_rate(fps)
        return container, stream

    @staticmethod
    def _close(handle: Any, stream: Any) -> None:
        if stream is None:
            handle.release()
        else:
            handle.close()

    def _read_once(self) -> str | None:
        """One connection (or one play of a file): why it ended, ``None`` for a file's end."""
        handle, stream = self._pending or self._connect()
        self._pending = None
        try:
            if stream is None:
                return self._read_camera(handle)
            return self._read_stream(handle, stream, self.kind == "file")
        finally:
            self._close(handle, stream)

    def _read_stream(self, container: Any, stream: Any, is_file: bool) -> str | None:
        import av

        base = stream.time_base
        keyed = anchored = False
        packet_time = self._next_connection_time(is_file)
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return "stopped"
                keyed = keyed or packet.is_keyframe
                if not keyed:
                    continue  # joined mid-stream: nothing decodes before a keyframe
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is not None:
                    if not anchored:
                        self._clock.begin(float(stamp * base), packet_time)
                        anchored = True
                    if packet.dts is not None:
                        self._clock.follow(float(packet.dts * base), self._step)
                    packet_time = self._clock(float(stamp * base))
                if self.on_packet is not None and packet.size:
                    self.on_packet(packet, packet_time, stream)
                try:
                    pictures = packet.decode()
                except av.error.InvalidDataError:  # a damaged packet: the next keyframe mends it
                    continue
                for picture in pictures:
                    known = picture.time is not None and anchored
                    when = (
                        self._clock(float(picture.time)) if known else self._last_time + self._step
                    )
                    self._deliver(picture, when, is_file)
        except av.error.FFmpegError as error:
            return f"lost {self.target} ({first_line(error)})"
        return None if is_file else f"{self.target} ended the stream"

    def _next_connection_time(self, is_file: bool) -> float:
        """The stream time a new connection (or a file's next loop) starts at."""
        if self._started_at is None:
            return 0.0
        resume = self._last_time + self._step
        if is_file:
            return resume
        return max(resume, time.monotonic() - self._started_at)

    def _read_camera(self, capture: Any) -> str:
        import av

        while not self._stop.is_set():
            ok, image = capture.read()
            if not ok:
                return f"camera {self.target} stopped delivering frames"
            picture = av.VideoFrame.from_ndarray(image, format="bgr24")
            self._deliver(picture, None, False)
        return "stopped"

    def _deliver(self, picture: Any, stream_time: float | None, is_file: bool) -> None:
        now = time.monotonic()
        if self._started_at is None:
            self._started_at = now
        if stream_time is None:
            stream_time = now - self._started_at
        stream_time = max(stream_time, self._last_time + 1e-3)  # B-frames around a reconnection
        if is_file and self.realtime:  # frame t is due t s after the session began
            if self._stop.wait(max(0.0, self._started_at + stream_time - now)):
                return
            now = time.monotonic()
        self._last_time = stream_time
        frame = CapturedFrame(
            self.frames_read, stream_time, now, picture=picture, convert=self._convert
        )
        if self.state != "live":
            self._went_live(picture)
        self.frames.put(frame)
        self.frames_read += 1
        self._arrivals.append(now)

    def _convert(self, picture: Any) -> np.ndarray:
        if self._converter is None:
            self._converter, self._crop = self._converter_for(picture.height, picture.width)
        image = self._converter(picture)
        if self._crop is None:
            return image
        top, bottom, left, right = self._crop
        return image[top:bottom, left:right]

    def _converter_for(
        self, height: int, width: int
    ) -> tuple[FrameConverter, tuple[int, int, int, int] | None]:
        """Scale the whole picture so that the region of interest (or the picture) comes out
        at the requested size; the crop (top, bottom, left, right) in the scaled picture."""
        if self.roi is None:
            out = output_size(height, width, self.size, self.short_side)
            return FrameConverter(out, 0, self.interpolation, 1), None
        x, y, w, h = self.roi  # inside the picture (``check_roi``)
        target_h, target_w = output_size(h, w, self.size, self.short_side)
        sy, sx = target_h / h, target_w / w
        out = (max(1, round(height * sy)), max(1, round(width * sx)))
        top, left = min(round(y * sy), out[0] - 1), min(round(x * sx), out[1] - 1)
        crop = (top, min(out[0], top + target_h), left, min(out[1], left + target_w))
        return FrameConverter(out, 0, self.interpolation, 1), crop

    def _went_live(self, picture: Any) -> None:
        check_roi(self.roi, picture.height, picture.width, self.camera)
        if self._was_live and self._lost_since is not None:
            self.reconnects += 1
        self._was_live = True
        self._lost_since = None
        self._attempts = 0
        self._backoff.reset()
        self._set_state("live", f"receiving {picture.width}x{picture.height}")
