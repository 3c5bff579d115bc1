"""3D ResNets for video: R3D, MC3 and R(2+1)D as one ``VideoResNet`` class.

The structure follows torchvision's ``models/video/resnet.py``: a network is a stem, four stages of
residual blocks and a linear classifier, and the variants differ only in the conv builder used by
each stage and in the stem. Module names and shapes match torchvision's exactly, so its Kinetics-400
state dicts for ``r3d_18``, ``mc3_18`` and ``r2plus1d_18`` load unchanged with ``strict=True``.

A conv builder is a callable ``builder(in_planes, out_planes, midplanes, stride) -> nn.Module`` that
also answers ``builder.get_downsample_stride(stride)``, the stride of the 1x1x1 shortcut conv that
keeps the residual branch the same shape. A stage takes one builder for all its blocks, or a
sequence with one builder per block (used by the inflated I3D networks in ``i3d.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import nn

from resaction.errors import ModelError
from resaction.models.layers import ClassifierMixin
from resaction.models.registry import KINETICS_MEAN, KINETICS_STD, register_model


class ConvBuilder(Protocol):
    def __call__(
        self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1
    ) -> nn.Module: ...

    def get_downsample_stride(self, stride: int) -> tuple[int, int, int]: ...


class Conv3DSimple(nn.Conv3d):
    """A full 3x3x3 convolution (R3D)."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        midplanes: int | None = None,
        stride: int = 1,
        padding: int = 1,
    ) -> None:
        super().__init__(
            in_planes, out_planes, kernel_size=3, stride=stride, padding=padding, bias=False
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class Conv3DNoTemporal(nn.Conv3d):
    """A 1x3x3 convolution: spatial only, the frames stay independent (MC3's upper stages)."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        midplanes: int | None = None,
        stride: int = 1,
        padding: int = 1,
    ) -> None:
        super().__init__(
            in_planes,
            out_planes,
            kernel_size=(1, 3, 3),
            stride=(1, stride, stride),
            padding=(0, padding, padding),
            bias=False,
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return 1, stride, stride


class Conv2Plus1D(nn.Sequential):
    """A 1x3x3 spatial conv, BN and ReLU, then a 3x1x1 temporal conv (R(2+1)D).

    ``midplanes`` is chosen by the block so that the pair has about the parameters of one 3x3x3
    conv.
    """

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        midplanes: int,
        stride: int = 1,
        padding: int = 1,
    ) -> None:
        super().__init__(
            nn.Conv3d(
                in_planes,
                midplanes,
                kernel_size=(1, 3, 3),
                stride=(1, stride, stride),
                padding=(0, padding, padding),
                bias=False,
            ),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(
                midplanes,
                out_planes,
                kernel_size=(3, 1, 1),
                stride=(stride, 1, 1),
                padding=(padding, 0, 0),
                bias=False,
            ),
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


def _midplanes(inplanes: int, planes: int) -> int:
    """Width of R(2+1)D's middle layer, computed as torchvision does (from the block input)."""
    return (inplanes * planes * 3 * 3 * 3) // (inplanes * 3 * 3 + 3 * planes)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        conv_builder: ConvBuilder,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        midplanes = _midplanes(inplanes, planes)
        self.conv1 = nn.Sequential(
            conv_builder(inplanes, planes, midplanes, stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(conv_builder(planes, planes, midplanes), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + residual)


class Bottleneck(nn.Module):
    """1x1x1 reduce, the builder's conv (carrying the stride), 1x1x1 expand."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        conv_builder: ConvBuilder,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        midplanes = _midplanes(inplanes, planes)
        self.conv1 = nn.Sequential(
            nn.Conv3d(inplanes, planes, kernel_size=1, bias=False),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            conv_builder(planes, planes, midplanes, stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv3 = nn.Sequential(
            nn.Conv3d(planes, planes * self.expansion, kernel_size=1, bias=False),
            nn.BatchNorm3d(planes * self.expansion),
        )
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + residual)


class BasicStem(nn.Sequential):
    """3x7x7 conv with spatial stride 2, BN, ReLU (R3D, MC3)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(
                3, 64, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False
            ),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


class R2Plus1dStem(nn.Sequential):
    """The stem factorised like the blocks: 1x7x7 conv to 45 channels, then 3x1x1 to 64."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(
                3, 45, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False
            ),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(
                45, 64, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False
            ),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


Block = type[BasicBlock] | type[Bottleneck]
StageBuilders = ConvBuilder | Sequence[ConvBuilder]


class VideoResNet(ClassifierMixin, nn.Module):
    """A stem, stages ``layer1``..``layer4`` (64..512 planes), global average pooling and ``fc``.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        conv_makers: four entries, one per stage: a conv builder for every block of the stage, or a
            sequence with one builder per block.
        layers: number of blocks per stage.
        stem: a callable returning the stem module; its output must have 64 channels.
        num_classes: outputs of the classifier.
        zero_init_residual: start each block's last BN at zero, so every block begins as identity.
    """

    def __init__(
        self,
        block: Block,
        conv_makers: Sequence[StageBuilders],
        layers: Sequence[int],
        stem: Callable[[], nn.Module],
        num_classes: int = 400,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(conv_makers) != 4 or len(layers) != 4:
            raise ModelError(
                f"VideoResNet needs 4 stages, got {len(conv_makers)} conv builders and "
                f"{len(layers)} block counts"
            )
        self.inplanes = 64
        self.stem = stem()
        self.layer1 = self._make_layer(block, conv_makers[0], 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, conv_makers[1], 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, conv_makers[2], 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, conv_makers[3], 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(
        self, block: Block, builders: StageBuilders, planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        per_block = list(builders) if isinstance(builders, Sequence) else [builders] * blocks
        if len(per_block) != blocks:
            raise ModelError(
                f"a stage of {blocks} blocks got {len(per_block)} conv builders; give one builder "
                "or one per block"
            )
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv3d(
                    self.inplanes,
                    planes * block.expansion,
                    kernel_size=1,
                    stride=per_block[0].get_downsample_stride(stride),
                    bias=False,
                ),
                nn.BatchNorm3d(planes * block.expansion),
            )
        stage = [block(self.inplanes, planes, per_block[0], stride, downsample)]
        self.inplanes = planes * block.expansion
        stage += [block(self.inplanes, planes, builder) for builder in per_block[1:]]
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.conv3[1].weight)
                elif isinstance(module, BasicBlock):
                    nn.init.zeros_(module.conv2[1].weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector, (N, 512 * expansion)."""
        if x.dim() != 5:
            raise ModelError(
                f"{type(self).__name__} takes clips shaped (N, C, T, H, W), got {tuple(x.shape)}"
            )
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


_KINETICS = {"mean": KINETICS_MEAN, "std": KINETICS_STD}
_VIDEO = {"family": "resnet3d", "clip_len": 16, "input_size": 112, "resize": 128, **_KINETICS}
_KINETICS_WEIGHTED = {**_VIDEO, "fps": 15, "weights": ("kinetics400",)}


@register_model(**_VIDEO)
def r3d_10(num_classes: int = 400, **kwargs) -> VideoResNet:
    """R3D-10: full 3x3x3 convolutions in every stage, one block per stage."""
    return VideoResNet(
        BasicBlock, [Conv3DSimple] * 4, [1, 1, 1, 1], BasicStem, num_classes, **kwargs
    )


@register_model(**_KINETICS_WEIGHTED)
def r3d_18(num_classes: int = 400, **kwargs) -> VideoResNet:
    """R3D-18: full 3x3x3 convolutions in every stage (torchvision r3d_18)."""
    return VideoResNet(
        BasicBlock, [Conv3DSimple] * 4, [2, 2, 2, 2], BasicStem, num_classes, **kwargs
    )


@register_model(**_VIDEO)
def r3d_34(num_classes: int = 400, **kwargs) -> VideoResNet:
    """R3D-34: full 3x3x3 convolutions, ResNet-34 depth."""
    return VideoResNet(
        BasicBlock, [Conv3DSimple] * 4, [3, 4, 6, 3], BasicStem, num_classes, **kwargs
    )


@register_model(**_VIDEO)
def r3d_50(num_classes: int = 400, **kwargs) -> VideoResNet:
    """R3D-50: bottleneck blocks with a 3x3x3 middle convolution."""
    return VideoResNet(
        Bottleneck, [Conv3DSimple] * 4, [3, 4, 6, 3], BasicStem, num_classes, **kwargs
    )


@register_model(**_KINETICS_WEIGHTED)
def mc3_18(num_classes: int = 400, **kwargs) -> VideoResNet:
    """MC3-18: 3D convolutions in the stem and layer1, spatial-only above (torchvision mc3_18)."""
    builders = [Conv3DSimple] + [Conv3DNoTemporal] * 3
    return VideoResNet(BasicBlock, builders, [2, 2, 2, 2], BasicStem, num_classes, **kwargs)


@register_model(**_KINETICS_WEIGHTED)
def r2plus1d_18(num_classes: int = 400, **kwargs) -> VideoResNet:
    """R(2+1)D-18: every 3D convolution split in spatial and temporal (torchvision r2plus1d_18)."""
    return VideoResNet(
        BasicBlock, [Conv2Plus1D] * 4, [2, 2, 2, 2], R2Plus1dStem, num_classes, **kwargs
    )


@register_model(**_VIDEO)
def r2plus1d_34(num_classes: int = 400, **kwargs) -> VideoResNet:
    """R(2+1)D-34: factorised convolutions, ResNet-34 depth."""
    return VideoResNet(
        BasicBlock, [Conv2Plus1D] * 4, [3, 4, 6, 3], R2Plus1dStem, num_classes, **kwargs
    )
