"""The model catalog, after timm's registry: ``@register_model`` builders with their metadata.

Each builder carries its metadata in code (``ModelInfo``), so the docs table, the CLI and the
preprocessing all read it from one place: what the model reads (``InputSpec``, the one home of a
model's input facts), which weight files it offers (declared beside the builder, ``files=``, or
borrowed from its ``trunk``) and how a state dict is converted for it (``convert``, the family's
conversion function). Parameter counts and GFLOPs are measured from the built model
(``FlopCounterMode``), never typed in.

This module builds models without weights; ``factory.create_model`` adds the weights. It imports no
weight loading, so the loaders can read the catalog without a cycle.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resaction.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from resaction.errors import ModelError, WeightsError

Triple = tuple[float, float, float]
StateDict = dict[str, torch.Tensor]
Conversion = Callable[[StateDict, nn.Module], StateDict]
"""A family's conversion function: ``convert(state_dict, model)`` returns the state dict in the
model's names and shapes (I3D inflates 2D kernels, a difference model adapts an RGB first conv)."""


@dataclass(frozen=True)
class WeightSpec:
    """One weight file: where it is, its hash prefix, what its outputs mean and what it expects."""

    url: str
    sha256_prefix: str
    classes: tuple[str, ...] | None
    num_classes: int
    preprocess: dict[str, Any]
    source: str

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def cache_path(self) -> Path:
        """Where torch.hub keeps (and looks for) the file."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    def class_names(self) -> list[str] | None:
        return list(self.classes) if self.classes else None


@dataclass(frozen=True)
class InputSpec:
    """What a model reads: which frames form a clip and how they are scaled.

    ``sampling`` is "dense" (``clip_len`` frames ``frame_interval`` apart, or at ``fps``) or
    "segments" (the clip split in equal segments, ``segment_len`` consecutive frames from each).
    """

    clip_len: int
    crop: int
    resize: int
    sampling: str = "dense"
    frame_interval: int = 1
    segment_len: int = 1
    fps: float | None = None
    mean: Triple = IMAGENET_MEAN
    std: Triple = IMAGENET_STD

    def preprocess(self) -> dict[str, Any]:
        """The preprocessing dict (see docs/architecture.md) that checkpoints and ONNX files store
        and the data pipeline reads; ``segment_len`` only when a segment has several frames."""
        preprocess = {
            "clip_len": self.clip_len,
            "sampling": self.sampling,
            "frame_interval": self.frame_interval,
            "target_fps": self.fps,
            "resize": self.resize,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
        }
        if self.segment_len != 1:
            preprocess["segment_len"] = self.segment_len
        return preprocess


@dataclass(frozen=True)
class ModelInfo:
    """What a model expects and where its weights come from.

    ``weights``: the weight tags it offers. ``trunk``: the registered 2D ResNet the model is built
    on (itself, for a plain ResNet), whose files serve the tags the model has no file of its own
    for; ``inflation``: how their 2D kernels become 3D, for a 3D model seeded by a 2D trunk.
    ``modality``: what the trunk sees of a segment ("rgb", or TSN's frame differences, see
    ``modality.py``). ``convert``: the family's conversion function, applied to every state dict
    loaded into the model.
    """

    name: str
    family: str
    input: InputSpec
    weights: tuple[str, ...] = ()
    trunk: str | None = None
    inflation: str | None = None
    modality: str = "rgb"
    description: str = ""
    default_num_classes: int = 400
    convert: Conversion | None = field(default=None, compare=False, repr=False)

    @property
    def clip_len(self) -> int:
        return self.input.clip_len

    @property
    def input_size(self) -> int:
        return self.input.crop

    @property
    def resize(self) -> int:
        return self.input.resize

    @property
    def fps(self) -> float | None:
        return self.input.fps

    @property
    def mean(self) -> Triple:
        return self.input.mean

    @property
    def std(self) -> Triple:
        return self.input.std

    def model_options(self) -> dict[str, Any]:
        """Builder options the metadata fixes: a difference model is built for its modality and
        segment length, so the builder never repeats them."""
        if self.modality == "rgb":
            return {}
        return {"modality": self.modality, "segment_len": self.input.segment_len}

    @property
    def extra(self) -> dict[str, Any]:
        """The facts that are not defaults, under the names older code reads (``sampling``,
        ``frame_interval``, ``segment_len``, ``modality``, ``backbone`` or ``inflate_from``)."""
        facts: dict[str, Any] = {
            "sampling": self.input.sampling,
            "frame_interval": self.input.frame_interval,
            "segment_len": self.input.segment_len,
            "modality": self.modality,
        }
        defaults = {"sampling": "dense", "frame_interval": 1, "segment_len": 1, "modality": "rgb"}
        extra = {key: value for key, value in facts.items() if value != defaults[key]}
        if self.trunk and self.inflation:
            extra.update(inflate_from=self.trunk, inflation=self.inflation)
        elif self.trunk:
            extra["backbone"] = self.trunk
        return extra


Builder = Callable[..., nn.Module]

_BUILDERS: dict[str, Builder] = {}
_INFOS: dict[str, ModelInfo] = {}
WEIGHTS: dict[str, dict[str, WeightSpec]] = {}
"""Model -> weight tag -> file, for the models that have files of their own (``files=``)."""


def register_model(
    *,
    family: str,
    clip_len: int,
    input_size: int,
    resize: int | None = None,
    fps: float | None = None,
    mean: Triple = IMAGENET_MEAN,
    std: Triple = IMAGENET_STD,
    sampling: str = "dense",
    frame_interval: int = 1,
    segment_len: int = 1,
    modality: str = "rgb",
    files: Mapping[str, WeightSpec] | None = None,
    weights: tuple[str, ...] = (),
    trunk: str | None = None,
    inflation: str | None = None,
    convert: Conversion | None = None,
    description: str = "",
    default_num_classes: int = 400,
    name: str | None = None,
) -> Callable[[Builder], Builder]:
    """Register a builder ``fn(num_classes, **options) -> nn.Module`` under its function name
    (or ``name``, for a builder that is no named function, e.g. a ``functools.partial``).

    ``files``: the model's own weight files by tag; ``weights``: the tags it offers (default: those
    of ``files``), each served by its own file or else by its ``trunk``'s. ``description``: the
    first line of the builder's docstring unless given.
    """

    def decorate(builder: Builder) -> Builder:
        model_name = name or builder.__name__
        if model_name in _BUILDERS:
            raise ValueError(f"model {model_name!r} is registered twice")
        spec = InputSpec(
            clip_len=clip_len,
            crop=input_size,
            resize=resize if resize is not None else round(input_size * 128 / 112),
            sampling=sampling,
            frame_interval=frame_interval,
            segment_len=segment_len,
            fps=fps,
            mean=mean,
            std=std,
        )
        _BUILDERS[model_name] = builder
        if files:
            WEIGHTS[model_name] = dict(files)
        _INFOS[model_name] = ModelInfo(
            name=model_name,
            family=family,
            input=spec,
            weights=weights or tuple(files or ()),
            trunk=trunk,
            inflation=inflation,
            modality=modality,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            default_num_classes=default_num_classes,
            convert=convert,
        )
        return builder

    return decorate


def register_on_trunks(
    model_class: Callable[..., nn.Module],
    meta: Mapping[str, Any],
    depths: tuple[int, ...],
    description: str,
    name: str,
    **fixed: Any,
) -> None:
    """Register ``model_class(depth, num_classes, **fixed, **options)`` on each image ResNet trunk
    ``resnet{depth}``, as ``name`` and with ``description`` (``{depth}`` filled in), offering the
    trunk's weights unless ``meta`` names them; the trunks must be registered first."""
    for depth in depths:
        trunk = f"resnet{depth}"
        weights = meta["weights"] if "weights" in meta else model_info(trunk).weights
        register_model(
            **{**meta, "weights": weights},
            name=name.format(depth=depth),
            trunk=trunk,
            description=description.format(depth=depth),
        )(functools.partial(model_class, depth, **fixed))


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(name for name in _BUILDERS if fnmatch.fnmatch(name, pattern))


def model_info(name: str) -> ModelInfo:
    if name not in _INFOS:
        close = [n for n in _INFOS if name.split("_")[0] in n][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelError(
            f"unknown model {name!r}{hint}; `resaction models` lists the available ones"
        )
    return _INFOS[name]


def default_preprocess(name: str) -> dict[str, Any]:
    """The preprocessing dict (see docs/architecture.md) a model expects by default."""
    return model_info(name).input.preprocess()


def weight_spec(name: str, tag: str) -> tuple[str, WeightSpec]:
    """The model whose file serves ``name``'s weights ``tag``, and that file's spec.

    The model's own file if it has one, else its trunk's.
    """
    info = model_info(name)
    for owner in (name, info.trunk):
        if owner and tag in WEIGHTS.get(owner, {}):
            return owner, WEIGHTS[owner][tag]
    offered = ", ".join(info.weights) or "none"
    raise WeightsError(
        f"model {name} has no weights named {tag!r} (named weights: {offered}); "
        "or pass the path of a checkpoint file"
    )


def build_model(name: str, num_classes: int | None = None, **options: Any) -> nn.Module:
    """The registered model with initial weights; an unknown option is a ``ModelError``.

    Options the metadata fixes (``ModelInfo.model_options``) are passed unless given.
    """
    info = model_info(name)
    options = {**info.model_options(), **options}
    try:
        model = _BUILDERS[name](num_classes=num_classes or info.default_num_classes, **options)
    except TypeError as error:
        message = str(error)
        if "unexpected keyword argument" not in message and "multiple values" not in message:
            raise
        option = message.rsplit(" ", 1)[-1]
        raise ModelError(f"model {name} has no option {option}") from None
    model.model_name = name
    return model


@dataclass(frozen=True)
class ModelStats:
    params: int
    gflops: float
    input_shape: tuple[int, ...]


@functools.cache
def model_stats(name: str) -> ModelStats:
    """Parameters and forward GFLOPs (2 FLOPs per multiply-add) at the default input, batch 1,
    measured on the built model, never typed in; cached for the process."""
    info = model_info(name)
    shape = (1, 3, info.clip_len, info.input_size, info.input_size)
    try:
        params, flops = _count(name, shape, torch.device("meta"))
    except Exception:  # a model that cannot run without data is counted on real tensors
        params, flops = _count(name, shape, torch.device("cpu"))
    return ModelStats(params=params, gflops=flops / 1e9, input_shape=shape)


def _count(name: str, shape: tuple[int, ...], device: torch.device) -> tuple[int, int]:
    """Parameters and FLOPs (2 per multiply-add) of one forward pass.

    On the meta device no data is touched, so counting is instant; it also makes RNNs countable:
    on CPU an LSTM runs as one oneDNN kernel that FlopCounterMode does not see, so there the
    oneDNN path is switched off and the LSTM decomposes into the matmuls it counts.
    """
    with device:
        model = build_model(name).eval()
        clip = torch.zeros(shape)
    counter = FlopCounterMode(display=False)
    no_onednn = torch.backends.mkldnn.flags(
        enabled=False, deterministic=None, allow_tf32=None, fp32_precision=None
    )
    with torch.no_grad(), no_onednn, counter:
        model(clip)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()
