"""Whether random access returns exactly the frames a plain decode from the start shows.

The reference is PyAV's own sequential decode, converted to a small size by the reader's own
converter (and without reduced-size decoding), so equal frames are equal to the byte. The reader
is then asked for random, unsorted, repeated frame lists and runs across keyframes, each from a
fresh seek, and ``iter_frames`` reads every frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from resaction.errors import VideoError
from resaction.io.container import av_reason, open_container
from resaction.io.convert import FrameConverter
from resaction.io.video_reader import VideoReader

CHECK_SIZE = (24, 32)


@dataclass
class ExactnessReport:
    """``exact`` is True when every frame asked for equalled the sequential decode's."""

    path: str
    seek_mode: str
    frames: int
    reads: int
    wrong: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def exact(self) -> bool:
        return not self.wrong and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exact": self.exact}


def sequential_frames(
    path: str | Path, size: tuple[int, int] = CHECK_SIZE, rotation: int = 0
) -> np.ndarray:
    """Every frame PyAV's plain decode puts out, in order, as (N, H, W, 3) uint8 at ``size``
    (the display size, after ``rotation`` counter-clockwise degrees)."""
    height, width = size
    turns = rotation // 90 % 4
    convert = FrameConverter(size[::-1] if turns % 2 else size, turns, "BILINEAR", 0)
    container, stream = open_container(path)
    frames = []
    try:
        for frame in container.decode(stream):
            frames.append(convert(frame))
    except av.FFmpegError as error:
        raise VideoError(f"{path}: sequential decoding failed ({av_reason(error)})") from error
    finally:
        container.close()
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)


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
    path: str | Path, *, reads: int = 12, seed: int = 0, reference: np.ndarray | None = None
) -> ExactnessReport:
    """Compare random reads of ``path`` (each from a fresh reader) with its sequential decode."""
    report = ExactnessReport(path=str(path), seek_mode="-", frames=0, reads=0)
    try:
        with VideoReader(path, size=CHECK_SIZE, reduced_decoding=False) as reader:
            report.seek_mode = reader.seek_mode
            count, rotation = reader.num_frames, reader.metadata.rotation
        expected = sequential_frames(path, rotation=rotation) if reference is None else reference
        report.frames = len(expected)
        rng = np.random.default_rng(seed)
        wrong: set[int] = set()
        if count != len(expected):
            report.error = (
                f"{path}: the index counts {count} frames, a plain decode {len(expected)}"
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
        report.wrong = sorted(wrong)
    except VideoError as error:
        report.error = str(error)
    return report
