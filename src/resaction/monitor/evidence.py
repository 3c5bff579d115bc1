"""Evidence for events: a per-camera ring of compressed video packets, MP4 clips cut from it by
remuxing (no re-encode), and snapshot JPEGs decoded from it.

The ring holds packets as the camera sent them, a few hundred kB a second, not decoded frames
(640x480 RGB at 25 fps is 23 MB a second), so keeping the last minute per camera is cheap. A clip
starts at a keyframe, the last one at or before the wanted start, so it decodes on its own; it is
cut by ``io.clips``, the same cutter the timeline uses on files.

Packets are copied to bytes when added: a demuxed ``av.Packet`` and its stream belong to the
reader's container, which is closed when the camera reconnects. What a clip needs of the stream
(codec parameters, extradata, time base) is copied once per connection into a stream of a private,
never-written container, the template for ``add_stream_from_template``.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import threading
import time as clock
from collections import deque
from fractions import Fraction
from pathlib import Path

import av
import cv2

from resaction.errors import VideoError, first_line
from resaction.io.clips import (
    PacketRecord,
    clip_facts,
    packet_span,
    packet_timestamps,
    remux_packets,
)


class _Segment:
    """The packets of one connection: groups of pictures, each starting at a keyframe."""

    def __init__(self, stream: av.video.stream.VideoStream, number: int) -> None:
        self.number = number
        self.stream: av.video.stream.VideoStream | None = stream  # for identity only
        self._holder = av.open(io.BytesIO(), "w", format="matroska")
        self.error: str | None = None  # why this connection's packets cannot be kept
        try:
            self.template = self._holder.add_stream_from_template(stream)
        except (ValueError, av.FFmpegError) as error:
            self.template = None
            self.error = f"cannot keep {stream.codec_context.name} packets: {first_line(error)}"
        self.codec = stream.codec_context.name
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        self.extradata = stream.codec_context.extradata
        self.time_base = stream.time_base or Fraction(1, 90000)
        self.gops: deque[list[PacketRecord]] = deque()
        self.nbytes = 0
        self.count = 0
        self.newest = float("-inf")
        self.arrival = clock.monotonic()

    @property
    def oldest(self) -> float:
        return self.gops[0][0].time if self.gops else float("inf")

    def add(self, packet: PacketRecord) -> None:
        if self.template is None:
            return
        if packet.keyframe:
            self.gops.append([packet])
        elif self.gops:
            self.gops[-1].append(packet)
        else:
            return  # nothing before the connection's first keyframe can be decoded
        self.nbytes += len(packet.data)
        self.count += 1
        self.newest = max(self.newest, packet.time)
        self.arrival = clock.monotonic()

    def drop_oldest_gop(self) -> None:
        gop = self.gops.popleft()
        self.nbytes -= sum(len(p.data) for p in gop)
        self.count -= len(gop)

    def packets(self) -> list[PacketRecord]:
        return list(itertools.chain.from_iterable(self.gops))


def _alike(a: _Segment, b: _Segment) -> bool:
    """Whether two connections' packets can share one clip: the same codec, size, extradata and
    time base (a camera that came back with other settings cannot)."""
    same = (a.codec, a.width, a.height, a.extradata, a.time_base)
    return a.template is not None and same == (b.codec, b.width, b.height, b.extradata, b.time_base)


def _stamped(packet: PacketRecord, time_base: Fraction) -> PacketRecord:
    """``packet`` with its pts taken from its stream time (its dts kept as far behind)."""
    pts = round(packet.time / time_base)
    delay = None if packet.pts is None or packet.dts is None else packet.pts - packet.dts
    return dataclasses.replace(packet, pts=pts, dts=None if delay is None else pts - delay)


class PacketRing:
    """The last ``seconds`` of one camera's compressed video. Thread-safe.

    Memory: the newest ``seconds`` of stream time plus at most one group of pictures (the oldest
    kept packet is always a keyframe), and never more than ``max_bytes`` in all: past that the
    oldest groups go even if they are recent, and a single group larger than that is dropped
    whole. Segments of earlier connections are kept for ``seconds`` of wall clock after their
    last packet, at most ``max_segments`` of them."""

    def __init__(self, seconds: float, max_bytes: int = 64 * 2**20, max_segments: int = 16) -> None:
        self.seconds = float(seconds)
        self.max_bytes = int(max_bytes)
        self.max_segments = max(1, int(max_segments))
        self._segments: list[_Segment] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count()

    def add(self, packet: av.Packet, time: float, stream: av.video.stream.VideoStream) -> None:
        """Keep ``packet`` (shown at ``time``, stream seconds) of ``stream``; a stream other than
        the last one's starts a new segment (a reconnect or a file's next pass)."""
        if packet.size == 0:
            return
        record = PacketRecord.of(packet, time)  # time: the camera's stream seconds
        with self._lock:
            current = self._segments[-1] if self._segments else None
            if current is None or current.stream is not stream:
                if current is not None:
                    current.stream = None
                current = _Segment(stream, next(self._numbers))
                self._segments.append(current)
            current.add(record)
            self._evict(current)

    def _evict(self, current: _Segment) -> None:
        horizon = current.newest - self.seconds
        while len(current.gops) >= 2 and current.gops[1][0].time <= horizon:
            current.drop_oldest_gop()
        now = clock.monotonic()
        self._segments = [
            s
            for s in self._segments[-self.max_segments :]
            if s is current or (now - s.arrival <= self.seconds and s.gops)
        ]
        while sum(s.nbytes for s in self._segments) > self.max_bytes:
            oldest = self._segments[0]
            if oldest is not current:
                self._segments.pop(0)
            elif len(current.gops) >= 2:
                current.drop_oldest_gop()
            else:
                current.gops.clear()
                current.nbytes = current.count = 0

    def stats(self) -> dict:
        """What the ring holds now: packets, bytes, segments and the current segment's span."""
        with self._lock:
            current = self._segments[-1] if self._segments else None
            return {
                "packets": sum(s.count for s in self._segments),
                "bytes": sum(s.nbytes for s in self._segments),
                "segments": len(self._segments),
                "oldest": current.oldest if current and current.gops else None,
                "newest": current.newest if current and current.gops else None,
                "error": current.error if current else None,
            }

    def _newest_at(self, start: float, end: float) -> int | None:
        """Where the newest segment holding part of [start, end] is (the lock held)."""
        for position in range(len(self._segments) - 1, -1, -1):
            segment = self._segments[position]
            if segment.gops and segment.oldest <= end and segment.newest >= start:
                return position
        return None

    def _find(self, start: float, end: float) -> tuple[_Segment, list[PacketRecord]] | None:
        """The newest segment holding part of [start, end], and a copy of its packets."""
        with self._lock:
            position = self._newest_at(start, end)
            if position is None:
                return None
            return self._segments[position], self._segments[position].packets()

    def _find_joined(self, start: float, end: float) -> tuple[_Segment, list[PacketRecord]] | None:
        """As ``_find``, with the segments before it that continue it joined on: a looped file's
        passes, or a camera that came back coded alike. A segment joins while it reaches into
        [start, end] and ends before the next one begins; joined packets are stamped from their
        stream times, so an outage between them shows as a held picture."""
        with self._lock:
            position = self._newest_at(start, end)
            if position is None:
                return None
            newest = self._segments[position]
            chain = [newest]
            for segment in reversed(self._segments[:position]):
                joins = segment.gops and start <= segment.newest < chain[0].oldest
                if not (joins and _alike(segment, newest)):
                    break
                chain.insert(0, segment)
            packets = [packet for segment in chain for packet in segment.packets()]
        if len(chain) > 1:
            packets = [_stamped(packet, newest.time_base) for packet in packets]
        return newest, packets

    def write_clip(self, start: float, end: float, path: Path) -> dict | None:
        """Remux the packets from the last keyframe at or before ``start`` to the last packet
        shown at or before ``end`` into an MP4 at ``path``. Returns the clip's facts (``start`` and
        ``end`` in stream seconds, ``complete``: whether the ring still held all of the span) or
        None when the ring holds nothing of it."""
        found = self._find_joined(start, end)
        if found is None:
            return None
        segment, packets = found
        chosen = packet_span(packets, start, end)
        if not chosen:
            return None
        remux_packets(chosen, Path(path), segment.template, segment.time_base)
        size = {"codec": segment.codec, "width": segment.width, "height": segment.height}
        facts = clip_facts(chosen, start, end, Path(path), **size)
        return {**facts, "segment": segment.number}

    def snapshot(self, time: float, path: Path, max_side: int = 640) -> Path | None:
        """Write the frame shown at ``time`` (or the last one before it) as a JPEG whose longer
        side is at most ``max_side``; None when the ring holds nothing shown by ``time``."""
        found = self._find(float("-inf"), time)
        if found is None:
            return None
        segment, packets = found
        chosen = packet_span(packets, time, time)
        frame = _decode_at(segment, chosen, time) if chosen else None
        if frame is None:
            return None
        scale = min(1.0, max_side / max(frame.width, frame.height))
        width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        image = frame.reformat(width, height, format="bgr24", interpolation="AREA").to_ndarray()
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise VideoError(f"cannot encode the snapshot {path} as JPEG")
        _write_atomic(Path(path), jpeg.tobytes())
        return Path(path)


def _decode_at(segment: _Segment, packets: list[PacketRecord], time: float) -> av.VideoFrame | None:
    """Decode ``packets`` (from a keyframe) and return the last frame shown at or before
    ``time``, else the first frame."""
    decoder = av.CodecContext.create(segment.codec, "r")
    decoder.extradata = segment.extradata
    decoder.width, decoder.height = segment.width, segment.height
    decoder.thread_count = 1
    times = packet_timestamps(packets, segment.time_base)
    # frame pts -> stream time, through the packets' own pts
    shown = {pts: p.time for p, (pts, _) in zip(packets, times, strict=True)}
    best: tuple[float, av.VideoFrame] | None = None
    first: av.VideoFrame | None = None
    try:
        for packet, (pts, dts) in [*zip(packets, times, strict=True), (None, (0, 0))]:
            if packet is None:
                frames = decoder.decode(None)
            else:
                copy = av.Packet(packet.data)
                copy.pts, copy.dts, copy.time_base = pts, dts, segment.time_base
                frames = decoder.decode(copy)
            for frame in frames:
                at = shown.get(frame.pts, float("-inf")) if frame.pts is not None else None
                if first is None:
                    first = frame
                if at is not None and at <= time and (best is None or at >= best[0]):
                    best = (at, frame)
    except av.FFmpegError as error:
        raise VideoError(
            f"cannot decode the snapshot at {time:.2f} s ({segment.codec}): {first_line(error)}"
        ) from error
    return best[1] if best else first


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(data)
    os.replace(part, path)
