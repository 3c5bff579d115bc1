"""Pieces shared by the model families: the residual block, frame folding, temporal consensus and
the head API."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from resaction.errors import ModelError

CONSENSUS_MODES = ("avg", "max", "weighted")


class ResidualBlock(nn.Module):
    """``relu(residual(x) + shortcut(x))``; subclasses define the residual branch (2D and 3D)."""

    expansion = 1
    downsample: nn.Module | None
    relu: nn.Module

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


def frames_to_batch(clip: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(N, C, T, H, W) -> (N*T, C, H, W) with frames of one clip adjacent, and T."""
    if clip.dim() != 5:
        raise ModelError(f"expected a clip batch (N, C, T, H, W), got shape {tuple(clip.shape)}")
    _, c, t, h, w = clip.shape
    return clip.transpose(1, 2).reshape(-1, c, h, w), t


class TemporalConsensus(nn.Module):
    """Pools per-frame scores (N, T, K) over time into (N, K).

    "weighted" learns one weight per frame position (softmax-normalised, so it starts as the
    average); it therefore needs the number of frames fixed at construction.
    """

    def __init__(self, mode: str = "avg", num_frames: int | None = None) -> None:
        super().__init__()
        if mode not in CONSENSUS_MODES:
            raise ModelError(f"consensus {mode!r} is not one of {', '.join(CONSENSUS_MODES)}")
        self.mode = mode
        self.num_frames = num_frames
        if mode == "weighted":
            if not num_frames:
                raise ModelError("weighted consensus needs num_frames (the clip length)")
            self.weight = nn.Parameter(torch.zeros(num_frames))

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        if self.mode == "avg":
            return scores.mean(dim=1)
        if self.mode == "max":
            return scores.amax(dim=1)
        if scores.shape[1] != self.num_frames:
            raise ModelError(
                f"weighted consensus was built for {self.num_frames} frames, got {scores.shape[1]};"
                " build the model with num_segments equal to the clip length"
            )
        return torch.einsum("ntk,t->nk", scores, self.weight.softmax(dim=0))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, num_frames={self.num_frames}"


def module_name(model: nn.Module, target: nn.Module) -> str:
    """The dotted name of ``target`` inside ``model``."""
    for name, module in model.named_modules():
        if module is target:
            return name
    raise ModelError(f"{type(target).__name__} is not a module of {type(model).__name__}")


def split_parameters(
    model: nn.Module, head: list[nn.Module]
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone, head) parameters: head is every parameter of the given modules."""
    head_ids = {id(p) for module in head for p in module.parameters()}
    params = list(model.parameters())
    return [p for p in params if id(p) not in head_ids], [p for p in params if id(p) in head_ids]


class ClassifierMixin:
    """The head API every resaction model offers (timm's names).

    The classifier is the ``nn.Linear`` in ``self.fc``. ``head_modules`` lists what a pretrained
    trunk does not provide (the classifier, plus any new temporal module), so weight loading may
    leave them at their initial values and fine-tuning gives them the full learning rate.
    """

    fc: nn.Linear

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        old = self.fc
        self.fc = nn.Linear(
            old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype
        )

    def head_modules(self) -> list[nn.Module]:
        return [self.fc]

    def head_parameters(self) -> Iterator[nn.Parameter]:
        yield from split_parameters(self, self.head_modules())[1]  # type: ignore[arg-type]

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        yield from split_parameters(self, self.head_modules())[0]  # type: ignore[arg-type]
