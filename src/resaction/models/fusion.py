"""Late fusion: an appearance model and a motion model scoring one clip together.

Two-stream networks (Simonyan and Zisserman, 2014; TSN, Wang et al., 2016) fuse an RGB stream
with a motion stream by a weighted average of their class scores. ``LateFusion`` does that inside
one module, so a fused model is one checkpoint and one ONNX graph that every command runs like any
other model: it takes the widest part's clip (the difference model's segments of several frames),
gives each part the frames it was trained on (a one-frame-per-segment part sees the middle frame
of every segment), and returns ``log(sum_i w_i softmax(part_i))``. Its softmax, which every
scoring path applies, is therefore exactly the weighted sum of the parts' probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from resaction.errors import ModelError
from resaction.models.factory import create_model

FUSION_NAME = "late_fusion"
_FLOOR = 1e-12  # keeps log() finite when every part gives a class zero probability


class LateFusion(nn.Module):
    """Weighted average of the parts' class probabilities, returned as log-probabilities."""

    def __init__(
        self, parts: Sequence[nn.Module], segment_lens: Sequence[int], weights: Sequence[float]
    ) -> None:
        super().__init__()
        if len(parts) < 2 or not len(parts) == len(segment_lens) == len(weights):
            raise ModelError("late fusion needs two or more parts, each with a segment length")
        if any(w < 0 for w in weights) or not sum(weights) > 0:
            raise ModelError(f"fusion weights must be non-negative, not all zero: {weights}")
        self.segment_len = max(int(length) for length in segment_lens)
        for length in segment_lens:
            if int(length) not in (1, self.segment_len):
                raise ModelError(
                    f"parts read segments of {list(segment_lens)} frames: each must read "
                    f"{self.segment_len} or 1"
                )
        self.parts = nn.ModuleList(parts)
        self.part_segment_lens = [int(length) for length in segment_lens]
        total = float(sum(weights))
        self.register_buffer(
            "weights", torch.tensor([w / total for w in weights], dtype=torch.float32)
        )

    def part_input(self, clip: torch.Tensor, index: int) -> torch.Tensor:
        """The frames part ``index`` reads from a fused clip (N, C, T, H, W)."""
        if self.part_segment_lens[index] == self.segment_len:
            return clip
        return clip[:, :, self.segment_len // 2 :: self.segment_len]

    def part_probabilities(self, clip: torch.Tensor) -> list[torch.Tensor]:
        return [
            part(self.part_input(clip, i)).float().softmax(dim=1)
            for i, part in enumerate(self.parts)
        ]

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        probs = self.part_probabilities(clip)
        fused = sum(w * p for w, p in zip(self.weights, probs, strict=True))
        return fused.clamp_min(_FLOOR).log()

    def reset_classifier(self, num_classes: int) -> None:
        for part in self.parts:
            part.reset_classifier(num_classes)


def build_fusion(
    name: str, num_classes: int, parts: Sequence[Mapping[str, Any]], weights: Sequence[float]
) -> LateFusion:
    """The fused model (``name`` is ``FUSION_NAME``) a checkpoint's ``model_kwargs`` describe:
    ``parts`` as ``{"model": name, "model_kwargs": {...}, "segment_len": n}``, their ``weights``."""
    if name != FUSION_NAME:
        raise ModelError(f"{name!r} is not a fused model")
    modules = [
        create_model(part["model"], num_classes=num_classes, **dict(part.get("model_kwargs", {})))
        for part in parts
    ]
    lengths = [int(part.get("segment_len", 1) or 1) for part in parts]
    return LateFusion(modules, lengths, weights)
