"""The pretext task of self-supervised pretraining: clips played at another speed, or backwards.

``WarpedSampler`` plays the frames a model's own sampler picks 1, 2 or 4 times faster and
forwards or backwards; ``PretextDataset`` draws one of those six ways per item and labels the
clip with it (``engine.pretrain`` explains why this task).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from resaction.data.dataset import SkippedVideo, VideoClipDataset
from resaction.data.entries import VideoEntry
from resaction.data.sampling import Sampler
from resaction.data.spec import ClipSpec

SPEEDS = (1, 2, 4)
DIRECTIONS = ("forward", "backward")
_PRETEXT_STREAM = 7_919  # keeps the pretext draw apart from the clip and crop draws


def pretext_classes(speeds: Sequence[int] = SPEEDS) -> list[str]:
    """Class names of the pretext task, e.g. ``forward x2``; label order."""
    return [f"{direction} x{speed}" for direction in DIRECTIONS for speed in speeds]


@dataclasses.dataclass(frozen=True)
class WarpedSampler:
    """The frames ``base`` picks, played ``speed`` times faster and maybe backwards.

    A clip is a run of units (one dense clip, or a segment of ``unit_len`` frames each): within
    a unit the frames are spread ``speed`` times further apart, moved back where that runs off
    the end of the video; ``backward`` reverses the whole clip.
    """

    base: Sampler
    unit_len: int
    speed: int
    backward: bool

    @property
    def num_clips(self) -> int:
        return self.base.num_clips

    def __call__(
        self, num_frames: int, fps: float | None, rng: np.random.Generator
    ) -> list[np.ndarray]:
        return [self._warp(clip, num_frames) for clip in self.base(num_frames, fps, rng)]

    def _warp(self, clip: np.ndarray, num_frames: int) -> np.ndarray:
        units = clip.reshape(-1, self.unit_len)
        first = units[:, :1]
        warped = first + (units - first) * self.speed
        overflow = np.maximum(warped[:, -1:] - (num_frames - 1), 0)
        warped = (warped - np.minimum(overflow, first)) % num_frames
        flat = warped.reshape(-1)
        return flat[::-1].copy() if self.backward else flat


class PretextDataset(Dataset):
    """Items ``(clip, pretext label, index)``; the label is drawn from ``(seed, key, index)``.

    One ``VideoClipDataset`` per pretext class shares the videos; an item reads its video
    through the one its label names, so a video can be skipped (and reported) like any other.
    """

    draw_key_in_item = True

    def __init__(self, spec: ClipSpec, entries: list[VideoEntry], seed: int) -> None:
        spec = spec.with_options(direction_blind=False)
        base, transform = spec.sampler(train=True), spec.transform(train=True)
        unit = spec.segment_len if spec.sampling == "segments" else spec.clip_len
        self.views = [
            VideoClipDataset(
                entries,
                WarpedSampler(base, unit, speed, direction == "backward"),
                transform,
                seed=seed,
            )
            for direction in DIRECTIONS
            for speed in SPEEDS
        ]
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.views[0])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def skipped(self) -> Any:
        return self.views[0].skipped

    def record_skipped(self, skipped: Any) -> None:
        for view in self.views:
            view.record_skipped(skipped)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int, int] | SkippedVideo:
        index, draw_key = key if isinstance(key, tuple) else (key, self.epoch)
        rng = np.random.default_rng([self.seed, int(draw_key), int(index), _PRETEXT_STREAM])
        label = int(rng.integers(len(self.views)))
        item = self.views[label][(int(index), int(draw_key))]
        if isinstance(item, SkippedVideo):
            return item
        return item[0], label, item[2]
