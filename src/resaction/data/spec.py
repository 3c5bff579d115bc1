"""What a model takes as input, and how a video is viewed at test time, each defined once.

``ClipSpec`` is a model's input facts (clip length, sampling, frame interval, segment length,
target fps, resize, crop, mean, std, the seconds of video a training clip covered, and the
optional transform settings). It alone builds the
sampler, the transform and the dataset for training and for test views; checkpoints and ONNX
metadata keep it as a plain dict (``to_dict`` / ``from_dict``), so files written before it
existed still load.

``ViewProtocol`` is how a video is scored: ``num_clips`` uniformly spaced clips times
``num_crops`` crops, softmax averaged. The default is 3 clips of 1 centre crop: the protocol
every trained checkpoint has carried and every measured number in ``docs/`` used; on the 2-4 s
clips of our real datasets 3 clips of 16 frames already cover most of the video, and 5 cost 5/3
the time for no measured gain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resaction.data.dataset import VideoClipDataset
from resaction.data.manifests import Manifest, VideoEntry
from resaction.data.sampling import Sampler, build_sampler
from resaction.data.transforms import ClipTransform, build_transform
from resaction.errors import ConfigError
from resaction.io import VideoReader

AGGREGATES = ("mean_softmax",)


@dataclass(frozen=True)
class ViewProtocol:
    """Test views of a video: ``num_clips`` clips x ``num_crops`` crops, ``aggregate``d."""

    num_clips: int = 3
    num_crops: int = 1
    aggregate: str = "mean_softmax"

    def __post_init__(self) -> None:
        if int(self.num_clips) < 1:
            raise ConfigError(f"num_clips must be at least 1, got {self.num_clips}")
        if int(self.num_crops) not in (1, 3):
            raise ConfigError(f"num_crops must be 1 or 3, got {self.num_crops}")
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"unsupported aggregate {self.aggregate!r}; use 'mean_softmax'")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | ViewProtocol | None = None) -> ViewProtocol:
        """The protocol a dict describes; missing keys take the defaults, others are ignored."""
        if isinstance(data, ViewProtocol):
            return data
        names = {f.name for f in fields(cls)}
        given = {key: value for key, value in (data or {}).items() if key in names}
        for key in ("num_clips", "num_crops"):
            if key in given:
                given[key] = int(given[key])
        return cls(**given)

    def updated(self, overrides: Mapping[str, Any] | None) -> ViewProtocol:
        """This protocol with the keys of ``overrides`` (a dict, possibly empty) replaced."""
        return ViewProtocol.from_dict({**self.to_dict(), **(overrides or {})})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops


DEFAULT_VIEWS = ViewProtocol()
SAMPLINGS = ("dense", "segments")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _is_positive(value: Any) -> bool:
    return _is_number(value) and value > 0


def _is_positive_int(value: Any) -> bool:
    return _is_positive(value) and value == int(value)


def _is_sequence_of(value: Any, length: int, kind: type, allow_zero: bool = False) -> bool:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != length:
        return False
    if kind is int:
        return all(_is_positive_int(v) for v in value)
    return all(_is_number(v) and (v > 0 or (allow_zero and v >= 0)) for v in value)


def _check(key: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f"preprocess {key}={value!r} is not valid: give {expected}")


@dataclass(frozen=True)
class ClipSpec:
    """A model's input facts; ``options`` holds the optional transform and sampler settings
    (``antialias``, ``short_video``, ``scales``, ``flip``, ``direction_blind``, ...).

    ``window_s`` is the median seconds of video one training clip covered, recorded by training
    for models that spread their frames over whole videos or segments (None: not recorded, or
    dense clips, whose span is the clip length at the frame step); inference sizes its windows
    with it."""

    clip_len: int = 16
    sampling: str = "dense"
    frame_interval: int = 1
    segment_len: int = 1
    target_fps: float | None = None
    resize: int | Sequence[int] | None = None
    crop: int | Sequence[int] | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    window_s: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse values no sampler or transform can use, naming the key (``-p crop=foo``
        would otherwise fail deep in the first batch, ``resize=-5`` in every video read)."""
        for key in ("clip_len", "frame_interval", "segment_len"):
            _check(key, getattr(self, key), _is_positive_int(getattr(self, key)), "an integer >= 1")
        if self.clip_len % self.segment_len:
            raise ConfigError(
                f"preprocess clip_len={self.clip_len} is not a whole number of segments of "
                f"segment_len={self.segment_len} frames"
            )
        _check("sampling", self.sampling, self.sampling in SAMPLINGS, "'dense' or 'segments'")
        fps = self.target_fps
        _check("target_fps", fps, fps is None or _is_positive(fps), "a number > 0, or null")
        for key in ("resize", "crop"):
            value = getattr(self, key)
            ok = value is None or _is_positive_int(value) or _is_sequence_of(value, 2, int)
            _check(key, value, ok, "an integer >= 1 (short side) or [height, width]")
        for key in ("mean", "std"):
            value = getattr(self, key)
            ok = value is None or _is_sequence_of(value, 3, float, allow_zero=key == "mean")
            _check(key, value, ok, "three numbers (R, G, B)" + (" > 0" if key == "std" else ""))
        flip = self.options.get("flip", 0.5)
        _check("flip", flip, _is_number(flip) and 0 <= flip <= 1, "a probability in [0, 1]")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | ClipSpec) -> ClipSpec:
        """The spec of a preprocessing dict (as stored in checkpoints and ONNX metadata)."""
        if isinstance(data, ClipSpec):
            return data
        typed = {f.name for f in fields(cls)} - {"options"}
        values = {key: value for key, value in data.items() if key in typed}
        for key in ("clip_len", "frame_interval", "segment_len"):
            if values.get(key) is None:
                values.pop(key, None)
            elif _is_number(values[key]) and values[key] == int(values[key]):
                values[key] = int(values[key])
        if _is_number(values.get("window_s")):
            values["window_s"] = float(values["window_s"])
        options = {key: value for key, value in data.items() if key not in typed}
        return cls(**values, options=options)

    def facts(self) -> dict[str, Any]:
        """The typed input facts as plain data (``segment_len`` only where it is not 1,
        ``window_s`` only where it is known)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        for key in ("mean", "std"):
            if data[key] is not None:
                data[key] = list(data[key])
        if data["segment_len"] == 1:
            del data["segment_len"]
        if data["window_s"] is None:
            del data["window_s"]
        return data

    def to_dict(self) -> dict[str, Any]:
        """The plain preprocessing dict: the facts and the options."""
        return {**self.facts(), **self.options}

    def updated(self, overrides: Mapping[str, Any]) -> ClipSpec:
        """This spec with the keys of ``overrides`` replaced (typed ones or options)."""
        return ClipSpec.from_dict({**self.to_dict(), **overrides})

    def with_options(self, **options: Any) -> ClipSpec:
        return replace(self, options={**self.options, **options})

    def sampler(self, train: bool, views: ViewProtocol | None = None) -> Sampler:
        """A random clip (training) or the protocol's uniform clips (test views)."""
        protocol = (views or DEFAULT_VIEWS).to_dict()
        return build_sampler(self.to_dict(), protocol, train=train)

    def transform(self, train: bool, views: ViewProtocol | None = None) -> ClipTransform:
        """Training augmentation, or the protocol's crops at test time."""
        crops = 1 if train else (views or DEFAULT_VIEWS).num_crops
        return build_transform(self.to_dict(), train=train, num_crops=crops)

    def dataset(
        self,
        entries: Manifest | Sequence[VideoEntry],
        train: bool,
        views: ViewProtocol | None = None,
        **options: Any,
    ) -> VideoClipDataset:
        """Clips of ``entries`` read, sampled and transformed as this spec says; test datasets
        give every view of a video as one item."""
        if not train:
            options.setdefault("multi_view", True)
        return VideoClipDataset(
            entries, self.sampler(train, views), self.transform(train, views), **options
        )

    def read_views(self, video: str | Path, views: ViewProtocol | None = None) -> torch.Tensor:
        """A video's test views, (V, C, T, H, W) float: clips x crops, clip-major. The clips'
        frames are decoded in one pass, the decoder doing the first resize where it can."""
        views = views or DEFAULT_VIEWS
        sampler, transform = self.sampler(False, views), self.transform(False, views)
        rng = np.random.default_rng(0)
        with VideoReader(video, **transform.decode_hint()) as reader:
            clips = sampler(reader.num_frames, reader.fps, rng)
            wanted, where = np.unique(np.concatenate(clips), return_inverse=True)
            frames = reader.get_frames(wanted.tolist())
        picked = frames[torch.from_numpy(where.astype(np.int64))]
        out: list[torch.Tensor] = []
        for clip in picked.split([len(c) for c in clips]):
            viewed = transform(clip, rng)
            out.extend(viewed if transform.num_views > 1 else [viewed])
        return torch.stack(out)
