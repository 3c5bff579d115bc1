"""Motion input for the 2D-trunk models: TSN's RGB difference (Wang et al., 2016).

A clip is read as ``S`` segments of ``segment_len`` consecutive frames (the ``segments`` sampler
with ``segment_len`` gives exactly that; a dense window of ``S * segment_len`` frames does too).
Each segment becomes one input frame for the ResNet: the differences of its neighbouring frames
stacked as channels (``"rgb_diff"``), or its first frame followed by those differences
(``"rgb+diff"``). The differences carry where things move and little of what the scene looks
like, which is what a network trained from scratch on a few hundred videos needs: on the real
datasets (``docs/real-data.md``) it is what lifts the 2D models above a motion-history baseline.

The difference is computed inside the model, so preprocessing, ONNX export and every inference
path stay the same as for RGB models: they feed ``S * segment_len`` normalised frames.
"""

from __future__ import annotations

import torch
from torch import nn

from resaction.errors import ModelError

MODALITIES = ("rgb", "rgb_diff", "rgb+diff")


def input_channels(modality: str, segment_len: int, channels: int = 3) -> int:
    """Channels of one frame the trunk's first convolution sees."""
    check_modality(modality, segment_len)
    if modality == "rgb":
        return channels
    diffs = channels * (segment_len - 1)
    return diffs + channels if modality == "rgb+diff" else diffs


def check_modality(modality: str, segment_len: int) -> None:
    if modality not in MODALITIES:
        raise ModelError(f"modality {modality!r} is not one of {', '.join(MODALITIES)}")
    if modality == "rgb" and segment_len != 1:
        raise ModelError(
            f"modality 'rgb' takes one frame per segment, got segment_len={segment_len}"
        )
    if modality != "rgb" and segment_len < 2:
        raise ModelError(
            f"modality {modality!r} needs at least 2 frames per segment (segment_len), "
            f"got {segment_len}"
        )


class FrameDifference(nn.Module):
    """(N, C, S * L, H, W) -> (N, C', S, H, W): each segment of L frames as one stacked frame."""

    def __init__(self, segment_len: int, keep_rgb: bool = False) -> None:
        super().__init__()
        check_modality("rgb+diff" if keep_rgb else "rgb_diff", segment_len)
        self.segment_len = segment_len
        self.keep_rgb = keep_rgb

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dim() != 5:
            raise ModelError(
                f"expected a clip batch (N, C, T, H, W), got shape {tuple(clip.shape)}"
            )
        frames = clip.shape[2]
        if frames % self.segment_len:
            raise ModelError(
                f"a clip of {frames} frames is not a whole number of segments of "
                f"{self.segment_len} frames (clip_len must be a multiple of segment_len)"
            )
        _, channels, _, height, width = clip.shape
        count = frames // self.segment_len
        # -1 for the batch keeps it a dynamic axis when the model is exported to ONNX.
        segments = clip.reshape(-1, channels, count, self.segment_len, height, width)
        parts = [segments[:, :, :, 1:] - segments[:, :, :, :-1]]
        if self.keep_rgb:
            parts.insert(0, segments[:, :, :, :1])
        stacked = torch.cat(parts, dim=3) if len(parts) > 1 else parts[0]
        depth = stacked.shape[3]
        return stacked.permute(0, 3, 1, 2, 4, 5).reshape(-1, depth * channels, count, height, width)

    def extra_repr(self) -> str:
        return f"segment_len={self.segment_len}, keep_rgb={self.keep_rgb}"


def frame_input(modality: str = "rgb", segment_len: int = 1) -> nn.Module:
    """The module that turns a clip into the trunk's frames: identity for RGB."""
    check_modality(modality, segment_len)
    if modality == "rgb":
        return nn.Identity()
    return FrameDifference(segment_len, keep_rgb=modality == "rgb+diff")


def adapt_first_conv(weight: torch.Tensor, modality: str, segment_len: int) -> torch.Tensor:
    """An RGB first-layer kernel (O, 3, k, k) for a difference input: TSN's cross-modality start.

    Each difference channel gets the kernel averaged over the RGB channels, so a pretrained
    trunk responds to edges that move; with ``"rgb+diff"`` the first three channels keep the RGB
    kernel as it is.
    """
    rgb = weight.shape[1]
    wanted = input_channels(modality, segment_len, rgb)
    if modality == "rgb" or weight.dim() != 4:
        return weight
    mean = weight.mean(dim=1, keepdim=True)
    diffs = mean.expand(-1, wanted - (rgb if modality == "rgb+diff" else 0), -1, -1)
    parts = [weight, diffs] if modality == "rgb+diff" else [diffs]
    return torch.cat(parts, dim=1).contiguous()
