"""Whether random access returns exactly the frames a plain decode from the start shows.

The reference is PyAV's own sequential decode, converted to a small size by the reader's own
converter (and without reduced-size decoding), so equal frames are equal to the byte. Like
FFmpeg's own tools it passes over a packet that fails to decode (the incomplete last packet of a
cut FLV or fragmented MP4) and goes on. The reader is then asked for random, unsorted, repeated
frame lists and runs across keyframes, each from a fresh seek, and ``iter_frames`` reads every
frame. Pictures the decoder flags corrupt (lost data it concealed, as at the end of a cut
MPEG-TS recording) are counted but not compared: their pixels depend on what was decoded before
them and with how many threads, so no reader can promise them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from resaction.errors import VideoError
from resaction.io.container import av_reason, open_container
from resaction.io.convert import FrameConverter
from resaction.io.video_reader import VideoReader

CHECK_SIZE = (24, 32)

log = logging.getLogger(__name__)


@dataclass
class ExactnessReport:
    """``exact`` is True when every frame asked for equalled the sequential decode's (``damaged``
    frames, flagged corrupt by the decoder, are not compared)."""

    path: str
    seek_mode: str
    frames: int
    reads: int
    wrong: list[int] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def exact(self) -> bool:
        return not self.wrong and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exact": self.exact}


@dataclass
class SequentialDecode:
    """A plain decode's frames (N, H, W, 3), the numbers of those flagged corrupt, and how many
    packets failed to decode (their pictures are missing from ``frames``)."""

    frames: np.ndarray
    damaged: list[int]
    failed_packets: int = 0


def sequential_decode(
    path: str | Path, size: tuple[int, int] = CHECK_SIZE, rotation: int = 0
) -> SequentialDecode:
    """Every frame PyAV's plain decode puts out, in order, as uint8 RGB at ``size`` (the display
    size, after ``rotation`` counter-clockwise degrees). One decoder thread: with frame threads a
    packet that fails is reported late and the pictures queued behind it are lost. Where the
    stream starts with packets that are not keyframes (a recording started mid-GOP), the frames
    start at the first keyframe's picture: those put out before it refer to pictures before the
    start (an MPEG-4 Part 2 decoder shows them anyway, over grey; others drop them)."""
    height, width = size
    turns = rotation // 90 % 4
    convert = FrameConverter(size[::-1] if turns % 2 else size, turns, "BILINEAR", 0)
    container, stream = open_container(path, threads=1)
    frames: list[np.ndarray] = []
    damaged: list[int] = []
    first_key: tuple[str, int] | None = None
    seen_key = False
    failed = 0
    start = 0  # where the frames start: the first keyframe's picture, if packets came before it

    def keep(pictures: list[av.VideoFrame]) -> None:
        nonlocal start
        for picture in pictures:
            if first_key is not None and picture.opaque == first_key:
                start = len(frames)
            if picture.is_corrupt:
                damaged.append(len(frames))
            frames.append(convert(picture))

    try:
        for number, packet in enumerate(_packets_until_demuxing_fails(container, stream)):
            if packet.is_keyframe and not seen_key:
                seen_key = True
                if number:  # a tuple made here, not a constant: PyAV keys opaque by id()
                    first_key = packet.opaque = ("first keyframe", number)
            try:
                keep(stream.codec_context.decode(packet))
            except av.FFmpegError as error:
                failed += 1
                log.info("%s: a packet failed to decode (%s); going on", path, av_reason(error))
        keep(stream.codec_context.decode(None))
    except av.FFmpegError as error:
        raise VideoError(f"{path}: sequential decoding failed ({av_reason(error)})") from error
    finally:
        container.close()
    if len(frames) <= start:
        return SequentialDecode(np.zeros((0, height, width, 3), np.uint8), [], failed)
    damaged = [i - start for i in damaged if i >= start]
    return SequentialDecode(np.stack(frames[start:]), damaged, failed)


def _packets_until_demuxing_fails(
    container: InputContainer, stream: VideoStream
) -> Iterator[av.Packet]:
    try:
        yield from (packet for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as error:
        log.info("%s: demuxing stopped early (%s)", container.name, av_reason(error))


def read_plan(num_frames: int, rng: np.random.Generator, reads: int = 12) -> list[np.ndarray]:
    """Index lists to ask for, in turn from one reader: single frames, unsorted lists with
    repeats, runs that cross keyframes (long runs, backwards runs) and clips a little after the
    one before (read on from where decoding stopped), plus the last frame."""
    plan: list[np.ndarray] = [np.array([num_frames - 1])]
    for i in range(reads):
        kind = i % 4
        if kind == 3:
            after = int(plan[-1].max()) + int(rng.integers(1, 12))
            plan.append(np.arange(after, after + 8) % num_frames)
            continue
        if kind == 0:
            plan.append(rng.integers(0, num_frames, size=1))
        elif kind == 1:
            picks = rng.integers(0, num_frames, size=6)
            plan.append(np.concatenate([picks, picks[:2]]))
        else:
            length = min(num_frames, 40)
            start = int(rng.integers(0, num_frames - length + 1))
            run = np.arange(start, start + length)
            plan.append(run[::-1] if i % 2 else run)
    return plan


def check_exactness(
    path: str | Path, *, reads: int = 12, seed: int = 0, reference: SequentialDecode | None = None
) -> ExactnessReport:
    """Compare random reads of ``path`` (each from a fresh reader) with its sequential decode."""
    report = ExactnessReport(path=str(path), seek_mode="-", frames=0, reads=0)
    try:
        with VideoReader(path, size=CHECK_SIZE, reduced_decoding=False) as reader:
            report.seek_mode = reader.seek_mode
            count, rotation = reader.num_frames, reader.metadata.rotation
        if reference is None:
            reference = sequential_decode(path, rotation=rotation)
        expected, report.damaged = reference.frames, reference.damaged
        report.frames = len(expected)
        rng = np.random.default_rng(seed)
        wrong: set[int] = set()
        if count != len(expected):
            report.error = (
                f"{path}: the index counts {count} frames, a plain decode {len(expected)}"
                + _failed_packets_hint(reference.failed_packets)
            )
            return report
        for wanted in read_plan(len(expected), rng, reads):
            with VideoReader(path, size=CHECK_SIZE, reduced_decoding=False) as reader:
                got = reader.get_frames(wanted).numpy()
            same = (got == expected[wanted]).reshape(len(wanted), -1).all(axis=1)
            wrong.update(int(i) for i in wanted[~same])
            report.reads += len(wanted)
        with VideoReader(path, size=CHECK_SIZE, reduced_decoding=False) as reader:
            streamed = np.stack([frame for _, _, frame in reader.iter_frames()])
        if streamed.shape != expected.shape:
            report.error = f"{path}: iter_frames gave {len(streamed)} of {len(expected)} frames"
        else:
            same = (streamed == expected).reshape(len(expected), -1).all(axis=1)
            wrong.update(int(i) for i in np.flatnonzero(~same))
        report.wrong = sorted(wrong - set(report.damaged))
    except VideoError as error:
        report.error = str(error)
    return report


def _failed_packets_hint(failed: int) -> str:
    if not failed:
        return ""
    return (
        f" ({failed} packet(s) fail to decode: the file is damaged there; the reader names frames"
        " by their timestamps and raises for a lost one, a plain decode drops it)"
    )
