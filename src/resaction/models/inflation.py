"""Inflation: turn a 2D network's state dict into one for a 3D network (Carreira & Zisserman, 2017).

Inflation is a transform on state dicts, not on models, so any 2D checkpoint (ImageNet weights, a
fine-tuned TSN backbone) can seed any 3D model whose layers line up with it. A k x k kernel becomes
t x k x k in one of two ways:

- ``"mean"``: the 2D kernel repeated over the t time slices and divided by t. On a clip of one
  repeated frame each 3D conv then gives the 2D conv's output (the "boring video" argument),
  provided the temporal padding repeats edge frames rather than adding zeros (see ``i3d.py``).
- ``"centre"``: the 2D kernel in the centre time slice and zeros elsewhere. Each conv then sees
  only its own frame, so a network without temporal strides or pooling starts as the 2D network
  applied frame by frame, whatever the clip and the temporal padding.

Norm layers, biases and the classifier are copied as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from resaction.errors import ModelError, WeightsError

InflationMode = Literal["mean", "centre"]
INFLATION_MODES: tuple[str, ...] = ("mean", "centre")

_RESNET_2D_TO_3D = (
    (re.compile(r"^conv1\."), "stem.0."),
    (re.compile(r"^bn1\."), "stem.1."),
    (re.compile(r"^(layer\d+\.\d+)\.conv(\d+)\."), r"\1.conv\2.0."),
    (re.compile(r"^(layer\d+\.\d+)\.bn(\d+)\."), r"\1.conv\2.1."),
)


def resnet_2d_key_to_3d(key: str) -> str:
    """Name of a torchvision 2D ResNet parameter in a ``VideoResNet``.

    ``conv1``/``bn1`` become the stem's conv and norm (``stem.0``/``stem.1``), a block's
    ``convZ``/``bnZ`` become ``convZ.0``/``convZ.1``; ``downsample`` and ``fc`` keep their names.
    """
    for pattern, replacement in _RESNET_2D_TO_3D:
        renamed, count = pattern.subn(replacement, key)
        if count:
            return renamed
    return key


def inflate_kernel(weight: torch.Tensor, time: int, mode: InflationMode = "mean") -> torch.Tensor:
    """A 2D conv weight (O, I, kH, kW) as a 3D one (O, I, time, kH, kW)."""
    _check_mode(mode)
    if weight.dim() != 4:
        raise WeightsError(
            f"only 2D conv kernels (4 dims) can be inflated, got {tuple(weight.shape)}"
        )
    if mode == "mean":
        return weight.unsqueeze(2).repeat(1, 1, time, 1, 1) / time
    inflated = weight.new_zeros((*weight.shape[:2], time, *weight.shape[2:]))
    inflated[:, :, time // 2] = weight
    return inflated


ShapeLike = Sequence[int] | torch.Size | torch.Tensor


def inflate_state_dict(
    state_2d: Mapping[str, torch.Tensor],
    target: nn.Module | Mapping[str, ShapeLike],
    mode: InflationMode = "mean",
    rename: Callable[[str], str] = resnet_2d_key_to_3d,
) -> dict[str, torch.Tensor]:
    """The 2D state dict renamed and reshaped for a 3D target.

    Args:
        state_2d: the 2D network's state dict.
        target: the 3D model, or its state dict, or a mapping from its keys to shapes.
        mode: ``"mean"`` or ``"centre"`` (see the module docstring).
        rename: maps a 2D key to the target's name for it; used only for keys the target does not
            already have. The default maps torchvision's 2D ResNet onto ``VideoResNet``.

    Returns:
        A state dict in the target's names. A 4D conv kernel whose target is 5D is inflated to the
        target's temporal size. Everything else is passed through unchanged, including keys the
        target lacks and tensors of another shape (a classifier with another number of classes),
        so the loader that follows reports or drops them.

    Raises:
        WeightsError: a 2D kernel whose target is a 3D kernel of other channels or spatial size.
    """
    _check_mode(mode)
    shapes = _target_shapes(target)
    state_3d: dict[str, torch.Tensor] = {}
    for key, tensor in state_2d.items():
        name = key if key in shapes else rename(key)
        shape = shapes.get(name)
        if shape is not None and tensor.dim() == 4 and len(shape) == 5:
            if tuple(shape[:2]) + tuple(shape[3:]) != tuple(tensor.shape):
                raise WeightsError(
                    f"cannot inflate {key} {tuple(tensor.shape)} into {name} {tuple(shape)}: "
                    "channels and spatial size must match"
                )
            tensor = inflate_kernel(tensor, shape[2], mode)
        state_3d[name] = tensor
    return state_3d


def _target_shapes(target: nn.Module | Mapping[str, ShapeLike]) -> dict[str, tuple[int, ...]]:
    items = target.state_dict().items() if isinstance(target, nn.Module) else target.items()
    return {
        key: tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)
        for key, value in items
    }


def _check_mode(mode: str) -> None:
    if mode not in INFLATION_MODES:
        raise ModelError(
            f"unknown inflation mode {mode!r}; use one of {', '.join(INFLATION_MODES)}"
        )
