"""A video's windows scored as its frames arrive: the frames a window needs are kept in a ring
until it has run, windows go to the model in batches (or through the incremental cache), and a
window whose frames could not all be decoded (a damaged stretch of the recording, which
``iter_frames`` passes over) is left out rather than ending the run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from resaction.data.sampling import SlidingWindowSampler, Window
from resaction.inference.incremental import TorchFrames, WindowCache, supports_incremental
from resaction.io import VideoReader
from resaction.progress import progress_bar

if TYPE_CHECKING:
    from resaction.inference.predictor import Predictor

log = logging.getLogger(__name__)


class FrameRing:
    """Frames by index, kept only while a window still to be run needs them.

    Frames arrive as decoded (uint8 HxWx3) and are transformed together when a window asks
    for them: one transform call per window's worth of new frames rather than one per frame,
    which matters on a busy CPU where every small torch call pays for waking its threads. The
    evaluation transform treats frames independently, so the result is the same.
    """

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self._transform = transform
        self._frames: dict[int, torch.Tensor] = {}
        self._raw: list[tuple[int, np.ndarray]] = []
        self.peak = 0

    def add(self, index: int, image: np.ndarray) -> None:
        self._raw.append((index, image))
        self.peak = max(self.peak, len(self))

    def clip(self, indices: np.ndarray) -> torch.Tensor:
        """The window's frames joined along time into (C, T, H, W)."""
        if self._raw:
            raw = torch.from_numpy(np.stack([image for _, image in self._raw]))
            done = self._transform(raw)
            for position, (index, _) in enumerate(self._raw):
                self._frames[index] = done[:, position : position + 1]
            self._raw.clear()
        return torch.cat([self._frames[int(i)] for i in indices], dim=1)

    def holds(self, indices: np.ndarray) -> bool:
        """Whether every frame of a window arrived (none was lost to damage)."""
        present = set(self._frames) | {index for index, _ in self._raw}
        return all(int(i) in present for i in indices)

    def release_before(self, index: int) -> None:
        for old in [i for i in self._frames if i < index]:
            del self._frames[old]

    def __len__(self) -> int:
        return len(self._frames) + len(self._raw)


@dataclass
class ScoredWindows:
    """The windows that ran (in order), their logits, how many were left out for lack of
    frames (after a damaged stretch, or at an end that did not decode), and the most frames the
    ring held at once."""

    windows: list[Window]
    logits: np.ndarray
    skipped: int
    peak: int


def window_cache(predictor: Predictor, sampler: SlidingWindowSampler) -> WindowCache | None:
    """Per-unit output caching for a PyTorch model that pools stateless per-frame outputs
    (TSN, the difference models, LRCN): overlapping windows then share their units' work, which
    happens when the stride moves windows by whole units."""
    module = getattr(predictor.backend, "model", None)
    if not supports_incremental(module):
        return None
    runner = TorchFrames(module)
    unit = sampler.unit_step or predictor.spec.segment_len * predictor.spec.frame_interval
    if runner.stateful or sampler.stride % unit:
        return None
    return WindowCache(runner, predictor.spec.segment_len)


def _window_logits(
    predictor: Predictor,
    cache: WindowCache | None,
    batch: list[tuple[np.ndarray, torch.Tensor]],
) -> np.ndarray:
    if cache is None:
        return predictor.logits(torch.stack([clip for _, clip in batch]))
    return cache.logits(batch)


def score_windows(
    reader: VideoReader,
    predictor: Predictor,
    windows: list[Window],
    cache: WindowCache | None,
    transform: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    progress: bool = False,
    on_window: Callable[[int, int], None] | None = None,
) -> ScoredWindows:
    """Decode ``reader`` once, in order, and score each of ``windows`` when its last frame has
    arrived; ``transform`` is the predictor's clip transform, applied to frames as they come."""
    needed = np.zeros(reader.num_frames, dtype=bool)
    for window in windows:
        needed[window.indices] = True
    ring = FrameRing(transform)
    batch: list[tuple[np.ndarray, torch.Tensor]] = []
    ran: list[Window] = []
    logits: list[np.ndarray] = []
    done = 0
    bar = progress_bar(total=len(windows), desc="timeline", unit="window", disable=not progress)
    try:
        for index, _, image in reader.iter_frames():
            if needed[index]:
                ring.add(index, image)
            while done < len(windows) and int(windows[done].indices.max()) <= index:
                window = windows[done]
                done += 1
                if ring.holds(window.indices):
                    ran.append(window)
                    batch.append((window.indices, ring.clip(window.indices)))
                if len(batch) == batch_size:
                    logits.append(_window_logits(predictor, cache, batch))
                    batch.clear()
                if done < len(windows):
                    first = int(windows[done].indices.min())
                    ring.release_before(first)
                    if cache is not None and not batch:
                        cache.release_before(first)
                bar.update(1)
                if on_window is not None:
                    on_window(done, len(windows))
        if batch:
            logits.append(_window_logits(predictor, cache, batch))
    finally:
        bar.close()
    if done > len(ran):
        log.warning("%s: %d window(s) left out: frames missing", reader.path, done - len(ran))
    if done < len(windows):
        log.warning("%s: decoding stopped early; %d of %d windows", reader.path, done, len(windows))
    stacked = np.concatenate(logits) if logits else np.zeros((0, len(predictor.classes)))
    return ScoredWindows(ran, stacked, len(windows) - len(ran), ring.peak)
