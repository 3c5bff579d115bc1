"""Live sources on loopback for the tests: real servers, real clips, no mocks.

A ``TsFeed`` plays H.264 files in order (optionally looping) as one live MPEG-TS stream at real
time, remuxed without re-encoding, its timestamps continuing from one file to the next. It is
served three ways: sent as UDP datagrams, served over HTTP to every client that connects, or
relayed by GStreamer's RTSP server (``rtsp_server.py``, a separate process run by the system
Python). Each ``LoopbackSource`` keeps its URL across ``stop()`` (the camera goes away: port
closed, connections cut, nothing sent) and ``start()`` (it comes back on the same URL); the feed
plays on in between, as a camera's clock would.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import queue
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.bitstream import BitStreamFilterContext

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
TS_PACKET = 188
UDP_PAYLOAD = 7 * TS_PACKET
TICKS = Fraction(1, 90000)

Subscriber = Callable[[bytes], None]


class _Publisher:
    """The muxer's output file: every write goes to the current subscribers."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.lock = threading.Lock()

    def write(self, data: bytes) -> int:
        with self.lock:
            targets = list(self.subscribers)
        for target in targets:
            target(bytes(data))
        return len(data)


class TsFeed:
    """``files`` (H.264 in any container) as one MPEG-TS stream paced at real time."""

    def __init__(self, files: Sequence[Path], *, loop: bool = True) -> None:
        if not files:
            raise ValueError("a feed needs at least one file")
        self.files = [Path(path) for path in files]
        self.loop = loop
        self.finished = threading.Event()
        self._publisher = _Publisher()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, target: Subscriber) -> None:
        with self._publisher.lock:
            self._publisher.subscribers.add(target)

    def unsubscribe(self, target: Subscriber) -> None:
        with self._publisher.lock:
            self._publisher.subscribers.discard(target)

    def start(self) -> TsFeed:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ts-feed", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        out = av.open(self._publisher, "w", format="mpegts", options={"flush_packets": "1"})
        try:
            started = time.monotonic()
            offset = 0.0
            stream = None
            playlist = itertools.cycle(self.files) if self.loop else iter(self.files)
            for path in playlist:
                if self._stop.is_set():
                    break
                with av.open(str(path)) as source:
                    video = source.streams.video[0]
                    if stream is None:
                        stream = out.add_stream_from_template(video)
                    offset = self._play(source, video, out, stream, offset, started)
        finally:
            out.close()
            self.finished.set()

    def _play(
        self, source: Any, video: Any, out: Any, stream: Any, offset: float, started: float
    ) -> float:
        """Mux one file's packets from ``offset`` seconds on; returns where the file ends."""
        annexb = BitStreamFilterContext("h264_mp4toannexb", video)
        base = video.time_base
        step = 1.0 / float(video.average_rate or 25)
        zero: float | None = None
        end = offset
        for packet in source.demux(video):
            if packet.dts is None or packet.pts is None:
                continue
            if zero is None:
                zero = float(packet.dts * base)
            for part in annexb.filter(packet):
                pts = offset + float(part.pts * base) - zero
                dts = offset + float(part.dts * base) - zero
                end = max(end, pts + (float(part.duration * base) if part.duration else step))
                if self._stop.wait(max(0.0, started + dts - time.monotonic())):
                    return end
                part.time_base = TICKS
                part.pts, part.dts = round(pts / TICKS), round(dts / TICKS)
                part.stream = stream
                out.mux(part)
        return end


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Datagrams:
    """Sends an MPEG-TS byte stream to a loopback UDP port, whole TS packets per datagram."""

    def __init__(self, port: int) -> None:
        self.address = ("127.0.0.1", port)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._pending = b""

    def __call__(self, data: bytes) -> None:
        data = self._pending + data
        whole = len(data) - len(data) % TS_PACKET
        self._pending = data[whole:]
        for start in range(0, whole, UDP_PAYLOAD):
            with contextlib.suppress(OSError):  # nobody listening yet: a camera sends anyway
                self._socket.sendto(data[start : min(start + UDP_PAYLOAD, whole)], self.address)

    def close(self) -> None:
        self._socket.close()


class LoopbackSource:
    """A live source on loopback; ``stop()`` takes it away, ``start()`` brings it back on the
    same ``url``; ``close()`` ends it for good. ``connections`` counts clients served (HTTP,
    RTSP sessions are not counted)."""

    kind = ""

    def __init__(self, feed: Any, port: int) -> None:
        self.feed = feed
        self.port = port
        self.connections = 0
        self.running = False

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self) -> LoopbackSource:
        if not self.running:
            self.feed.start()
            self._serve()
            self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self._cut()
            self.running = False

    def close(self) -> None:
        self.stop()
        self.feed.close()

    def _serve(self) -> None:
        raise NotImplementedError

    def _cut(self) -> None:
        raise NotImplementedError


class UdpSource(LoopbackSource):
    """MPEG-TS over UDP datagrams, as an encoder or a camera multicasting on a LAN would."""

    kind = "udp"

    def __init__(self, feed: TsFeed) -> None:
        super().__init__(feed, free_port(socket.SOCK_DGRAM))
        self._sender: _Datagrams | None = None

    @property
    def url(self) -> str:
        return f"udp://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._sender = _Datagrams(self.port)
        self.feed.subscribe(self._sender)

    def _cut(self) -> None:
        if self._sender is not None:
            self.feed.unsubscribe(self._sender)
            self._sender.close()
            self._sender = None


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that hung up (a reader reconnecting) is not an error worth printing."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class HttpSource(LoopbackSource):
    """MPEG-TS over HTTP: each client gets the stream from the moment it connects, as from an
    IP camera's or an encoder's HTTP output. ``feed`` may also be any object whose
    ``chunks(cut)`` yields the bytes for one client (see ``PacedPayload``)."""

    kind = "http"

    def __init__(self, feed: Any, path: str = "/live.ts") -> None:
        super().__init__(feed, free_port())
        self.path = path
        self._server: http.server.ThreadingHTTPServer | None = None
        self._cut_clients = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def chunks(self, cut: threading.Event) -> Iterator[bytes]:
        """The live feed from now on, until ``cut`` is set or the client falls far behind."""
        pending: queue.Queue[bytes] = queue.Queue(maxsize=2000)

        def take(data: bytes) -> None:
            try:
                pending.put_nowait(data)
            except queue.Full:
                cut.set()

        self.feed.subscribe(take)
        try:
            while not cut.is_set() and not self.feed.finished.is_set():
                try:
                    yield pending.get(timeout=0.1)
                except queue.Empty:
                    continue
        finally:
            self.feed.unsubscribe(take)

    def _serve(self) -> None:
        owner = self
        source = self if isinstance(self.feed, TsFeed) else self.feed
        cut = self._cut_clients
        cut.clear()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                for data in source.chunks(cut):
                    try:
                        self.wfile.write(data)
                        self.wfile.flush()
                    except OSError:
                        return

            def log_message(self, *args: Any) -> None:
                pass

        server = QuietServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="http-source", daemon=True).start()

    def _cut(self) -> None:
        self._cut_clients.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class PacedPayload:
    """A fixed MPEG-TS payload sent whole to each client from its start, over ``seconds``."""

    def __init__(self, payload: bytes, seconds: float) -> None:
        self.payload = payload
        self.seconds = seconds

    def start(self) -> PacedPayload:
        return self

    def close(self) -> None:
        pass

    def chunks(self, cut: threading.Event) -> Iterator[bytes]:
        size = TS_PACKET * 20
        pause = self.seconds * size / max(1, len(self.payload))
        for start in range(0, len(self.payload), size):
            if cut.is_set():
                return
            yield self.payload[start : start + size]
            cut.wait(pause)


class RtspSource(LoopbackSource):
    """H.264 over RTP from GStreamer's RTSP server, which relays the feed sent to it by UDP.
    ``stop()`` ends the server process; ``start()`` runs a new one on the same port."""

    kind = "rtsp"

    def __init__(self, feed: TsFeed) -> None:
        super().__init__(feed, free_port())
        self._relay = UdpSource(feed)
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def _serve(self) -> None:
        command = [SYSTEM_PYTHON, str(RTSP_SERVER), str(self.port), str(self._relay.port)]
        with tempfile.TemporaryFile("w+") as errors:  # a file: a pipe left unread could fill
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
            line = process.stdout.readline() if process.stdout else ""
            if not line.startswith("ready"):
                process.kill()
                process.wait()
                errors.seek(0)
                said = errors.read().strip().splitlines() or ["no output"]
                raise RuntimeError(
                    f"GStreamer's RTSP server did not start ({said[-1]});"
                    " install gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
                    "gstreamer1.0-plugins-bad python3-gi (see .ci/run)"
                )
        self._process = process
        self._relay.start()

    def _cut(self) -> None:
        self._relay.stop()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.communicate()
            self._process = None


SOURCE_KINDS: dict[str, type[LoopbackSource]] = {
    "udp": UdpSource,
    "http": HttpSource,
    "rtsp": RtspSource,
}


def loopback_source(
    kind: str, files: Sequence[Path], *, loop: bool = True, start: bool = True
) -> LoopbackSource:
    """A ``kind`` ("udp", "http", "rtsp") source playing ``files`` in order at real time;
    with ``start=False`` its URL is known but nothing answers there until ``start()``."""
    source = SOURCE_KINDS[kind](TsFeed(files, loop=loop))
    return source.start() if start else source


def surveillance_clips(videos_dir: Path, label: str, count: int = 3) -> list[Path]:
    """``count`` clips of ``label`` ("fight" or "noFight") from surveillance_camera_fight that
    are 640x360 H.264 at 30 fps, so a playlist of them keeps one size and rate."""
    found = []
    for path in sorted((videos_dir / "surveillance_camera_fight" / label).glob("*.mp4")):
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            if (video.width, video.height) == (640, 360) and video.average_rate == 30:
                found.append(path)
        if len(found) == count:
            break
    return found
