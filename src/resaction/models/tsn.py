"""TSN (Temporal Segment Networks): a 2D ResNet scores one frame per segment; a consensus pools.

The frame-level baseline: no temporal modelling beyond the consensus. Keys are the 2D ResNet's
(plus ``consensus.weight`` for the weighted consensus), so ImageNet weights load directly. TSM is
a TSN whose blocks shift channels in time, so the two share this head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resaction.models.catalog import register_on_trunks
from resaction.models.layers import ResidualBlock, TemporalConsensus
from resaction.models.resnet2d import DEPTHS, ResNet, convert_state_dict

DEFAULT_SEGMENTS = 8
DEFAULT_SIZE = 160


class TSN(ResNet):
    """ResNet per frame -> dropout -> fc -> consensus over the T frames of a clip.

    ``block_options`` go to every residual block (a subclass's blocks take options: TSM's shift).
    """

    def __init__(
        self,
        depth: int,
        num_classes: int,
        *,
        consensus: str = "avg",
        num_segments: int = DEFAULT_SEGMENTS,
        dropout: float = 0.5,
        modality: str = "rgb",
        segment_len: int = 1,
        **block_options: Any,
    ) -> None:
        block, layers = DEPTHS[depth]
        super().__init__(
            self.residual_block(block),
            layers,
            num_classes,
            modality=modality,
            segment_len=segment_len,
            **block_options,
        )
        self.dropout = nn.Dropout(dropout)
        self.consensus = TemporalConsensus(consensus, num_segments)

    @staticmethod
    def residual_block(block: type[ResidualBlock]) -> type[ResidualBlock]:
        """The block the stages use in place of the depth's plain 2D ResNet block."""
        return block

    def head_modules(self) -> list[nn.Module]:
        return [self.consensus, self.fc]

    def frame_outputs(self, frames: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(frames)))

    def pool_frames(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.consensus(outputs)

    def forward_frames(self, clip: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> per-frame logits (N, T, K)."""
        frames, t = self.clip_frames(clip)
        return self.frame_outputs(frames).unflatten(0, (-1, t))


_TSN = {
    "family": "tsn",
    "clip_len": DEFAULT_SEGMENTS,
    "input_size": DEFAULT_SIZE,
    "sampling": "segments",
    "convert": convert_state_dict,
}
DIFF_SEGMENT_LEN = 3
DIFFERENCE_INPUT = {
    "clip_len": DEFAULT_SEGMENTS * DIFF_SEGMENT_LEN,
    "segment_len": DIFF_SEGMENT_LEN,
    "modality": "rgb_diff",
}
"""Difference models (TSN's and TSM's): 8 segments of 3 frames, each seen as its 2 differences."""
_TSN_DIFF = {**_TSN, **DIFFERENCE_INPUT}


register_on_trunks(
    TSN,
    _TSN,
    (18, 34, 50),
    "TSN on ResNet-{depth}: 8 segments, one frame each, logits averaged (frame-level baseline).",
    name="tsn_resnet{depth}",
)
register_on_trunks(
    TSN,
    _TSN_DIFF,
    (18, 50),
    "TSN RGB difference on ResNet-{depth}: 8 segments of 3 frames, their 2 differences stacked.",
    name="tsn_diff_resnet{depth}",
)
