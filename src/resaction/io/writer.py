"""Writing RGB frames to a video file (H.264 MP4 by default) with PyAV.

The file appears at its final path only when the writer closes cleanly: frames go to a hidden
``.partial`` file beside it, which is renamed over the target at the end, so a crashed or killed
run never leaves a truncated video where a reader would pick it up.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from resaction.errors import VideoError
from resaction.io.container import ffmpeg_path

CONTAINER_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".avi": "avi",
    ".webm": "webm",
}
_FASTSTART_FORMATS = {"mp4", "mov"}

Frame = np.ndarray | torch.Tensor


def _chroma_subsampling(pix_fmt: str) -> tuple[int, int]:
    """How many pixels (rows, columns) share one chroma sample in ``pix_fmt``."""
    if pix_fmt.startswith(("yuv420", "yuvj420", "nv12", "nv21")):
        return 2, 2
    if pix_fmt.startswith(("yuv422", "yuvj422")):
        return 1, 2
    return 1, 1


def _as_rgb_array(frame: Frame) -> np.ndarray:
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"VideoWriter.write expects an RGB uint8 frame of shape (H, W, 3), "
            f"got {frame.dtype} {tuple(frame.shape)}"
        )
    return frame


class VideoWriter:
    """Encode RGB uint8 frames into a video file.

    ``size`` is the output (height, width); frames of another size are resized to it, and when it
    is ``None`` the first frame decides. Chroma-subsampled pixel formats such as ``yuv420p`` need
    even dimensions, so an odd height or width is padded by one repeated edge row or column:
    ``frame_size`` is the size actually encoded. ``crf`` (quality, lower is better) and
    ``preset`` go to x264; ``options`` are any further codec options, and ``threads`` the
    encoder's thread count (``None``: the codec's default). Use it as a context manager;
    leaving the block with an exception discards the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int] | None = None,
        codec: str = "libx264",
        crf: int | None = 23,
        pix_fmt: str = "yuv420p",
        *,
        preset: str | None = None,
        threads: int | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.codec = codec
        self.crf = crf
        self.pix_fmt = pix_fmt
        self.preset = preset
        self.threads = threads
        self.options = dict(options or {})
        self.size = (int(size[0]), int(size[1])) if size is not None else None
        if self.size is not None and min(self.size) < 1:
            raise ValueError(f"size must be positive (height, width), got {size}")
        self.frames_written = 0
        self._rate = Fraction(self.fps).limit_denominator(1001)
        self._stream: av.video.stream.VideoStream | None = None
        self._closed = False

        container_format = CONTAINER_FORMATS.get(self.path.suffix.lower())
        if container_format is None:
            known = ", ".join(sorted(CONTAINER_FORMATS))
            raise VideoError(
                f"cannot write video {self.path}: unknown extension {self.path.suffix!r}; "
                f"use one of {known}"
            )
        self._partial = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.partial")
        options = {"movflags": "+faststart"} if container_format in _FASTSTART_FORMATS else {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(
                ffmpeg_path(self._partial), mode="w", format=container_format, options=options
            )
        except (OSError, av.FFmpegError) as error:
            reason = getattr(error, "strerror", None) or error
            if getattr(error, "filename", None) and str(error.filename) not in (
                str(self._partial),
                ffmpeg_path(self._partial),
            ):
                reason = f"{reason} ({error.filename})"
            raise VideoError(f"cannot write video {self.path}: {reason}") from error
        if self.size is not None:
            self._add_stream(self.size)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """The (height, width) encoded in the file, or ``None`` before the first frame."""
        if self._stream is None:
            return None
        return self._stream.height, self._stream.width

    def _add_stream(self, size: tuple[int, int]) -> None:
        rows, cols = _chroma_subsampling(self.pix_fmt)
        height = -(-size[0] // rows) * rows
        width = -(-size[1] // cols) * cols
        try:
            stream = self._container.add_stream(self.codec, rate=self._rate)
        except ValueError as error:
            self.abort()
            raise VideoError(
                f"cannot write video {self.path}: codec {self.codec!r} is not available in "
                "this FFmpeg build; try 'libx264' or 'mpeg4'"
            ) from error
        stream.width, stream.height = width, height
        stream.pix_fmt = self.pix_fmt
        stream.codec_context.time_base = 1 / self._rate
        options = {}
        if self.crf is not None:
            options["crf"] = str(self.crf)
        if self.preset is not None:
            options["preset"] = self.preset
        stream.options = {**options, **self.options}
        if self.threads is not None:
            stream.codec_context.thread_count = self.threads
        self._stream = stream
        if self.size is None:
            self.size = size

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        """Resize to ``size``, then pad to the encoded size with repeated edge pixels."""
        height, width = self.size
        if frame.shape[:2] != (height, width):
            shrinking = frame.shape[0] * frame.shape[1] > height * width
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            frame = cv2.resize(frame, (width, height), interpolation=interpolation)
        pad_rows = self._stream.height - height
        pad_cols = self._stream.width - width
        if pad_rows or pad_cols:
            frame = np.pad(frame, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")
        return np.ascontiguousarray(frame)

    def write(self, frame: Frame) -> None:
        """Append one RGB uint8 frame (H, W, 3), a numpy array or a torch tensor."""
        if self._closed:
            raise ValueError(f"VideoWriter for {self.path} is closed")
        rgb = _as_rgb_array(frame)
        if self._stream is None:
            self._add_stream(rgb.shape[:2])
        video_frame = av.VideoFrame.from_ndarray(self._fit(rgb), format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / self._rate
        self._container.mux(self._stream.encode(video_frame))
        self.frames_written += 1

    def write_many(self, frames: Iterable[Frame] | np.ndarray | torch.Tensor) -> None:
        """Append frames from a (T, H, W, 3) array or tensor, or any iterable of frames."""
        for frame in frames:
            self.write(frame)

    def close(self) -> None:
        """Flush the encoder, finish the file and move it to ``path``."""
        if self._closed:
            return
        if self.frames_written == 0:
            self.abort()
            raise VideoError(f"no frames were written to {self.path}; nothing was saved")
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._closed = True
            os.replace(self._partial, self.path)
        except (OSError, av.FFmpegError) as error:
            self.abort()
            raise VideoError(f"cannot write video {self.path}: {error}") from error

    def abort(self) -> None:
        """Stop without producing a file; whatever was encoded is deleted."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError, av.FFmpegError):
                self._container.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return (
            f"VideoWriter({str(self.path)!r}, fps={self.fps:g}, size={self.size}, "
            f"codec={self.codec!r}, frames_written={self.frames_written})"
        )
