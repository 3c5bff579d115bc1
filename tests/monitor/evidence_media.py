"""Videos for the evidence tests: small synthetic files made with PyAV (each frame's brightness
tells its index) and a feeder that demuxes a file into a PacketRing as a camera reader would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from resaction.monitor.evidence import PacketRing

FPS = 25


def brightness(index: int) -> int:
    return 20 + (index * 7) % 200


def make_video(path: Path, codec: str, fmt: str, frames: int, size: tuple[int, int]) -> Path:
    """``frames`` frames at 25 fps, a keyframe every second, B-frames for H.264; frame i is flat
    grey at ``brightness(i)``."""
    width, height = size
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:bframes=2"}
        else:
            stream.options = {"g": str(FPS)}
        for i in range(frames):
            image = np.full((height, width, 3), brightness(i), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@dataclass
class Fed:
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    times: list[float]  # presentation time of every packet fed, decode order
    keyframes: list[float]


def feed(
    ring: PacketRing,
    path: Path,
    offset: float = 0.0,
    strip_timestamps: bool = False,
    close: bool = True,
) -> Fed:
    """Demux ``path`` into ``ring`` with times shifted by ``offset``; ``strip_timestamps`` clears
    pts and dts as some RTSP/TS sources leave them. Closes the container (a reconnect) unless
    ``close`` is False."""
    container = av.open(str(path))
    stream = container.streams.video[0]
    fed = Fed(container, stream, [], [])
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        time = float(packet.pts * packet.time_base) + offset
        if strip_timestamps:
            packet.pts = packet.dts = None
        ring.add(packet, time, stream)
        fed.times.append(time)
        if packet.is_keyframe:
            fed.keyframes.append(time)
    if close:
        container.close()
    return fed


def decode_times(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Presentation times (from the clip's start) and grey frames of a clip, in display order."""
    times, images = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            times.append(float(frame.pts * frame.time_base))
            images.append(frame.to_ndarray(format="gray"))
    return times, images
