"""I3D ResNets: torchvision's 2D ResNets inflated to 3D, built as ``VideoResNet`` variants.

The network is the 2D ResNet layer for layer (a 7x7 stem conv with spatial stride 2, a 3x3 max
pool, four stages, average pooling, ``fc``), with a temporal kernel added to the stem and to the
3x3 convs of chosen blocks, and no temporal stride or temporal pooling anywhere. A torchvision 2D
ResNet state dict therefore maps onto it key by key (``inflation.resnet_2d_key_to_3d``) and seeds it
through ``inflation.inflate_state_dict``.

Why temporal padding repeats the edge frames: the inflated model must give the 2D model's logits
on a clip of one repeated frame. With ``"mean"`` inflation each 3D conv sums t copies of the 2D
kernel divided by t, which equals the 2D conv only where every time slice it covers holds the frame;
zero padding would scale the 2D response near the clip's ends by (t - p) / t, p being the number
of padded slices under the kernel. Padding in
time by replicating the first and last frame (zeros in space, as in 2D) keeps a constant clip
constant through every layer, so the property is exact at every depth and clip length. ``"centre"``
inflation needs no such care (its off-centre taps are zero), and with no temporal stride it makes
the model the 2D network applied to each frame, followed by averaging over time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from resaction.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from resaction.errors import ModelError
from resaction.models.catalog import StateDict, register_on_trunks
from resaction.models.inflation import inflate_state_dict
from resaction.models.resnet3d import VideoResNet, depth_layout


class TimeReplicateConv3d(nn.Conv3d):
    """A bias-free 3D conv padded with zeros in space and with copies of the edge frames in time."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int],
        spatial_padding: int,
    ) -> None:
        if kernel_size[0] % 2 == 0:
            raise ModelError(f"temporal kernel sizes must be odd, got {kernel_size[0]}")
        super().__init__(
            in_planes,
            out_planes,
            kernel_size,
            stride=stride,
            padding=(0, spatial_padding, spatial_padding),
            bias=False,
        )
        self.time_padding = kernel_size[0] // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_padding:
            pad = (0, 0, 0, 0, self.time_padding, self.time_padding)
            x = F.pad(x, pad, mode="replicate")
        return super().forward(x)


@dataclass(frozen=True)
class InflatedConv:
    """Conv builder for ``VideoResNet``: a t x 3 x 3 conv with spatial stride only."""

    temporal_kernel: int = 3

    def __call__(
        self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1
    ) -> nn.Module:
        kernel = (self.temporal_kernel, 3, 3)
        return TimeReplicateConv3d(in_planes, out_planes, kernel, (1, stride, stride), 1)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return 1, stride, stride


class InflatedStem(nn.Sequential):
    """The 2D ResNet stem in 3D: t x 7 x 7 conv (spatial stride 2), BN, ReLU, 1 x 3 x 3 max pool."""

    def __init__(self, temporal_kernel: int = 5) -> None:
        super().__init__(
            TimeReplicateConv3d(3, 64, (temporal_kernel, 7, 7), (1, 2, 2), 3),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )


StageSpec = bool | int | Sequence[bool | int]

TEMPORAL_PRESETS: dict[str, tuple[StageSpec, ...]] = {
    "i3d": (3, (3, 1), (3, 1), (1, 3)),
    "slowonly": (False, False, True, True),
    "all": (True, True, True, True),
    "none": (False, False, False, False),
}
"""Named temporal layouts. ``"i3d"`` follows the I3D ResNet of Wang et al. (2018): every block of
layer1, every other block of layer2 and layer3 from the first, and of layer4 from the second;
``"slowonly"`` inflates layer3 and layer4 only (Feichtenhofer et al., 2019)."""


def temporal_kernels(spec: str | Sequence[StageSpec], layers: Sequence[int]) -> list[list[int]]:
    """Temporal kernel size of every block, stage by stage.

    ``spec`` is a preset name from ``TEMPORAL_PRESETS`` or four entries, one per stage: a bool
    (True = 3, False = 1) or an odd int for all of the stage's blocks, or a sequence of them that is
    repeated over the stage's blocks, so ``(3, 1)`` inflates every other block.
    """
    if isinstance(spec, str):
        if spec not in TEMPORAL_PRESETS:
            raise ModelError(
                f"unknown temporal layout {spec!r}; use one of {', '.join(TEMPORAL_PRESETS)} "
                "or four per-stage entries"
            )
        spec = TEMPORAL_PRESETS[spec]
    if len(spec) != len(layers):
        raise ModelError(f"temporal layout needs {len(layers)} stage entries, got {len(spec)}")
    kernels = []
    for stage, blocks in zip(spec, layers, strict=True):
        cycle = [stage] if isinstance(stage, bool | int) else list(stage)
        if not cycle:
            raise ModelError("a stage's temporal layout must not be empty")
        kernels.append([_kernel_size(cycle[i % len(cycle)]) for i in range(blocks)])
    return kernels


def _kernel_size(entry: bool | int) -> int:
    if isinstance(entry, bool):
        return 3 if entry else 1
    if entry < 1 or entry % 2 == 0:
        raise ModelError(f"temporal kernel sizes must be odd and positive, got {entry}")
    return entry


def i3d_resnet(
    depth: int,
    num_classes: int = 400,
    temporal_stages: str | Sequence[StageSpec] = "i3d",
    stem_temporal_kernel: int = 5,
    zero_init_residual: bool = False,
) -> VideoResNet:
    """An I3D ResNet of a depth of ``resnet3d.DEPTHS`` whose keys match the 2D ResNet of that
    depth (torchvision's, for 18, 34 and 50).

    ``temporal_stages`` chooses which blocks get a temporal kernel (see ``temporal_kernels``);
    ``stem_temporal_kernel`` is the stem conv's temporal size.
    """
    block, layers = depth_layout(depth)
    builders = [
        [InflatedConv(t) for t in stage] for stage in temporal_kernels(temporal_stages, layers)
    ]
    _kernel_size(stem_temporal_kernel)
    return VideoResNet(
        block,
        builders,
        layers,
        functools.partial(InflatedStem, stem_temporal_kernel),
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
    )


INFLATION = "mean"


def convert_state_dict(state: StateDict, model: nn.Module) -> StateDict:
    """I3D's conversion function: a 2D ResNet state dict (ImageNet's, a fine-tuned TSN trunk)
    renamed and inflated to the model's 3D kernels; a 3D state dict passes unchanged."""
    return inflate_state_dict(state, model, mode=INFLATION)


_I3D = {
    "family": "i3d",
    "clip_len": 8,
    "input_size": 224,
    "resize": 256,
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "weights": ("imagenet",),
    "frame_interval": 8,
    "inflation": INFLATION,
    "convert": convert_state_dict,
}


register_on_trunks(
    i3d_resnet,
    _I3D,
    (18, 50),
    "I3D ResNet-{depth}: ResNet-{depth} inflated to 3D, seeded from its ImageNet weights.",
    name="i3d_resnet{depth}",
)
