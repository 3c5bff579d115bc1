"""Other decoders behind the ``FrameReader`` interface, and ``open_video`` to pick one.

* ``OpenCVReader`` (``cv2.VideoCapture``) also opens cameras and network streams; on files it
  seeks with ``CAP_PROP_POS_FRAMES`` and its timestamps are ``index / fps`` (nominal).
* ``TorchCodecReader`` wraps torchcodec's ``VideoDecoder`` when torchcodec is installed (it is
  optional and never required).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from resaction.errors import ConfigError, SourceError, VideoOpenError
from resaction.io.base import FrameReader, IndexLike
from resaction.io.container import check_video_path, ffmpeg_path
from resaction.io.geometry import normalise_rotation, output_size
from resaction.io.metadata import VideoMetadata
from resaction.io.video_reader import VideoReader

BACKENDS = ("pyav", "opencv", "torchcodec")


def _is_live(source: str | Path | int) -> bool:
    return isinstance(source, int) or (isinstance(source, str) and "://" in source)


def _fourcc(code: float) -> str:
    value = int(code)
    return "".join(chr((value >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ").lower()


class NominalTimeReader(FrameReader):
    """A backend whose timestamps are nominal: frame ``i`` at ``i / fps`` seconds (``i`` seconds
    when the video declares no frame rate)."""

    @property
    def timestamps(self) -> np.ndarray:
        fps = self.fps or 1.0
        return np.arange(self.num_frames, dtype=np.float64) / fps


class OpenCVReader(NominalTimeReader):
    """Frames from ``cv2.VideoCapture``: a file, a camera index or a stream URL.

    Live sources (cameras, ``rtsp://`` ...) have no frame count: only ``iter_frames`` works, and
    it yields frames as they arrive with their capture time.
    """

    def __init__(
        self,
        source: str | Path | int,
        *,
        size: tuple[int, int] | None = None,
        short_side: int | None = None,
    ) -> None:
        self.live = _is_live(source)
        target: str | int = source if self.live else ffmpeg_path(check_video_path(source))
        self.source = str(source)
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            if self.live:
                raise SourceError(f"{source}: cannot open camera or stream")
            raise VideoOpenError(f"{source}: OpenCV cannot open it as a video")
        ok, first = self._capture.read()
        if not ok:
            self._capture.release()
            error = SourceError if self.live else VideoOpenError
            raise error(f"{source}: no frame could be read")
        self._pending: np.ndarray | None = first if self.live else None
        self._next = 1
        height, width = first.shape[:2]
        self._out_hw = output_size(height, width, size=size, short_side=short_side)
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = 0 if self.live else int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._metadata = VideoMetadata(
            path=self.source,
            num_frames=max(count, 0),
            fps=fps,
            duration=count / fps if fps > 0 else 0.0,
            width=width,
            height=height,
            codec=_fourcc(self._capture.get(cv2.CAP_PROP_FOURCC)),
            rotation=normalise_rotation(self._capture.get(cv2.CAP_PROP_ORIENTATION_META)),
            pix_fmt="bgr24",
        )

    def _convert(self, bgr: np.ndarray) -> np.ndarray:
        height, width = self._out_hw
        if bgr.shape[:2] != (height, width):
            bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _read_at(self, index: int) -> np.ndarray:
        if index != self._next:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = self._capture.read()
        self._next = index + 1
        if not ok:
            self._next = -1
            raise VideoOpenError(f"{self.source}: OpenCV could not read frame {index}")
        return self._convert(bgr)

    def get_frames(self, indices: IndexLike) -> torch.Tensor:
        if self.live:
            raise SourceError(f"{self.source}: a live source has no random access; iterate it")
        wanted = self.check_indices(indices)
        height, width = self._out_hw
        unique, inverse = np.unique(wanted, return_inverse=True)
        frames = np.empty((len(unique), height, width, 3), dtype=np.uint8)
        for position, index in enumerate(unique):
            frames[position] = self._read_at(int(index))
        return torch.from_numpy(frames[inverse.reshape(-1)])

    def iter_frames(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, float, np.ndarray]]:
        if self.live:
            yield from self._iter_live(stop)
            return
        stop = self.check_start(start, stop)
        for index in range(start, stop):
            try:
                frame = self._read_at(index)
            except VideoOpenError:
                return
            yield index, index / (self.fps or 1.0), frame

    def _iter_live(self, stop: int | None) -> Iterator[tuple[int, float, np.ndarray]]:
        index = 0
        started = None
        while stop is None or index < stop:
            if self._pending is not None:
                bgr, self._pending = self._pending, None
            else:
                ok, bgr = self._capture.read()
                if not ok:
                    return
            now = cv2.getTickCount() / cv2.getTickFrequency()
            started = now if started is None else started
            yield index, now - started, self._convert(bgr)
            index += 1

    def close(self) -> None:
        self._capture.release()


class TorchCodecReader(NominalTimeReader):
    """Frames from torchcodec's ``VideoDecoder`` (exact seek mode)."""

    def __init__(
        self,
        path: str | Path,
        *,
        size: tuple[int, int] | None = None,
        short_side: int | None = None,
        threads: int = 1,
    ) -> None:
        try:
            from torchcodec.decoders import VideoDecoder
        except ImportError as error:
            raise ConfigError(
                "backend 'torchcodec' needs the torchcodec package (pip install torchcodec); "
                "use backend='pyav' otherwise"
            ) from error
        self.source = str(check_video_path(path))
        try:
            self._decoder = VideoDecoder(
                ffmpeg_path(self.source),
                dimension_order="NHWC",
                num_ffmpeg_threads=threads,
                seek_mode="exact",
            )
        except (RuntimeError, ValueError) as error:
            raise VideoOpenError(f"{path}: torchcodec cannot open it ({error})") from error
        meta = self._decoder.metadata
        height, width = int(meta.height), int(meta.width)
        self._out_hw = output_size(height, width, size=size, short_side=short_side)
        fps = float(meta.average_fps or 0.0)
        self._metadata = VideoMetadata(
            path=self.source,
            num_frames=int(meta.num_frames),
            fps=fps,
            duration=float(meta.duration_seconds or 0.0),
            width=width,
            height=height,
            codec=str(meta.codec),
            rotation=normalise_rotation(getattr(meta, "rotation", 0)),
            pix_fmt=str(getattr(meta, "pixel_format", "") or "unknown"),
        )

    def _resize(self, frames: torch.Tensor) -> torch.Tensor:
        height, width = self._out_hw
        if tuple(frames.shape[1:3]) == (height, width):
            return frames
        planar = frames.permute(0, 3, 1, 2).float()
        resized = torch.nn.functional.interpolate(
            planar, size=(height, width), mode="bilinear", antialias=True, align_corners=False
        )
        return resized.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def get_frames(self, indices: IndexLike) -> torch.Tensor:
        wanted = self.check_indices(indices)
        batch = self._decoder.get_frames_at(indices=wanted.tolist())
        return self._resize(batch.data)

    def iter_frames(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, float, np.ndarray]]:
        stop = self.check_start(start, stop)
        for index in range(start, stop):
            frame = self._decoder.get_frame_at(index)
            yield index, float(frame.pts_seconds), self._resize(frame.data[None])[0].numpy()

    def close(self) -> None:
        self._decoder = None


def open_video(path: str | Path | int, backend: str = "pyav", **kwargs: Any) -> FrameReader:
    """A reader for ``path`` with the chosen backend (``pyav``, ``opencv`` or ``torchcodec``).

    Keyword arguments go to the reader (``size``, ``short_side``, ...). Cameras and stream URLs
    need ``backend="opencv"``.
    """
    if backend == "pyav":
        if _is_live(path):
            raise ConfigError(f"{path}: cameras and streams need backend='opencv'")
        return VideoReader(path, **kwargs)
    if backend == "opencv":
        return OpenCVReader(path, **kwargs)
    if backend == "torchcodec":
        return TorchCodecReader(path, **kwargs)
    raise ConfigError(f"unknown video backend {backend!r}; use one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "OpenCVReader", "TorchCodecReader", "open_video"]
