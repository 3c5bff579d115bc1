"""Output frame sizes and display rotation, shared by every reader backend."""

from __future__ import annotations

from resaction.errors import ConfigError, SourceError


def normalise_rotation(degrees: float | None) -> int:
    """A display rotation as one of 0, 90, 180, 270 (counter-clockwise degrees)."""
    if degrees is None:
        return 0
    return round(float(degrees) / 90.0) % 4 * 90


def output_size(
    height: int,
    width: int,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
) -> tuple[int, int]:
    """The (height, width) frames are returned at, from the display size and the resize options.

    ``size`` is an exact (height, width); ``short_side`` scales the shorter side to that length
    and keeps the aspect ratio. With neither, frames keep their display size.
    """
    if size is not None and short_side is not None:
        raise ConfigError("give either size=(H, W) or short_side, not both")
    if size is not None:
        if len(size) != 2 or min(int(size[0]), int(size[1])) < 1:
            raise ConfigError(f"size must be a pair of positive integers (H, W), got {size!r}")
        return int(size[0]), int(size[1])
    if short_side is not None:
        if int(short_side) < 1:
            raise ConfigError(f"short_side must be a positive integer, got {short_side!r}")
        scale = int(short_side) / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return height, width


MIN_ROI_SIDE = 32
"""Pixels: a smaller region scaled up to the model's input would make every converted frame
huge (a 4-pixel side is scaled 28 times to 112)."""


def check_roi(roi: tuple[int, int, int, int] | None, height: int, width: int, camera: str) -> None:
    """Refuse a region of interest that does not lie inside the camera's picture: it was set for
    another resolution, and clipping it would watch another part of the scene."""
    if roi is None:
        return
    x, y, w, h = roi
    if x + w > width or y + h > height:
        raise SourceError(
            f"camera {camera}: roi [{x}, {y}, {w}, {h}] does not lie inside its {width}x{height} "
            "picture; set the roi in this stream's pixels"
        )
