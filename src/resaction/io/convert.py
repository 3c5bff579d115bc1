"""Decoded pictures to RGB arrays at the output size, and how small a picture a decoder may make.

Scaling happens in the picture's own pixel format (YUV, at the resolution swscale then converts),
followed by swscale's unscaled YUV-to-RGB path, which is several times cheaper than its scaled one;
the source colour space is carried over, so colours match a one-step conversion.

Decoders of DCT codecs without in-loop filtering (MPEG-4 Part 2, MJPEG, MPEG-1/2, H.263) can
decode at 1/2, 1/4 or 1/8 of the coded size (FFmpeg's ``lowres``): the inverse transform drops
the high frequencies a downscale would remove anyway, and decoding and conversion both get cheaper.
It is used only when the reduced picture still covers the requested size, so frames are never
scaled up from it; the frames are the same frames, their pixels those of a reduced decode. And only
from a quarter of the size down: at half size FFmpeg's reduced inverse transform and motion
compensation (plain C) cost about what they save (16-frame clips, one thread: hockey 8-11% and
UCF101 3% slower than a full decode scaled down, PS7 3% faster); at a quarter, hockey is 1.38x
faster.
"""

from __future__ import annotations

import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter

from resaction.errors import ConfigError

# FFmpeg decoders whose max_lowres is 3.
_REDUCED_DECODE_CODECS = frozenset(
    {"mpeg4", "h263", "mjpeg", "mpeg1video", "mpeg2video", "msmpeg4v1", "msmpeg4v2"}
    | {"msmpeg4", "wmv1", "wmv2", "flv"}
)
MAX_REDUCTION = 3
MIN_REDUCTION = 2


def reduced_decode_level(codec: str, coded_hw: tuple[int, int], scale_hw: tuple[int, int]) -> int:
    """The largest ``lowres`` level (0 = full size) whose pictures still cover ``scale_hw``, if it
    is at least ``MIN_REDUCTION``, else 0."""
    if codec not in _REDUCED_DECODE_CODECS:
        return 0
    level = 0
    while level < MAX_REDUCTION:
        height, width = (-(-side // 2 ** (level + 1)) for side in coded_hw)
        if height < scale_hw[0] or width < scale_hw[1]:
            break
        level += 1
    return level if level >= MIN_REDUCTION else 0


def interpolation_named(name: str) -> Interpolation:
    try:
        return Interpolation[name.upper()]
    except KeyError:
        choices = "BILINEAR, AREA, BICUBIC, FAST_BILINEAR, LANCZOS, POINT"
        raise ConfigError(f"unknown interpolation {name!r}; use one of {choices}") from None


class FrameConverter:
    """Turns decoded pictures into ``(H, W, 3)`` uint8 RGB at ``scale_hw`` (before ``turns``
    quarter turns counter-clockwise for display rotation)."""

    def __init__(
        self, scale_hw: tuple[int, int], turns: int, interpolation: str, threads: int
    ) -> None:
        self._height, self._width = scale_hw
        self._turns = turns
        self._interpolation = interpolation_named(interpolation)
        self._threads = threads
        self._scaler = VideoReformatter()
        self._to_rgb = VideoReformatter()

    def __call__(self, frame: VideoFrame) -> np.ndarray:
        colorspace = frame.colorspace
        if (frame.height, frame.width) != (self._height, self._width):
            frame = self._scaler.reformat(
                frame,
                width=self._width,
                height=self._height,
                interpolation=self._interpolation,
                threads=self._threads,
            )
        rgb = self._to_rgb.reformat(
            frame, format="rgb24", src_colorspace=colorspace, threads=self._threads
        ).to_ndarray()
        return np.rot90(rgb, self._turns) if self._turns else rgb
