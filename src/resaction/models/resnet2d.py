"""2D ResNet 18/34/50/101 with torchvision's module names and shapes, so its checkpoints load as is.

The image models take (N, C, H, W) images, and (N, C, T, H, W) clips too: every frame is
classified and the logits are averaged over time (the frame-level baseline with no extra
options; ``tsn_*`` adds sampling by segments, dropout and other consensus modes). TSN, TSM and
LRCN subclass ``ResNet`` and keep its keys, so one 2D checkpoint seeds any of them.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from resaction.models.catalog import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    StateDict,
    WeightSpec,
    register_model,
)
from resaction.models.hub import torchvision_weights
from resaction.models.layers import ClassifierMixin, ResidualBlock, frames_to_batch
from resaction.models.modality import adapt_first_conv, frame_input, input_channels


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(ResidualBlock):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """torchvision's V1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class ResNet(ClassifierMixin, nn.Module):
    """torchvision's ResNet. ``block_kwargs`` go to every block (TSM passes its shift options).

    ``modality`` and ``segment_len`` choose what a clip's frames become before the trunk (see
    ``modality.py``): RGB frames as they are, or TSN's RGB difference, for which the first
    convolution takes the stacked differences' channels.
    """

    def __init__(
        self,
        block: type[ResidualBlock],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        *,
        modality: str = "rgb",
        segment_len: int = 1,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        self.modality = modality
        self.segment_len = segment_len
        self.frame_input = frame_input(modality, segment_len)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(
            input_channels(modality, segment_len),
            64,
            kernel_size=7,
            stride=2,
            padding=3,
            bias=False,
        )
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, block_kwargs)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, block_kwargs)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, block_kwargs)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, block_kwargs)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(
        self,
        block: type[ResidualBlock],
        planes: int,
        blocks: int,
        stride: int,
        block_kwargs: dict[str, Any],
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, **block_kwargs)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, **block_kwargs) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, num_features) pooled features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def clip_frames(self, clip: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(N, C, T, H, W) -> the trunk's input frames (N*T', C', H, W) and T'."""
        return frames_to_batch(self.frame_input(clip))

    def frame_outputs(self, frames: torch.Tensor) -> torch.Tensor:
        """The trunk's frames (B, C', H, W) -> what the clip head pools, per frame (B, D).

        A clip's output is ``pool_frames`` over these, so a live stream can compute each frame's
        output once and pool any window of them later (``inference/incremental.py``)."""
        return self.fc(self.forward_features(frames))

    def pool_frames(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-frame outputs (N, T, D) -> clip logits (N, K): their mean for an image model."""
        return outputs.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return self.fc(self.forward_features(x))
        frames, t = self.clip_frames(x)
        return self.pool_frames(self.frame_outputs(frames).unflatten(0, (-1, t)))


DEPTHS: dict[int, tuple[type[ResidualBlock], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


def resnet(depth: int, num_classes: int = 1000, **block_kwargs: Any) -> ResNet:
    block, layers = DEPTHS[depth]
    return ResNet(block, layers, num_classes, **block_kwargs)


def convert_state_dict(state: StateDict, model: nn.Module) -> StateDict:
    """The 2D trunks' conversion function: an RGB first convolution (ImageNet's, or any RGB
    model's) becomes one for the stacked frame differences of a difference model."""
    weight, target = state.get("conv1.weight"), model.conv1.weight
    if model.modality == "rgb" or weight is None or weight.dim() != 4:
        return state
    if weight.shape[1] != 3 or tuple(weight.shape) == tuple(target.shape):
        return state
    return {**state, "conv1.weight": adapt_first_conv(weight, model.modality, model.segment_len)}


def imagenet_weights(file: str, resize: int, source: str) -> WeightSpec:
    """One of torchvision's ImageNet ResNet files, for the ``files=`` of a builder."""
    mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    preprocess = {"resize": resize, "crop": 224, "mean": mean, "std": std}
    return torchvision_weights(
        file, f"torchvision {source}", num_classes=1000, preprocess=preprocess
    )


_IMAGE = {
    "family": "resnet2d",
    "clip_len": 1,
    "input_size": 224,
    "resize": 256,
    "default_num_classes": 1000,
    "sampling": "segments",
    "convert": convert_state_dict,
}
_V1, _V2 = "IMAGENET1K_V1, top-1", "IMAGENET1K_V2, top-1"


IMAGENET_FILES: dict[int, dict[str, tuple[str, int, str]]] = {
    18: {"imagenet": ("resnet18-f37072fd.pth", 256, f"{_V1} 69.76")},
    34: {"imagenet": ("resnet34-b627a593.pth", 256, f"{_V1} 73.31")},
    50: {
        "imagenet": ("resnet50-0676ba61.pth", 256, f"{_V1} 76.13"),
        "imagenet_v2": ("resnet50-11ad3fa6.pth", 232, f"{_V2} 80.86"),
    },
    101: {
        "imagenet": ("resnet101-63fe2227.pth", 256, f"{_V1} 77.37"),
        "imagenet_v2": ("resnet101-cd907fc2.pth", 232, f"{_V2} 81.89"),
    },
}
"""The registered image ResNets, ``resnet{depth}``, and torchvision's ImageNet files of each:
weight tag -> file name, resize, source and top-1."""


def image_resnet(depth: int, num_classes: int = 1000) -> ResNet:
    """The image ResNet ``resnet{depth}`` builds: a plain classifier, with no options."""
    return resnet(depth, num_classes)


def _register(depth: int, files: dict[str, tuple[str, int, str]]) -> None:
    name = f"resnet{depth}"
    register_model(
        **_IMAGE,
        name=name,
        trunk=name,
        files={tag: imagenet_weights(*file) for tag, file in files.items()},
        description=f"ResNet-{depth} image classifier (torchvision layout); clips: per-frame "
        "logits averaged.",
    )(functools.partial(image_resnet, depth))


for _depth, _files in IMAGENET_FILES.items():
    _register(_depth, _files)
