"""The clip an explanation is about: the model's own test view of a stretch of video.

An explanation is only worth reading if it explains what the model scores, so the clip is read
exactly as ``Predictor`` reads one view: the model's sampler (one clip, ``num_clips=1``) over
the chosen stretch, decoded with the transform's decoder-side resize and put through the
single-view evaluation transform. Besides the model input, the clip keeps where its frames came
from (indices, times) and where the model's crop lies in the source picture, so a map made in
model input space can be drawn over the source frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resaction.data.spec import ClipSpec, ViewProtocol
from resaction.data.transforms import CenterCrop, ClipOp, Resize
from resaction.errors import ConfigError
from resaction.io import VideoReader

Box = tuple[float, float, float, float]
"""(top, left, bottom, right) in fractions of the source picture's height and width."""

ONE_VIEW = ViewProtocol(num_clips=1, num_crops=1)


@dataclass
class ExplainClip:
    """One model input and where it came from.

    ``inputs`` is (C, T, H, W), normalised as the model sees it; ``indices`` and ``times`` give
    the source frame and its time for each of the T frames; ``box`` is the model's crop in the
    source picture (it may reach past the picture's edges where the transform padded).
    """

    video: str
    inputs: torch.Tensor
    indices: np.ndarray
    times: np.ndarray
    box: Box
    fps: float
    start: float
    end: float

    @property
    def num_frames(self) -> int:
        return int(self.inputs.shape[1])


ROUNDED_S = 1e-3
"""How far past the video's end a given end may lie: segment ends are written to 4 decimals."""


def time_range(
    duration: float,
    start: float | None,
    end: float | None,
    *,
    window_s: float | None = None,
    name: str = "the video",
) -> tuple[float, float]:
    """The stretch of video to explain, in seconds.

    The default is the whole video, or, when the model records the seconds its training clips
    covered (``window_s``) and the video is longer, that window centred in the video: a model
    that spreads its frames over a clip would otherwise see a long video far more sparsely than
    it was trained to. A range outside the video or reversed is refused with one line.
    """
    if start is None and end is None and window_s and duration > window_s:
        middle = duration / 2
        return middle - window_s / 2, middle + window_s / 2
    first = 0.0 if start is None else float(start)
    last = duration if end is None else float(end)
    if first >= last:
        raise ConfigError(
            f"--start {first:g} s is not before --end {last:g} s; give a --start smaller than --end"
        )
    if first < 0 or last > duration + ROUNDED_S:
        raise ConfigError(
            f"--start {first:g} s / --end {last:g} s is outside {name} (0 to {duration:.3f} s); "
            "give a range inside the video"
        )
    return first, min(last, duration)


def read_clip(
    spec: ClipSpec, video: str | Path, start: float | None = None, end: float | None = None
) -> ExplainClip:
    """The model's test view of ``video`` between ``start`` and ``end`` seconds (see
    ``time_range`` for the defaults): one clip of the model's sampler over that stretch."""
    sampler, transform = spec.sampler(False, ONE_VIEW), spec.transform(False, ONE_VIEW)
    rng = np.random.default_rng(0)
    with VideoReader(video, **transform.decode_hint()) as reader:
        first, last = time_range(
            reader.duration, start, end, window_s=spec.window_s, name=Path(video).name
        )
        stamps = reader.timestamps
        lo = int(np.searchsorted(stamps, first - 1e-9, side="left"))
        hi = int(np.searchsorted(stamps, last - 1e-9, side="left")) - 1
        if hi < lo:
            raise ConfigError(
                f"{first:g}-{last:g} s of {Path(video).name} holds no frame; give a wider range"
            )
        indices = sampler(hi - lo + 1, reader.fps, rng)[0] + lo
        frames = reader.get_frames(indices.tolist())
        fps = reader.fps
    inputs = transform(frames, rng)
    if inputs.dim() == 5:  # a direction-blind model's views: forwards, then backwards
        inputs = inputs[0]
    height, width = frames.shape[1:3]
    return ExplainClip(
        video=str(video),
        inputs=inputs,
        indices=np.asarray(indices, dtype=np.int64),
        times=np.asarray(stamps[indices], dtype=np.float64),
        box=crop_box(transform.ops, height, width),
        fps=float(fps),
        start=first,
        end=last,
    )


def crop_box(ops: Sequence[ClipOp], height: int, width: int) -> Box:
    """Where the evaluation transform's output lies in a picture of ``height`` x ``width``.

    The evaluation transform is a resize and a centre crop (padding first where the picture is
    smaller than the crop); ops that do not move pixels (time reversal) are passed over.
    """
    top, left, bottom, right = 0.0, 0.0, 1.0, 1.0
    size = (height, width)
    for op in ops:
        if isinstance(op, Resize):
            size = op.output_size(*size)
        elif isinstance(op, CenterCrop):
            (top, bottom), (height_px, _) = _centre(top, bottom, size[0], op.size[0])
            (left, right), (width_px, _) = _centre(left, right, size[1], op.size[1])
            size = (height_px, width_px)
    return top, left, bottom, right


def _centre(
    low: float, high: float, length: int, crop: int
) -> tuple[tuple[float, float], tuple[int, int]]:
    """One axis of ``CenterCrop``: pad evenly to ``crop``, then cut ``crop`` from the middle."""
    step = (high - low) / length
    padded = max(length, crop)
    low -= (padded - length) // 2 * step
    low += round((padded - crop) / 2.0) * step
    return (low, low + crop * step), (crop, padded)
