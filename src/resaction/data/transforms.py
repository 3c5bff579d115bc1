"""Clip transforms: torch ops on uint8 clips, one random draw per clip, normalisation last.

A ``ClipTransform`` takes a uint8 clip ``(T, H, W, C)`` and returns float ``(C, T, H, W)``, or
``(V, C, T, H, W)`` when it makes several views (three-crop). Its steps work on uint8 frames
``(V, T, C, H, W)``; each random step draws once per clip from the ``rng`` it is given, so every
frame gets the same crop and flip. Resizing interpolates in float and rounds back to uint8, as
torchvision does for uint8 tensors, so the Kinetics and ImageNet presets give torchvision's
numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resaction.data.colour_jitter import ClipColourJitter
from resaction.errors import ConfigError

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TSN_SCALES = (1.0, 0.875, 0.75, 0.66)
_FLOAT_CHUNK = 1 << 24  # values per float resize step: 64 MB, about two 1080p frames

Size = int | tuple[int, int]


class ClipOp(Protocol):
    """One step on uint8 frames ``(V, T, C, H, W)``; ``views`` is how many views it makes of one."""

    views: int

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor: ...


def _pair(size: Size | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = (int(v) for v in size)
    return height, width


def resize_frames(frames: Tensor, size: tuple[int, int], antialias: bool = True) -> Tensor:
    """Bilinear resize of uint8 frames ``(..., C, H, W)`` to ``size``, rounded back to uint8.

    The float round trip is what torchvision's ``F.resize`` does with uint8 tensors; torch's
    native uint8 kernel is faster but differs by one level on about a tenth of the pixels.
    Frames go through float a few at a time, so full-HD clips do not need gigabytes.
    """
    if tuple(frames.shape[-2:]) == size:
        return frames
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    # Each kernel is fastest in a different memory layout on CPU; the values are identical.
    layout = torch.contiguous_format if antialias else torch.channels_last
    chunk = max(1, _FLOAT_CHUNK // flat[0].numel())
    out = torch.cat(
        [
            F.interpolate(
                part.float().contiguous(memory_format=layout),
                size=size,
                mode="bilinear",
                align_corners=False,
                antialias=antialias,
            )
            .round_()
            .clamp_(0, 255)
            .to(torch.uint8)
            for part in flat.split(chunk)
        ]
    )
    return out.reshape(*lead, *out.shape[-3:])


def _pad_to(frames: Tensor, height: int, width: int) -> Tensor:
    """Zero-pad evenly to at least ``height`` x ``width`` (torchvision's centre-crop padding)."""
    pad_h = max(height - frames.shape[-2], 0)
    pad_w = max(width - frames.shape[-1], 0)
    if not pad_h and not pad_w:
        return frames
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    flat = F.pad(flat, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
    return flat.reshape(*lead, *flat.shape[-3:])


def _crop(frames: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    return frames[..., top : top + height, left : left + width]


def _centre_offset(length: int, crop: int) -> int:
    return round((length - crop) / 2.0)


class Resize:
    """Short side to ``size`` (an int, keeping the aspect ratio) or exactly ``(H, W)``."""

    views = 1

    def __init__(self, size: Size | Sequence[int], antialias: bool = True) -> None:
        self.size = size if isinstance(size, int) else _pair(size)
        self.antialias = antialias

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        if not isinstance(self.size, int):
            return self.size
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        size = self.output_size(*frames.shape[-2:])
        return resize_frames(frames, size, self.antialias)

    def __repr__(self) -> str:
        return f"Resize({self.size}, antialias={self.antialias})"


class _Crop:
    """One ``size`` crop of every frame, padded first where a frame is smaller; subclasses
    choose where (``offsets``)."""

    views = 1

    def __init__(self, size: Size | Sequence[int]) -> None:
        self.size = _pair(size)

    def offsets(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
        """(top, left) of the crop in a (padded) frame of ``height`` x ``width``."""
        raise NotImplementedError

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        height, width = self.size
        frames = _pad_to(frames, height, width)
        top, left = self.offsets(frames.shape[-2], frames.shape[-1], rng)
        return _crop(frames, top, left, height, width)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size})"


class CenterCrop(_Crop):
    def offsets(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
        return _centre_offset(height, self.size[0]), _centre_offset(width, self.size[1])


class RandomCrop(_Crop):
    def offsets(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
        top = int(rng.integers(0, height - self.size[0] + 1))
        return top, int(rng.integers(0, width - self.size[1] + 1))


class ThreeCrop:
    """Three crops along the long side: left, centre, right (or top, centre, bottom).

    Used for testing as in PySlowFast and MMAction2: with the short side resized to the crop
    size, the three views cover the whole frame. Views come out as a new leading dimension.
    """

    views = 3

    def __init__(self, size: Size | Sequence[int]) -> None:
        self.size = _pair(size)

    def offsets(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(top, left)`` of each view for a frame of ``height`` x ``width``."""
        crop_h, crop_w = self.size
        if width >= height:
            top = _centre_offset(height, crop_h)
            return [(top, 0), (top, _centre_offset(width, crop_w)), (top, width - crop_w)]
        left = _centre_offset(width, crop_w)
        return [(0, left), (_centre_offset(height, crop_h), left), (height - crop_h, left)]

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        crop_h, crop_w = self.size
        frames = _pad_to(frames, crop_h, crop_w)
        views = [
            _crop(frames, top, left, crop_h, crop_w)
            for top, left in self.offsets(*frames.shape[-2:])
        ]
        return torch.stack(views, dim=1).flatten(0, 1)

    def __repr__(self) -> str:
        return f"ThreeCrop({self.size})"


class MultiScaleCrop:
    """TSN's multi-scale crop: a crop of side ``scale * short side`` (width and height scales
    at most ``max_distort`` steps apart), at one of 5 or 13 fixed positions (or anywhere when
    ``fix_crop`` is off), resized to ``size``."""

    views = 1

    def __init__(
        self,
        size: Size | Sequence[int],
        scales: Sequence[float] = TSN_SCALES,
        max_distort: int = 1,
        fix_crop: bool = True,
        more_fix_crop: bool = True,
        antialias: bool = True,
    ) -> None:
        self.size = _pair(size)
        self.scales = tuple(scales)
        self.max_distort = max_distort
        self.fix_crop = fix_crop
        self.more_fix_crop = more_fix_crop
        self.antialias = antialias

    def crop_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Every allowed ``(crop_h, crop_w)``; sizes within 2 pixels of the output snap to it."""
        base = min(height, width)
        sides = [int(base * scale) for scale in self.scales]
        heights = [self.size[0] if abs(s - self.size[0]) < 3 else s for s in sides]
        widths = [self.size[1] if abs(s - self.size[1]) < 3 else s for s in sides]
        return [
            (h, w)
            for i, h in enumerate(heights)
            for j, w in enumerate(widths)
            if abs(i - j) <= self.max_distort
        ]

    def fixed_offsets(
        self, height: int, width: int, crop_h: int, crop_w: int
    ) -> list[tuple[int, int]]:
        """``(top, left)`` of the corners and centre, plus 8 more with ``more_fix_crop``."""
        h_step = (height - crop_h) // 4
        w_step = (width - crop_w) // 4
        steps = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
        if self.more_fix_crop:
            steps += [(2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
        return [(i * h_step, j * w_step) for i, j in steps]

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        height, width = frames.shape[-2:]
        sizes = self.crop_sizes(height, width)
        crop_h, crop_w = sizes[int(rng.integers(len(sizes)))]
        crop_h, crop_w = min(crop_h, height), min(crop_w, width)
        if self.fix_crop:
            offsets = self.fixed_offsets(height, width, crop_h, crop_w)
            top, left = offsets[int(rng.integers(len(offsets)))]
        else:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
        return resize_frames(_crop(frames, top, left, crop_h, crop_w), self.size, self.antialias)

    def __repr__(self) -> str:
        return f"MultiScaleCrop({self.size}, scales={self.scales})"


class RandomHorizontalFlip:
    """Mirror every frame of the clip, or none, with probability ``p``."""

    views = 1

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        return frames.flip(-1) if rng.random() < self.p else frames

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomTimeReversal:
    """Play the clip backwards, or not, with probability ``p`` (training of a direction-blind
    model)."""

    views = 1

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        return frames.flip(1) if rng.random() < self.p else frames

    def __repr__(self) -> str:
        return f"RandomTimeReversal(p={self.p})"


class BothDirections:
    """Two views of each clip: as it is and played backwards. Averaging the model's scores over
    them gives a clip and its reverse the same score: the model cannot tell which way time runs."""

    views = 2

    def __call__(self, frames: Tensor, rng: np.random.Generator) -> Tensor:
        return torch.stack([frames, frames.flip(1)], dim=1).flatten(0, 1)

    def __repr__(self) -> str:
        return "BothDirections()"


class ClipTransform:
    """uint8 clip ``(T, H, W, C)`` -> float ``(C, T, H, W)`` (or ``(V, C, T, H, W)``).

    ``ops`` run in order on uint8 frames; the clip is then scaled to [0, 1] and normalised with
    ``mean``/``std`` (skipped when they are None).
    """

    def __init__(
        self,
        ops: Sequence[ClipOp],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.ops = list(ops)
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32)
        self.num_views = math.prod(op.views for op in self.ops)

    def __call__(self, clip: Tensor | np.ndarray, rng: np.random.Generator | None = None) -> Tensor:
        clip = torch.as_tensor(clip)
        if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(
                f"expected a uint8 clip (T, H, W, 3), got {tuple(clip.shape)} {clip.dtype}"
            )
        rng = rng if rng is not None else np.random.default_rng()
        frames = clip.permute(0, 3, 1, 2).unsqueeze(0)
        for op in self.ops:
            frames = op(frames, rng)
        out = frames.float().div_(255.0)
        if self.mean is not None and self.std is not None:
            out = out.sub_(self.mean.view(3, 1, 1)).div_(self.std.view(3, 1, 1))
        out = out.permute(0, 2, 1, 3, 4).contiguous()
        return out[0] if self.num_views == 1 else out

    def decode_hint(self, force: bool = False) -> dict[str, Any]:
        """Reader arguments that let the decoder do the first resize (empty when there is none).

        The decoder's scaler filters like an antialiased resize, so a resize without antialias
        (torchvision's video preset, whose aliasing the Kinetics weights saw) is left to torch
        unless ``force``.
        """
        first = self.ops[0] if self.ops else None
        if not isinstance(first, Resize) or not (first.antialias or force):
            return {}
        if isinstance(first.size, int):
            return {"short_side": first.size}
        return {"size": first.size}

    def __repr__(self) -> str:
        ops = ", ".join(repr(op) for op in self.ops)
        return f"ClipTransform([{ops}], mean={self.mean}, std={self.std})"


def build_transform(
    preprocess: Mapping[str, Any], train: bool = False, num_crops: int = 1
) -> ClipTransform:
    """The transform a preprocessing dict describes (keys as in docs/architecture.md).

    Training: resize, TSN multi-scale random crop, horizontal flip. Evaluation: resize, then a
    centre crop (``num_crops=1``) or three crops (``num_crops=3``). Optional keys: ``antialias``
    (default True), ``scales`` (multi-scale crop), ``flip`` (flip probability, default 0.5),
    ``colour_jitter`` (training: ``ClipColourJitter`` of that strength; default none) and
    ``direction_blind`` (default False: training plays clips backwards at random, evaluation
    scores every clip both ways, so the model cannot tell a video from its reverse).
    """
    antialias = bool(preprocess.get("antialias", True))
    ops: list[ClipOp] = []
    if preprocess.get("resize") is not None:
        ops.append(Resize(preprocess["resize"], antialias=antialias))
    crop = preprocess.get("crop")
    if train:
        if crop is not None:
            scales = preprocess.get("scales", TSN_SCALES)
            ops.append(MultiScaleCrop(crop, scales=scales, antialias=antialias))
        flip = float(preprocess.get("flip", 0.5))
        if flip > 0:
            ops.append(RandomHorizontalFlip(flip))
        if preprocess.get("colour_jitter"):
            ops.append(ClipColourJitter(float(preprocess["colour_jitter"])))
    elif crop is not None:
        if num_crops == 1:
            ops.append(CenterCrop(crop))
        elif num_crops == 3:
            ops.append(ThreeCrop(crop))
        else:
            raise ConfigError(f"num_crops must be 1 or 3, got {num_crops}")
    if preprocess.get("direction_blind"):
        ops.append(RandomTimeReversal() if train else BothDirections())
    return ClipTransform(ops, preprocess.get("mean"), preprocess.get("std"))


def kinetics_preprocess(clip_len: int = 16) -> dict[str, Any]:
    """torchvision's Kinetics-400 video preset (r3d_18, mc3_18, r2plus1d_18 weights).

    torchvision resizes videos with ``antialias=False`` (its ``VideoClassification`` preset), and
    ``../shared/reference/torchvision_preprocessing.json`` is only reproduced that way.
    """
    return {
        "clip_len": clip_len,
        "sampling": "dense",
        "frame_interval": 1,
        "target_fps": 15,
        "resize": [128, 171],
        "crop": 112,
        "antialias": False,
        "mean": list(KINETICS_MEAN),
        "std": list(KINETICS_STD),
    }


def imagenet_preprocess(clip_len: int = 8) -> dict[str, Any]:
    """torchvision's ImageNet image preset applied to every frame of TSN segments."""
    return {
        "clip_len": clip_len,
        "sampling": "segments",
        "frame_interval": 1,
        "target_fps": None,
        "resize": 256,
        "crop": 224,
        "antialias": True,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


def kinetics_preset(train: bool = False, num_crops: int = 1) -> ClipTransform:
    """Resize to (128, 171), centre crop 112, Kinetics mean/std: torchvision's video preset."""
    return build_transform(kinetics_preprocess(), train=train, num_crops=num_crops)


def imagenet_preset(train: bool = False, num_crops: int = 1) -> ClipTransform:
    """Short side 256 (antialiased), centre crop 224, ImageNet mean/std, frame by frame."""
    return build_transform(imagenet_preprocess(), train=train, num_crops=num_crops)
