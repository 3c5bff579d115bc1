"""Colour jitter for a whole clip: one brightness, contrast and saturation change (and, at random,
grey) for every frame, so the clip's colours change but not its motion (CVRL's "temporally
consistent" spatial augmentation). Contrastive pretraining needs it: without it two clips of one
video are told apart from others by their colour histogram alone (Chen et al. 2020, SimCLR)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_LUMA = (0.299, 0.587, 0.114)


class ClipColourJitter:
    """With probability ``p``, brightness, contrast and saturation each scaled by a factor drawn
    from ``[1 - 0.8 s, 1 + 0.8 s]`` (``s`` = ``strength``); then grey with probability ``grey``."""

    views = 1

    def __init__(self, strength: float = 1.0, p: float = 0.8, grey: float = 0.2) -> None:
        if not 0 < strength <= 1.25:
            raise ValueError(f"colour jitter strength must be in (0, 1.25], got {strength}")
        self.strength, self.p, self.grey = strength, p, grey

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        jitter, to_grey = rng.random() < self.p, rng.random() < self.grey
        if not (jitter or to_grey):
            return frames
        spread = 0.8 * self.strength
        brightness, contrast, saturation = rng.uniform(1 - spread, 1 + spread, size=3)
        clip = frames.float()
        channels = clip.shape[-3]
        luma = torch.tensor(_LUMA[:channels], dtype=clip.dtype).view(channels, 1, 1)
        if jitter:
            clip = clip * brightness
            grey_level = (clip * luma).sum(dim=-3, keepdim=True).mean()
            clip = (clip - grey_level) * contrast + grey_level
            grey = (clip * luma).sum(dim=-3, keepdim=True)
            clip = (clip - grey) * saturation + grey
        if to_grey:
            clip = (clip * luma).sum(dim=-3, keepdim=True).expand_as(clip).clone()
        return clip.clamp_(0, 255).round_().to(torch.uint8)

    def __repr__(self) -> str:
        return f"ClipColourJitter(strength={self.strength}, p={self.p}, grey={self.grey})"
