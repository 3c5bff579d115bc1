"""Test videos whose every frame carries its own number, written with PyAV.

A frame is a 4x4 grid of dark/bright cells: the top-left cell is bright and the other three
corners dark (so a wrong rotation or flip is caught), and the 12 remaining cells hold the frame
number in binary. Big cells survive lossy compression and downscaling; a little noise on top
makes every frame cost real bits, like camera footage, so cutting a file loses frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

GRID = 4
_CORNERS = (0, GRID - 1, GRID * (GRID - 1), GRID * GRID - 1)
_BIT_CELLS = [c for c in range(GRID * GRID) if c not in _CORNERS]


def code_image(number: int, height: int, width: int) -> np.ndarray:
    """A (height, width) uint8 image showing ``number`` (0..4095)."""
    cells = np.full(GRID * GRID, 24, dtype=np.int16)
    cells[_CORNERS[0]] = 232
    for bit, cell in enumerate(_BIT_CELLS):
        cells[cell] = 232 if (number >> bit) & 1 else 24
    rows = np.minimum(np.arange(height) * GRID // height, GRID - 1)
    cols = np.minimum(np.arange(width) * GRID // width, GRID - 1)
    image = cells.reshape(GRID, GRID)[rows[:, None], cols[None, :]]
    noise = np.random.default_rng(number).integers(-24, 25, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def read_code(image: np.ndarray) -> int:
    """The number in a decoded frame (H, W) or (H, W, C); -1 if the corner markers are wrong."""
    gray = image.astype(np.float32).mean(axis=-1) if image.ndim == 3 else image.astype(np.float32)
    height, width = gray.shape
    values = np.empty(GRID * GRID, dtype=bool)
    for cell in range(GRID * GRID):
        row, col = divmod(cell, GRID)
        top, bottom = row * height // GRID, (row + 1) * height // GRID
        left, right = col * width // GRID, (col + 1) * width // GRID
        inner_h, inner_w = (bottom - top) // 4, (right - left) // 4
        patch = gray[top + inner_h : bottom - inner_h, left + inner_w : right - inner_w]
        values[cell] = patch.mean() > 127
    if not values[_CORNERS[0]] or values[list(_CORNERS[1:])].any():
        return -1
    return sum(int(values[cell]) << bit for bit, cell in enumerate(_BIT_CELLS))


def write_video(
    path: Path,
    codec: str,
    *,
    num_frames: int = 40,
    width: int = 96,
    height: int = 64,
    pix_fmt: str = "yuv420p",
    rate: int = 25,
    gop: int = 10,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    rotate_tag: bool = False,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    max_b_frames: int | None = None,
) -> Path:
    """Encode ``num_frames`` numbered frames; frame ``i`` shows ``i``.

    ``pts`` (in ``time_base``) gives each frame's presentation time for variable frame rate.
    ``rotation`` (counter-clockwise degrees) is stored as the display matrix (or, with
    ``rotate_tag``, as the legacy clockwise ``rotate`` tag), and the coded pictures are turned the
    other way, so a reader that honours it shows the numbers upright in a ``height`` x ``width``
    display.
    """
    turns = rotation // 90 % 4
    gray = pix_fmt.startswith("gray")
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        coded_h, coded_w = (width, height) if turns % 2 else (height, width)
        stream.width, stream.height, stream.pix_fmt = coded_w, coded_h, pix_fmt
        stream.codec_context.gop_size = gop
        if max_b_frames is not None:
            stream.codec_context.max_b_frames = max_b_frames
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if rotation and rotate_tag:
            stream.metadata["rotate"] = str(-rotation % 360)
        elif rotation:
            stream.set_display_rotation(rotation)
        for i in range(num_frames):
            picture = np.rot90(code_image(i, height, width), -turns)
            if gray:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="gray")
            else:
                rgb = np.ascontiguousarray(np.repeat(picture[:, :, None], 3, axis=2))
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts is not None:
                frame.pts = int(pts[i])
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """A file with one audio stream and no video."""
    rate = 8000
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        samples = np.zeros((1, int(rate * seconds)), dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_in_half(source: Path, target: Path) -> Path:
    """A copy of ``source`` with only its first half of bytes (a truncated download)."""
    return cut_at(source, target, 0.5)


def cut_at(source: Path, target: Path, fraction: float) -> Path:
    """A copy of ``source`` with only the first ``fraction`` of its bytes (a recording stopped
    mid-write, a truncated download)."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def remux(source: Path, target: Path, edit: Callable[[int, av.Packet], av.Packet | None]) -> Path:
    """``source``'s video stream copied into ``target`` without re-encoding, each non-empty
    packet (numbered in decode order) passed through ``edit``, which may change it, replace it
    or drop it (``None``)."""
    with av.open(str(source)) as reader, av.open(str(target), mode="w") as writer:
        stream = reader.streams.video[0]
        out = writer.add_stream_from_template(stream)
        packets = (packet for packet in reader.demux(stream) if packet.size)
        for number, packet in enumerate(packets):
            edited = edit(number, packet)
            if edited is not None:
                edited.stream = out
                writer.mux(edited)
    return target


def trim_without_reencoding(source: Path, target: Path, first_frame: int, gop: int) -> Path:
    """``source`` (25 fps) from ``first_frame`` on, as ``ffmpeg -ss`` with ``-c copy`` or a
    phone's trim writes it: the packets from the keyframe before it, shifted so that it is shown
    at 0, and an MP4 edit list that hides the pictures before it."""
    with av.open(str(source)) as reader:
        step = round(1 / (25 * reader.streams.video[0].time_base))
    keep_from = first_frame // gop * gop * step

    def shift(_: int, packet: av.Packet) -> av.Packet | None:
        if packet.dts is None or packet.pts < keep_from:
            return None
        packet.pts -= first_frame * step
        packet.dts -= first_frame * step
        return packet

    return remux(source, target, shift)


def remux_flagging_keyframes(source: Path, target: Path, every: int = 1) -> Path:
    """``source`` remuxed without re-encoding, every ``every``-th packet flagged a keyframe
    besides the real ones, as some AVI muxers and DVR exports write their index (``every=1``:
    all of them): the flags then say little or nothing about the pictures."""

    def flag(number: int, packet: av.Packet) -> av.Packet:
        if number % every == 0:
            packet.is_keyframe = True
        return packet

    return remux(source, target, flag)


def remux_dropping_frames(source: Path, target: Path, every: int) -> Path:
    """``source`` (AVI) remuxed with a frame's time left empty after every ``every``-th packet,
    as a recorder that drops frames writes it: the AVI muxer fills each gap with an empty chunk,
    which the header's frame count includes and the demuxer passes over."""

    def delay(number: int, packet: av.Packet) -> av.Packet:
        packet.pts += number // every
        packet.dts += number // every
        return packet

    return remux(source, target, delay)


def remux_with_decode_times_as_pts(source: Path, target: Path) -> Path:
    """``source`` (with B-frames, in a container that stores dts) remuxed with each packet's pts
    set to its dts, as a muxer that writes no composition offsets leaves it: the pts rise in
    decode order, not in the order the pictures are shown."""
    first_dts: list[int] = []

    def decode_times(_: int, packet: av.Packet) -> av.Packet:
        first_dts[:] = first_dts or [packet.dts]
        packet.pts = packet.dts = packet.dts - first_dts[0]
        return packet

    return remux(source, target, decode_times)


def remux_from(source: Path, target: Path, skip: int) -> Path:
    """``source``'s video packets from the ``skip``-th on: a recording of a live stream that
    starts in the middle of a group of pictures."""
    return remux(source, target, lambda number, packet: packet if number >= skip else None)


def replace_packet(source: Path, target: Path, number: int, data: bytes) -> Path:
    """``source`` remuxed with packet ``number``'s bytes replaced (a damaged recording)."""

    def damage(position: int, packet: av.Packet) -> av.Packet:
        if position != number:
            return packet
        damaged = av.Packet(data)
        damaged.pts, damaged.dts = packet.pts, packet.dts
        damaged.time_base, damaged.is_keyframe = packet.time_base, packet.is_keyframe
        return damaged

    return remux(source, target, damage)
