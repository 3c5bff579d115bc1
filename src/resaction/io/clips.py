"""Clips cut from compressed video by remuxing: the packets from the last keyframe at or before a
start to the last picture shown by an end, copied into an MP4 without re-encoding.

One cutter serves two callers: ``cut_clip``/``cut_clips`` cut segments out of a file (the
timeline's exported segments), and the live watcher's packet ring (``monitor.evidence``) cuts
evidence clips out of what a camera sent. Both hold packets as ``PacketRecord`` in decode order,
pick them with ``packet_span`` and write them with ``remux_packets``. A clip starts at a keyframe,
so it decodes on its own; its first packet's bytes are the source's.

Times given to the file cutter are seconds from the video's first frame, the clock of
``VideoReader.timestamps`` and so of the timeline.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from resaction.errors import ConfigError, VideoError, first_line
from resaction.io.container import ffmpeg_path, open_container
from resaction.io.decoding import packets_from_key
from resaction.io.index import VideoIndex
from resaction.io.index_build import cached_index


@dataclass(frozen=True)
class PacketRecord:
    """One compressed video packet copied out of its container, which may be closed (a camera
    reconnecting) before the clip is written."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    time: float  # presentation time in seconds, on the caller's clock

    @classmethod
    def of(cls, packet: av.Packet, time: float) -> PacketRecord:
        """A copy of ``packet``, shown at ``time``."""
        return cls(
            bytes(packet),
            packet.pts,
            packet.dts,
            int(packet.duration or 0),
            bool(packet.is_keyframe),
            float(time),
        )


def packet_span(packets: Sequence[PacketRecord], start: float, end: float) -> list[PacketRecord]:
    """Packets in decode order from the last keyframe shown at or before ``start`` (else the
    first packet, a keyframe) to the last packet shown at or before ``end``.

    With B-frames a picture shown after ``end`` can be decoded before one shown by it (it is that
    one's reference), so it comes along; the span then also takes every picture shown before it,
    so the clip shows no gap."""
    first = 0
    for i, packet in enumerate(packets):
        if packet.keyframe and packet.time <= start:
            first = i
    shown, last = end, first - 1
    while True:
        further = max(
            (i for i in range(last + 1, len(packets)) if packets[i].time <= shown), default=last
        )
        if further == last:
            return list(packets[first : last + 1])
        last = further
        shown = max(shown, *(p.time for p in packets[first : last + 1]))


def frame_gap(packets: Sequence[PacketRecord]) -> float:
    """The longest time between two pictures shown one after the other (a frame, or a drop)."""
    times = sorted(p.time for p in packets)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def packet_timestamps(
    packets: Sequence[PacketRecord], time_base: Fraction
) -> list[tuple[int, int]]:
    """(pts, dts) per packet, shifted so the first packet (a keyframe) is shown at 0, with dts
    strictly increasing and pts >= dts as MP4 requires. With B-frames the first dts are then
    negative and the MP4 muxer writes an edit list, so the clip's pictures keep the times they
    had in the source (shifting by the first dts showed every picture a frame or two late).
    Missing pts come from the packets' times, missing dts from the pts (so B-frames keep their
    display order)."""
    if all(p.pts is not None for p in packets):
        pts = [int(p.pts) for p in packets]
    else:
        pts = [round(p.time / time_base) for p in packets]
    if all(p.dts is not None for p in packets):
        dts = [int(p.dts) for p in packets]
    else:  # the sorted pts, delayed by the stream's reordering depth, are a valid dts
        order = sorted(pts)
        delay = max(0, *(o - p for o, p in zip(order, pts, strict=True)))
        dts = [o - delay for o in order]
    out: list[tuple[int, int]] = []
    previous: int | None = None
    offset = pts[0]
    for p, d in zip(pts, dts, strict=True):
        if previous is not None and d <= previous:
            d = previous + 1
        previous = d
        out.append((max(p, d) - offset, d - offset))
    return out


def remux_packets(
    packets: Sequence[PacketRecord], path: Path, template: VideoStream, time_base: Fraction
) -> None:
    """Write ``packets`` (decode order, from a keyframe) as the one video stream of an MP4 at
    ``path``, with the codec parameters of the stream ``template`` and timestamps in
    ``time_base``. Written to a hidden ``.part`` file and renamed, so a reader never sees half."""
    path = Path(path)
    part = path.with_name(f".{path.name}.part")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(
            ffmpeg_path(part), "w", format="mp4", options={"movflags": "+faststart"}
        ) as out:
            stream = out.add_stream_from_template(template)
            times = packet_timestamps(packets, time_base)
            for packet, (pts, dts) in zip(packets, times, strict=True):
                copy = av.Packet(packet.data)
                copy.pts, copy.dts, copy.time_base = pts, dts, time_base
                copy.duration = packet.duration
                copy.is_keyframe = packet.keyframe
                copy.stream = stream
                out.mux(copy)
    except (av.FFmpegError, ValueError, OSError) as error:
        part.unlink(missing_ok=True)
        codec = template.codec_context.name
        raise VideoError(f"cannot write the clip {path} ({codec}): {first_line(error)}") from error
    os.replace(part, path)


def clip_facts(
    packets: Sequence[PacketRecord],
    start: float,
    end: float,
    path: Path,
    *,
    codec: str,
    width: int,
    height: int,
) -> dict:
    """What a clip of ``packets`` holds: the times it covers (``start``, ``end``: its first and
    last picture) and whether that is all of the wanted [start, end] (``complete``)."""
    first, last = packets[0].time, max(p.time for p in packets)
    return {
        "path": str(path),
        "start": first,
        "end": last,
        "complete": first <= start and last >= end - frame_gap(packets),
        "packets": len(packets),
        "keyframes": sum(p.keyframe for p in packets),
        "bytes": sum(len(p.data) for p in packets),
        "codec": codec,
        "width": width,
        "height": height,
    }


def cut_clip(video: str | Path, start: float, end: float, out: str | Path) -> dict:
    """Cut [``start``, ``end``] (seconds from the first frame) of ``video`` into an MP4 at ``out``
    by remuxing: from the last keyframe at or before ``start`` to the last picture shown by
    ``end``, not re-encoded. Only the video stream is kept; audio and subtitles are dropped.

    Returns the clip's facts (see ``clip_facts``): ``start`` is the keyframe's time, so it may be
    well before the wanted start when keyframes are far apart. Raises a one-line ``VideoError``
    for a missing or undecodable file, a file without video, or a span that is empty or starts
    after the last frame."""
    _check_span(video, start, end)
    container, stream, index = _open(video)
    with container:
        return _cut(container, stream, index, (start, end), (start, end), Path(out))


def cut_clips(
    video: str | Path,
    spans: Sequence[tuple[str, float, float]],
    out_dir: str | Path,
    *,
    pad: float = 0.0,
) -> list[dict]:
    """One MP4 per (label, start, end) of ``spans`` in ``out_dir``, cut as ``cut_clip`` does,
    each widened by ``pad`` seconds on both sides. Named ``clip_name(i, label, start, end)``
    (``i`` counts from 0 in the order given, unpadded times); each facts dict also holds
    ``label``, and ``complete`` says whether the clip covers the unpadded span.

    The file is opened and indexed once; each clip seeks to its keyframe and demuxes forward only
    as far as it needs, so overlapping or unordered spans cost no more than separate cuts."""
    if pad < 0:
        raise ConfigError(f"clip padding must be at least 0 seconds, got {pad}")
    for _, start, end in spans:
        _check_span(video, start, end)
    out_dir = Path(out_dir)
    results: list[dict] = []
    container, stream, index = _open(video)
    with container:
        for i, (label, start, end) in enumerate(spans):
            path = out_dir / clip_name(i, label, start, end)
            facts = _cut(container, stream, index, (start - pad, end + pad), (start, end), path)
            results.append({"label": label, **facts})
    return results


def clip_name(index: int, label: str, start: float, end: float) -> str:
    """``{index:03d}_{label}_{start:.1f}-{end:.1f}.mp4``, the label cut down to characters safe
    in a file name on any system."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", str(label)).strip("._") or "segment"
    return f"{index:03d}_{safe}_{start:.1f}-{end:.1f}.mp4"


def _check_span(video: str | Path, start: float, end: float) -> None:
    if not (np.isfinite(start) and np.isfinite(end)):
        raise VideoError(f"{video}: clip times must be finite seconds, got {start} to {end}")
    if end <= start:
        raise VideoError(f"{video}: clip end {end:.2f} s is not after its start {start:.2f} s")


def _open(video: str | Path) -> tuple[InputContainer, VideoStream, VideoIndex]:
    """The container, its video stream and its index (cached: the timeline already built it)."""
    container, stream = open_container(video)
    try:
        index = cached_index(container, stream, Path(video))
    except BaseException:
        container.close()
        raise
    return container, stream, index


def _cut(
    container: InputContainer,
    stream: VideoStream,
    index: VideoIndex,
    span: tuple[float, float],
    wanted: tuple[float, float],
    out: Path,
) -> dict:
    """Cut ``span`` into ``out``; ``complete`` is judged against ``wanted``."""
    start, end = span
    last_shown = float(index.timestamps[-1])
    if wanted[0] > last_shown:
        raise VideoError(
            f"{index.path}: clip start {wanted[0]:.2f} s is after the video's last frame "
            f"({last_shown:.2f} s)"
        )
    frame = max(int(np.searchsorted(index.timestamps, start, side="right")) - 1, 0)
    collected = _collect(container, stream, index, index.seek_point(frame), span)
    chosen = packet_span(collected, start, end)
    if not chosen:
        raise VideoError(f"{index.path}: no frame shown between {start:.2f} and {end:.2f} s")
    remux_packets(chosen, out, stream, index.time_base)
    context = stream.codec_context
    return clip_facts(
        chosen, *wanted, out, codec=index.codec, width=context.width, height=context.height
    )


def _collect(
    container: InputContainer,
    stream: VideoStream,
    index: VideoIndex,
    key: int,
    span: tuple[float, float],
) -> list[PacketRecord]:
    """Packets in decode order from keyframe ``key`` until no later one can join the span.

    A picture is never shown before it is decoded, so once a packet's dts is past the latest
    picture the span shows, nothing after it is needed. Where dts are unknown or untrusted
    (pictures matched by packet), reading stops past the first keyframe after the span and its
    leading pictures (an open GOP shows some before its keyframe)."""
    start, end = span
    origin, seconds = int(index.frame_ts[0]), float(index.time_base)
    collected: list[PacketRecord] = []
    after: float | None = None  # the time of the first keyframe shown after the span
    packets = packets_from_key(container, stream, index, key)
    try:
        for packet in packets:
            if packet is None:
                break
            record = _record(packet, index, origin)
            if record is None:
                continue
            if after is not None and record.time > after:
                break
            collected.append(record)
            if record.dts is None:
                if after is None and record.keyframe and record.time > end:
                    after = record.time
            elif (decoded := (record.dts - origin) * seconds) > end:
                shown = max(p.time for p in packet_span(collected, start, end) or collected)
                if decoded > shown:
                    break
    finally:
        packets.close()
    return collected


def _record(packet: av.Packet, index: VideoIndex, origin: int) -> PacketRecord | None:
    """``packet`` with its time from the first frame (computed as ``index.timestamps`` are, so
    the timeline's times compare exactly); None for a packet that shows no picture.

    Where the container's pts cannot be trusted (H.264 with B-frames in AVI) the index knows
    which picture each packet shows: its pts is that picture's, and dts is left to be derived."""
    if index.by_pts:
        if packet.pts is None:
            return None
        pts, dts = int(packet.pts), packet.dts
    else:
        slot = int(index.pos_slot[packet.opaque[0]])
        if slot < 0:
            return None
        pts, dts = int(index.frame_ts[slot]), None
    time = (pts - origin) * float(index.time_base)
    return PacketRecord(
        bytes(packet), pts, dts, int(packet.duration or 0), bool(packet.is_keyframe), time
    )
