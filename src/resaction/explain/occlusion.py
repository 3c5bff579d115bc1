"""Occlusion: how much the target's probability drops when a space-time patch is hidden.

The model-agnostic check. It needs nothing but scores of clips, so it runs on any backend,
ONNX Runtime included, and it measures rather than reads gradients: a patch whose loss costs the
target probability is one the model used. A patch is ``patch`` x ``patch`` pixels by
``patch_frames`` frames of the model input, hidden by setting it to zero after normalisation,
which is the normalisation mean (a mid grey for the usual means): neither dark nor bright, the
colour the model's inputs are centred on. Patches tile the clip without overlap (the last ones
along an axis may be smaller); masked clips go through the model ``batch_size`` at a time.

The spatial map paints each patch with its drop, keeps the positive part (a patch whose loss
raised the target's probability is not evidence for it) and divides by the largest drop, so it
lies in [0, 1]. The temporal importance of a frame is the drop when the whole slab of
``patch_frames`` frames it belongs to is hidden (every patch of those frames at once), a
probability difference in [-1, 1]: negative where hiding the frames made the target likelier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from resaction.errors import ConfigError
from resaction.progress import progress_bar

Scorer = Callable[[torch.Tensor], np.ndarray]
"""Clips (N, C, T, H, W) -> class probabilities (N, K), e.g. ``Predictor.predict_clips``."""
Patch = tuple[slice, slice, slice]
"""(frames, rows, columns) of one patch of the model input."""

MIN_PATCH = 8
GRID_CELLS = 14


def default_patch(height: int, width: int) -> int:
    """Patch side in pixels: a grid of about ``GRID_CELLS`` patches along the shorter side
    (16 px at 224, 8 px at 112), never under ``MIN_PATCH`` pixels."""
    return max(MIN_PATCH, round(min(height, width) / GRID_CELLS))


@dataclass
class OcclusionResult:
    """``saliency`` (T, H, W) in [0, 1]; ``importance`` (T,), the drop per frame's slab;
    ``grid`` (slabs, rows, columns) of patches; ``base`` the unmasked target probability."""

    saliency: torch.Tensor
    importance: np.ndarray
    grid: tuple[int, int, int]
    base: float
    patch: int
    patch_frames: int


def occlusion_map(
    score: Scorer,
    clip: torch.Tensor,
    target: int,
    *,
    patch: int | None = None,
    patch_frames: int = 2,
    batch_size: int = 16,
    progress: bool = False,
) -> OcclusionResult:
    """The occlusion map of class ``target`` on one normalised clip (C, T, H, W)."""
    frames, height, width = clip.shape[1:]
    patch = default_patch(height, width) if patch is None else min(int(patch), height, width)
    patch_frames = min(patch_frames, frames)  # what is hidden, as the record says
    if patch < 1 or patch_frames < 1 or batch_size < 1:
        raise ConfigError(
            f"occlusion needs a patch, patch frames and batch size of at least 1 (got {patch} px, "
            f"{patch_frames} frames, batch {batch_size})"
        )
    slabs = _cuts(frames, patch_frames)
    rows, columns = _cuts(height, patch), _cuts(width, patch)
    patches = [(t, y, x) for t in slabs for y in rows for x in columns]
    whole = [(t, slice(None), slice(None)) for t in slabs]
    base = float(score(clip.unsqueeze(0))[0, target])
    drops = base - _masked_scores(score, clip, target, [*patches, *whole], batch_size, progress)
    saliency = torch.zeros(frames, height, width)
    for (t, y, x), drop in zip(patches, drops[: len(patches)], strict=True):
        saliency[t, y, x] = max(float(drop), 0.0)
    peak = float(saliency.max())
    importance = np.zeros(frames, dtype=np.float32)
    for t, drop in zip(slabs, drops[len(patches) :], strict=True):
        importance[t] = drop
    return OcclusionResult(
        saliency=saliency / peak if peak > 0 else saliency,
        importance=importance,
        grid=(len(slabs), len(rows), len(columns)),
        base=base,
        patch=patch,
        patch_frames=patch_frames,
    )


def _cuts(length: int, size: int) -> list[slice]:
    """``length`` cut into runs of ``size`` (the last one shorter where it does not divide)."""
    return [slice(start, min(start + size, length)) for start in range(0, length, size)]


def _masked_scores(
    score: Scorer,
    clip: torch.Tensor,
    target: int,
    patches: list[Patch],
    batch_size: int,
    progress: bool,
) -> np.ndarray:
    """The target's probability with each patch hidden, ``batch_size`` clips per call."""
    out: list[np.ndarray] = []
    bar = progress_bar(
        total=len(patches), desc="occlusion", unit="patch", disable=not progress, leave=False
    )
    with bar:
        for chunk in _chunks(patches, batch_size):
            batch = clip.unsqueeze(0).repeat(len(chunk), 1, 1, 1, 1)
            for row, (t, y, x) in enumerate(chunk):
                batch[row, :, t, y, x] = 0.0
            out.append(np.asarray(score(batch))[:, target])
            bar.update(len(chunk))
    return np.concatenate(out).astype(np.float64)


def _chunks(items: list[Patch], size: int) -> Iterator[list[Patch]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
