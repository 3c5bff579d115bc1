"""``VideoClipDataset``: labelled videos in, transformed clips out, bad videos skipped.

No video is opened at construction; each item opens its video, asks the sampler for clips, decodes
only those frames (at the transform's resize when the decoder can do it) and transforms them.
A video that cannot be decoded gives a ``SkippedVideo`` marker instead of an item: the collate
function drops it and carries it to the main process, which reports each file once in
``dataset.skipped``. That works from DataLoader workers too, where the dataset is a copy.
An entry that is a segment of a longer video is sampled inside its segment (``frame_window``);
one too short for the model's clips is skipped and reported the same way, by its time range.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, get_worker_info

from resaction.data.manifests import Manifest, VideoEntry
from resaction.data.spans import SegmentFitError, frame_window, segment_name
from resaction.data.transforms import ClipTransform
from resaction.errors import ResactionError, VideoError
from resaction.io import VideoReader

log = logging.getLogger(__name__)

ClipSampler = Callable[[int, float, np.random.Generator], list[np.ndarray]]
# Draws of an item's clips when one needs frames a damaged stretch of the video lost: the video
# itself opened and reads elsewhere, so other clips are drawn before it is skipped.
CLIP_DRAWS = 4


class _FramesLost(Exception):
    """A clip of an opened video needed frames that cannot be decoded (``error`` says which)."""

    def __init__(self, error: VideoError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class SkippedVideo:
    """A video that could not be decoded: which item, which file, and why."""

    index: int
    path: str
    reason: str


class SkipReport:
    """The videos skipped so far, each once, in the order they failed; logs each on arrival."""

    def __init__(self) -> None:
        self._by_path: dict[str, SkippedVideo] = {}

    def add(self, skipped: SkippedVideo) -> bool:
        """Record ``skipped``; False when its file was already reported."""
        if skipped.path in self._by_path:
            return False
        self._by_path[skipped.path] = skipped
        log.warning("skipping video %s: %s", skipped.path, skipped.reason)
        return True

    @property
    def paths(self) -> list[str]:
        return list(self._by_path)

    def as_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready rows: ``index``, ``path``, ``reason``."""
        return [vars(item).copy() for item in self._by_path.values()]

    def __contains__(self, path: object) -> bool:
        return str(path) in self._by_path

    def __iter__(self) -> Iterator[SkippedVideo]:
        return iter(self._by_path.values())

    def __len__(self) -> int:
        return len(self._by_path)

    def __repr__(self) -> str:
        return f"SkipReport({len(self)} skipped)"


class VideoClipDataset(Dataset):
    """Items ``(clip, label, index)``; a video that fails to decode gives a ``SkippedVideo``.

    ``clip`` is the transform's ``(C, T, H, W)`` for one clip and one view (uint8 frames as
    ``(C, T, H, W)`` without a transform), and the stacked views ``(K*V, C, T, H, W)``,
    clip-major, when the sampler gives K clips or the transform V views, or always with
    ``multi_view=True``. Random draws come from ``(seed, draw key, index)``: the same key gives
    the same clip in any worker. The draw key is the epoch for ``make_loader``'s sampler and a
    random number per position for the trainer's (so a video drawn twice in one epoch gets two
    clips). ``resize_in_decoder`` lets the decoder do the
    transform's first resize: None for antialiased resizes only (see
    ``ClipTransform.decode_hint``), True always (faster), False never (torch does it).
    """

    draw_key_in_item = True  # samplers send (index, draw key) pairs, which __getitem__ accepts

    def __init__(
        self,
        entries: Manifest | Sequence[VideoEntry],
        sampler: ClipSampler,
        transform: ClipTransform | None,
        *,
        seed: int = 0,
        multi_view: bool | None = None,
        resize_in_decoder: bool | None = None,
    ) -> None:
        self.entries = list(entries)
        self.classes = list(entries.classes) if isinstance(entries, Manifest) else None
        self.sampler = sampler
        self.transform = transform
        self.seed = seed
        self.multi_view = multi_view
        self.reader_options = self._reader_options(transform, resize_in_decoder)
        self.epoch = 0
        self._skipped = SkipReport()
        self._failed: dict[int, SkippedVideo] = {}

    @staticmethod
    def _reader_options(
        transform: ClipTransform | None, resize_in_decoder: bool | None
    ) -> dict[str, Any]:
        if transform is None or resize_in_decoder is False:
            return {}
        return transform.decode_hint(force=bool(resize_in_decoder))

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Used for items asked by a plain index (a loader passes the epoch with each index)."""
        self.epoch = epoch

    @property
    def skipped(self) -> SkipReport:
        """Videos that failed to decode, as seen by this (main) process."""
        return self._skipped

    def record_skipped(self, skipped: Iterable[SkippedVideo]) -> None:
        """Take failures reported by loader workers into ``skipped``."""
        for item in skipped:
            self._skipped.add(item)
            self._failed.setdefault(item.index, item)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, int, int] | SkippedVideo:
        index, draw_key = key if isinstance(key, tuple) else (key, self.epoch)
        index = int(index)
        entry = self.entries[index]
        if index in self._failed:
            return self._failed[index]
        for draw in range(CLIP_DRAWS):
            extra = [draw] if draw else []
            rng = np.random.default_rng([self.seed, int(draw_key), index, *extra])
            try:
                views = self._read_views(entry, rng)
                break
            except _FramesLost as lost:
                error: BaseException = lost.error
                log.info("%s: a clip hit frames that cannot be decoded; drawing again", entry.path)
            except Exception as failure:  # a broken file must not stop a run: report it, go on
                return self._fail(index, entry, failure)
        else:
            return self._fail(index, entry, error)
        if not views:
            return self._fail(index, entry, ValueError("the sampler gave no clips"))
        if self.multi_view or (self.multi_view is None and len(views) > 1):
            return torch.stack(views), entry.label, index
        if len(views) > 1:
            raise ValueError(f"{len(views)} views per item but multi_view=False")
        return views[0], entry.label, index

    def _read_views(self, entry: VideoEntry, rng: np.random.Generator) -> list[Tensor]:
        """The views of every sampled clip, decoded one clip at a time to bound memory."""
        threads = 1 if get_worker_info() is not None else None
        views: list[Tensor] = []
        with VideoReader(entry.path, threads=threads, **self.reader_options) as reader:
            first, count = self._window(entry, reader)
            for indices in self.sampler(count, reader.fps, rng):
                try:
                    frames = reader.get_frames(np.asarray(indices) + first if first else indices)
                except VideoError as error:
                    raise _FramesLost(error) from error
                views += self._views(frames, rng)
        return views

    def _window(self, entry: VideoEntry, reader: Any) -> tuple[int, int]:
        """The frames the sampler sees: all of them, or a segment's (see ``frame_window``)."""
        if entry.start is None or entry.end is None:
            return 0, reader.num_frames
        span = getattr(self.sampler, "span", None)  # dense samplers: frames one clip covers
        return frame_window(entry, reader.timestamps, span(reader.fps) if span else None)

    def _views(self, frames: Tensor, rng: np.random.Generator) -> list[Tensor]:
        if self.transform is None:
            return [frames.permute(3, 0, 1, 2)]
        out = self.transform(frames, rng)
        return list(out) if self.transform.num_views > 1 else [out]

    def _fail(self, index: int, entry: VideoEntry, error: BaseException) -> SkippedVideo:
        path = segment_name(entry) if isinstance(error, SegmentFitError) else str(entry.path)
        reason = str(error) if isinstance(error, ResactionError) else repr(error)
        failed = SkippedVideo(index, path, reason.removeprefix(f"{path}: "))
        self._failed[index] = failed
        if get_worker_info() is None:
            self._skipped.add(failed)
        return failed

    def __repr__(self) -> str:
        return (
            f"VideoClipDataset({len(self)} videos, sampler={self.sampler!r}, "
            f"transform={self.transform!r})"
        )
