"""Grad-CAM and Grad-CAM++ for every family, from one forward hook on the last residual stage.

Every resaction network, 2D trunk or 3D, names its last residual stage ``layer4`` (they mirror
torchvision's module names), and what that stage outputs tells the two kinds apart:

- 2D trunks (TSN, TSM, the difference models, LRCN, the image ResNets) run the trunk on the
  clip's frames folded into the batch, so ``layer4`` gives (N*U, C, h, w): one map per trunk
  input. A unit is one frame, or for a difference model one segment of ``segment_len`` frames
  seen as its stacked differences; every frame of a unit gets its unit's map.
- 3D networks (R3D, MC3, R(2+1)D, I3D) give (N, C, t, h, w), with ``t`` the clip length over
  the network's temporal stride (R3D and R(2+1)D stride 8 in time, MC3 and I3D none); the map is
  upsampled trilinearly to the clip's frames.

Grad-CAM weighs each channel of the stage's output by its gradient averaged over the positions
of one map (a trunk input's h x w, or the 3D map's t x h x w) and keeps the positive part of the
weighted sum; Grad-CAM++ (Chattopadhay et al., 2018) weighs the positive gradients by their
second- and third-order terms instead, which spreads the map over several instances of the
evidence rather than the strongest one. The score differentiated is the target's logit for the
one clip. Maps are upsampled to the model's input size and divided by their maximum over the
whole clip, never frame by frame, so a frame that mattered less stays darker.

The hooks are written here rather than taken from the ``grad-cam`` package: that package
requires torchvision (whose wheel is a CUDA build resaction does not install) and imports it
when it is imported, and it scales each map to the size of a 4-D or 5-D input tensor, which
does not fit a 2D trunk whose maps are per frame while its input is a 5-D clip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from resaction.errors import ConfigError, ModelError

CAM_METHODS = ("gradcam", "gradcam++")
TARGET_LAYER = "layer4"
_EPS = 1e-7


@dataclass
class CamResult:
    """A class activation map over a clip: ``saliency`` (T, H, W) in [0, 1] in model input
    space, and ``grid``, the (time, height, width) of the map the layer gave."""

    saliency: torch.Tensor
    grid: tuple[int, int, int]
    layer: str = TARGET_LAYER


def target_layer(model: nn.Module) -> nn.Module:
    """The module whose output Grad-CAM reads: the last residual stage, ``layer4``."""
    layer = getattr(model, TARGET_LAYER, None)
    if not isinstance(layer, nn.Module):
        raise ConfigError(
            f"{type(model).__name__} has no {TARGET_LAYER} stage for Grad-CAM to read; "
            "use --method occlusion"
        )
    return layer


@contextmanager
def _recorded(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """The outputs ``layer`` gives while the block runs (a forward hook, removed after)."""
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: seen.append(output))
    try:
        yield seen
    finally:
        handle.remove()


def class_activation_map(
    model: nn.Module, clip: torch.Tensor, target: int, *, method: str = "gradcam"
) -> CamResult:
    """Grad-CAM (``"gradcam"``) or Grad-CAM++ (``"gradcam++"``) of class ``target`` on one
    normalised clip (C, T, H, W); see the module docstring for the layer and the scaling."""
    if method not in CAM_METHODS:
        raise ConfigError(f"unknown method {method!r}; use one of {', '.join(CAM_METHODS)}")
    activation, gradient = _activation_and_gradient(model, clip, target)
    frames, height, width = clip.shape[1:]
    if activation.dim() == 4:  # a 2D trunk: one map per trunk input
        maps = _weighted(activation, gradient, method, axes=(2, 3))
        saliency = _frames_from_units(maps, frames, (height, width))
        grid = (int(maps.shape[0]), int(maps.shape[1]), int(maps.shape[2]))
    elif activation.dim() == 5:  # a 3D network: one map for the clip
        maps = _weighted(activation, gradient, method, axes=(2, 3, 4))
        size = (frames, height, width)
        saliency = F.interpolate(maps[:, None], size=size, mode="trilinear", align_corners=False)
        saliency = saliency[0, 0]
        grid = (int(maps.shape[1]), int(maps.shape[2]), int(maps.shape[3]))
    else:
        raise ModelError(
            f"{TARGET_LAYER} gave a {activation.dim()}-D output; Grad-CAM reads 4-D (2D trunk) "
            "or 5-D (3D network) feature maps"
        )
    return CamResult(_unit_scaled(saliency.clamp_(min=0.0)), grid)


def _activation_and_gradient(
    model: nn.Module, clip: torch.Tensor, target: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The target layer's output on ``clip`` and the gradient of the target logit on it."""
    layer = target_layer(model)
    device = next(model.parameters()).device
    model.eval()
    batch = clip.unsqueeze(0).to(device=device, dtype=torch.float32).requires_grad_(True)
    # cuDNN's recurrent layers only run backwards in training mode (LRCN on a GPU).
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False), _recorded(layer) as seen:
        logits = model(batch)
        if len(seen) != 1:
            raise ModelError(f"{TARGET_LAYER} ran {len(seen)} times in one forward pass, not once")
        (gradient,) = torch.autograd.grad(logits[0, target], seen[0])
    return seen[0].detach().float().cpu(), gradient.detach().float().cpu()


def _weighted(
    activation: torch.Tensor, gradient: torch.Tensor, method: str, axes: tuple[int, ...]
) -> torch.Tensor:
    """relu(sum over channels of weight x activation), the weights per map (Grad-CAM or ++)."""
    if method == "gradcam":
        weights = gradient.mean(dim=axes, keepdim=True)
    else:
        squared = gradient.pow(2)
        total = activation.sum(dim=axes, keepdim=True)
        alpha = squared / (2 * squared + total * squared * gradient + _EPS)
        alpha = torch.where(gradient != 0, alpha, torch.zeros_like(alpha))
        weights = (gradient.clamp(min=0) * alpha).sum(dim=axes, keepdim=True)
    return (weights * activation).sum(dim=1).clamp_(min=0.0)


def _frames_from_units(maps: torch.Tensor, frames: int, size: tuple[int, int]) -> torch.Tensor:
    """Per-unit maps (U, h, w) -> per-frame maps (T, H, W): each frame of a unit gets its map."""
    units = maps.shape[0]
    if frames % units:
        raise ModelError(f"{units} trunk inputs do not divide a clip of {frames} frames")
    upsampled = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)
    return upsampled[:, 0].repeat_interleave(frames // units, dim=0)


def _unit_scaled(saliency: torch.Tensor) -> torch.Tensor:
    """Divided by its maximum over the whole clip; all zeros stay zeros (no positive evidence)."""
    peak = float(saliency.max()) if saliency.numel() else 0.0
    return saliency / peak if peak > 0 else torch.zeros_like(saliency)
