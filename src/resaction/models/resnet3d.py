"""3D ResNets for video: R3D, MC3 and R(2+1)D as one ``VideoResNet`` class.

The structure follows torchvision's ``models/video/resnet.py``: a network is a stem, four stages of
residual blocks and a linear classifier, and the variants differ only in the conv builder used by
each stage and in the stem. Module names and shapes match torchvision's exactly, so its Kinetics-400
state dicts for ``r3d_18``, ``mc3_18`` and ``r2plus1d_18`` load unchanged with ``strict=True``.

A conv builder is a callable ``builder(in_planes, out_planes, midplanes, stride) -> nn.Module`` that
also answers ``builder.get_downsample_stride(stride)``, the stride of the 1x1x1 shortcut conv that
keeps the residual branch the same shape. A stage takes one builder for all its blocks, or a
sequence with one builder per block (used by the inflated I3D networks in ``i3d.py``).

``VARIANTS`` names each variant's builders and stem, ``DEPTHS`` each depth's block and blocks per
stage; the I3D networks take their depths from the same table. ``MODELS`` lists the registered
variant and depth pairs (``r3d_18``: "r3d" at depth 18).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from resaction.data.transforms import KINETICS_MEAN, KINETICS_STD, kinetics_preprocess
from resaction.errors import ModelError
from resaction.models.catalog import WeightSpec, register_model
from resaction.models.hub import kinetics400_classes, torchvision_weights
from resaction.models.layers import ClassifierMixin, ResidualBlock


class ConvBuilder(Protocol):
    def __call__(
        self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1
    ) -> nn.Module: ...

    def get_downsample_stride(self, stride: int) -> tuple[int, int, int]: ...


class _Conv3x3(nn.Conv3d):
    """A bias-free convolution, 3x3 in space and ``time`` deep; it strides and pads in time only
    when it has a temporal extent."""

    time = 3

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
            kernel_size=(self.time, 3, 3),
            stride=self.get_downsample_stride(stride),
            padding=(padding if self.time > 1 else 0, padding, padding),
            bias=False,
        )

    @classmethod
    def get_downsample_stride(cls, stride: int) -> tuple[int, int, int]:
        return stride if cls.time > 1 else 1, stride, stride


class Conv3DSimple(_Conv3x3):
    """A full 3x3x3 convolution (R3D)."""

    time = 3


class Conv3DNoTemporal(_Conv3x3):
    """A 1x3x3 convolution: spatial only, the frames stay independent (MC3's upper stages)."""

    time = 1


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


def conv_bn_relu(
    in_planes: int,
    out_planes: int,
    kernel: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] = 0,
) -> list[nn.Module]:
    """A bias-free 3D conv, its BN and a ReLU, to be laid out in an ``nn.Sequential``."""
    conv = nn.Conv3d(in_planes, out_planes, kernel, stride=stride, padding=padding, bias=False)
    return [conv, nn.BatchNorm3d(out_planes), nn.ReLU(inplace=True)]


class _Block3d(ResidualBlock):
    """A residual block whose branch is built around the stage's conv builder."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        conv_builder: ConvBuilder,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.build_branch(inplanes, planes, conv_builder, stride, _midplanes(inplanes, planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def build_branch(
        self, inplanes: int, planes: int, builder: ConvBuilder, stride: int, midplanes: int
    ) -> None:
        raise NotImplementedError


class BasicBlock3d(_Block3d):
    """Two convolutions of the stage's builder, each with BN (torchvision's video BasicBlock)."""

    expansion = 1

    def build_branch(
        self, inplanes: int, planes: int, builder: ConvBuilder, stride: int, midplanes: int
    ) -> None:
        self.conv1 = nn.Sequential(
            builder(inplanes, planes, midplanes, stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(builder(planes, planes, midplanes), nn.BatchNorm3d(planes))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class Bottleneck3d(_Block3d):
    """1x1x1 reduce, the builder's conv (carrying the stride), 1x1x1 expand."""

    expansion = 4

    def build_branch(
        self, inplanes: int, planes: int, builder: ConvBuilder, stride: int, midplanes: int
    ) -> None:
        wide = planes * self.expansion
        self.conv1 = nn.Sequential(*conv_bn_relu(inplanes, planes, 1))
        self.conv2 = nn.Sequential(
            builder(planes, planes, midplanes, stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv3 = nn.Sequential(nn.Conv3d(planes, wide, 1, bias=False), nn.BatchNorm3d(wide))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))


class BasicStem(nn.Sequential):
    """3x7x7 conv with spatial stride 2, BN, ReLU (R3D, MC3)."""

    def __init__(self) -> None:
        super().__init__(*conv_bn_relu(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3)))


class R2Plus1dStem(nn.Sequential):
    """The stem factorised like the blocks: 1x7x7 conv to 45 channels, then 3x1x1 to 64."""

    def __init__(self) -> None:
        super().__init__(
            *conv_bn_relu(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3)),
            *conv_bn_relu(45, 64, (3, 1, 1), 1, (1, 0, 0)),
        )


Block = type[BasicBlock3d] | type[Bottleneck3d]
StageBuilders = ConvBuilder | Sequence[ConvBuilder]


class VideoResNet(ClassifierMixin, nn.Module):
    """A stem, stages ``layer1``..``layer4`` (64..512 planes), global average pooling and ``fc``.

    Args:
        block: ``BasicBlock3d`` or ``Bottleneck3d``.
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
                if isinstance(module, Bottleneck3d):
                    nn.init.zeros_(module.conv3[1].weight)
                elif isinstance(module, BasicBlock3d):
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


DEPTHS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    10: (BasicBlock3d, (1, 1, 1, 1)),
    18: (BasicBlock3d, (2, 2, 2, 2)),
    34: (BasicBlock3d, (3, 4, 6, 3)),
    50: (Bottleneck3d, (3, 4, 6, 3)),
}
"""Depth -> block and blocks per stage, for every 3D ResNet: R3D, MC3, R(2+1)D and I3D."""


def depth_layout(depth: int) -> tuple[Block, tuple[int, int, int, int]]:
    """The block and the blocks per stage of a 3D ResNet of ``depth``."""
    if depth not in DEPTHS:
        raise ModelError(f"no 3D ResNet of depth {depth}; use one of {', '.join(map(str, DEPTHS))}")
    return DEPTHS[depth]


VARIANTS: dict[str, tuple[Sequence[StageBuilders], Callable[[], nn.Module]]] = {
    "r3d": ([Conv3DSimple] * 4, BasicStem),
    "mc3": ([Conv3DSimple] + [Conv3DNoTemporal] * 3, BasicStem),
    "r2plus1d": ([Conv2Plus1D] * 4, R2Plus1dStem),
}
"""Variant -> conv builder of each stage and stem: all that tells R3D, MC3 and R(2+1)D apart."""


def video_resnet(variant: str, depth: int, num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """The ``VideoResNet`` of a variant (``VARIANTS``) and a depth (``DEPTHS``)."""
    builders, stem = VARIANTS[variant]
    block, layers = depth_layout(depth)
    return VideoResNet(block, builders, layers, stem, num_classes, **kwargs)


_K400 = "torchvision, Kinetics-400 top-1/top-5 (video, 5 clips x 16 frames at 15 fps, 112 px)"


def kinetics_weights(file: str, source: str) -> WeightSpec:
    """One of torchvision's Kinetics-400 video files, with the preprocessing it was trained with
    (torchvision's video preset: 16 frames at 15 fps, resized to 128x171 without antialiasing)."""
    return torchvision_weights(
        file,
        f"{_K400} {source}",
        num_classes=400,
        preprocess=kinetics_preprocess(),
        classes=kinetics400_classes(),
    )


_VIDEO = {
    "family": "resnet3d",
    "clip_len": 16,
    "input_size": 112,
    "resize": 128,
    "mean": KINETICS_MEAN,
    "std": KINETICS_STD,
}


TORCHVISION_FILES = {
    "r3d_18": ("r3d_18-b3b3357e.pth", "63.20/83.48"),
    "mc3_18": ("mc3_18-a90a0ba3.pth", "63.96/84.13"),
    "r2plus1d_18": ("r2plus1d_18-91a641e6.pth", "67.46/86.18"),
}
"""torchvision's Kinetics-400 files: model -> file name, top-1/top-5."""

MODELS: dict[tuple[str, int], str] = {
    ("r3d", 10): "R3D-10: full 3x3x3 convolutions in every stage, one block per stage.",
    ("r3d", 18): "R3D-18: full 3x3x3 convolutions in every stage (torchvision r3d_18).",
    ("r3d", 34): "R3D-34: full 3x3x3 convolutions, ResNet-34 depth.",
    ("r3d", 50): "R3D-50: bottleneck blocks with a 3x3x3 middle convolution.",
    ("mc3", 18): "MC3-18: 3D convolutions in the stem and layer1, spatial-only above "
    "(torchvision mc3_18).",
    ("r2plus1d", 18): "R(2+1)D-18: every 3D convolution split in spatial and temporal "
    "(torchvision r2plus1d_18).",
    ("r2plus1d", 34): "R(2+1)D-34: factorised convolutions, ResNet-34 depth.",
}
"""The registered 3D ResNets, ``{variant}_{depth}``: a variant of ``VARIANTS`` at a depth of
``DEPTHS``, with its description."""


def _register(variant: str, depth: int, description: str) -> None:
    """Register ``{variant}_{depth}``, with its torchvision file where it has one."""
    name = f"{variant}_{depth}"
    files = {}
    if name in TORCHVISION_FILES:
        files = {"kinetics400": kinetics_weights(*TORCHVISION_FILES[name])}
    builder = functools.partial(video_resnet, variant, depth)
    fps = 15 if files else None  # torchvision's files were trained at 15 fps
    register_model(**_VIDEO, name=name, description=description, fps=fps, files=files)(builder)


for _key, _description in MODELS.items():
    _register(*_key, _description)
