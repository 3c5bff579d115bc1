"""The interface every reader backend offers, and the parts of it they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from resaction.closing import ClosedOnExit
from resaction.errors import FrameIndexError
from resaction.io.metadata import VideoMetadata

IndexLike = Sequence[int] | np.ndarray | torch.Tensor


class FrameReader(ClosedOnExit, ABC):
    """Frames of one video by index, with their timestamps.

    Subclasses set ``source`` (what was opened, for messages), ``_metadata`` and ``_out_hw`` (the
    (height, width) of returned frames), and implement the abstract methods.
    """

    source: str
    _metadata: VideoMetadata
    _out_hw: tuple[int, int]

    @property
    def metadata(self) -> VideoMetadata:
        return self._metadata

    @property
    def num_frames(self) -> int:
        return self._metadata.num_frames

    @property
    def fps(self) -> float:
        return self._metadata.fps

    @property
    def duration(self) -> float:
        return self._metadata.duration

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames this reader returns (after rotation and resize)."""
        return self._out_hw

    @property
    @abstractmethod
    def timestamps(self) -> np.ndarray:
        """Seconds from the first frame, one per frame (float64)."""

    @abstractmethod
    def get_frames(self, indices: IndexLike) -> torch.Tensor:
        """Frames ``indices`` (any order, repeats allowed) as uint8 ``(T, H, W, 3)`` RGB."""

    @abstractmethod
    def iter_frames(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield ``(index, seconds, HxWx3 uint8 RGB)`` for frames ``start..stop-1`` in order."""

    @abstractmethod
    def close(self) -> None: ...

    def frame_to_time(self, index: int) -> float:
        self.check_indices(np.asarray([index]))
        return float(self.timestamps[int(index)])

    def time_to_frame(self, seconds: float) -> int:
        """The frame on screen ``seconds`` after the first one (the last shown at or before it)."""
        if not 0.0 <= seconds <= self.duration:
            raise FrameIndexError(
                f"{self.source}: time {seconds:.3f} s is outside the video "
                f"(0 to {self.duration:.3f} s)"
            )
        return int(np.searchsorted(self.timestamps, seconds, side="right")) - 1

    def check_indices(self, indices: IndexLike) -> np.ndarray:
        """``indices`` as a flat int64 array, or ``FrameIndexError`` if one is outside the video."""
        array = as_index_array(indices)
        bad = array[(array < 0) | (array >= self.num_frames)]
        if bad.size:
            raise FrameIndexError(
                f"{self.source}: frame {int(bad[0])} is out of range; the video has "
                f"{self.num_frames} frames (0..{self.num_frames - 1})"
            )
        return array

    def check_start(self, start: int, stop: int | None) -> int:
        """Validate ``iter_frames`` bounds; returns ``stop`` clipped to the video."""
        if not 0 <= start <= self.num_frames:
            raise FrameIndexError(
                f"{self.source}: start frame {start} is out of range; the video has "
                f"{self.num_frames} frames"
            )
        return self.num_frames if stop is None else min(int(stop), self.num_frames)

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        meta = self._metadata
        return (
            f"{type(self).__name__}({self.source!r}, frames={meta.num_frames}, "
            f"fps={meta.fps:.3f}, size={meta.width}x{meta.height}, "
            f"out={self._out_hw[1]}x{self._out_hw[0]})"
        )


def as_index_array(indices: IndexLike) -> np.ndarray:
    """Frame indices as a flat int64 array (TypeError for non-integers)."""
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    array = np.asarray(indices)
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"frame indices must be integers, got dtype {array.dtype}")
    return array.reshape(-1).astype(np.int64, copy=False)
