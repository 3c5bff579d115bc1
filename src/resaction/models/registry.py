"""The model registry, after timm: ``@register_model`` builders, ``create_model``, ``list_models``.

Each builder carries its metadata in code (``ModelInfo``), so the docs table, the CLI and the
preprocessing all read it from one place. Parameter counts and GFLOPs are measured from the built
model (``FlopCounterMode``), never typed in.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from resaction.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class ModelInfo:
    """What a model expects and where its weights come from."""

    name: str
    family: str
    clip_len: int
    input_size: int
    resize: int
    fps: float | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    weights: tuple[str, ...] = ()
    description: str = ""
    default_num_classes: int = 400
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_INFOS: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    clip_len: int,
    input_size: int,
    resize: int | None = None,
    fps: float | None = None,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    weights: tuple[str, ...] = (),
    description: str = "",
    default_num_classes: int = 400,
    **extra: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``fn(num_classes, **kwargs) -> nn.Module`` under its function name."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        _INFOS[name] = ModelInfo(
            name=name,
            family=family,
            clip_len=clip_len,
            input_size=input_size,
            resize=resize if resize is not None else round(input_size * 128 / 112),
            fps=fps,
            mean=mean,
            std=std,
            weights=weights,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            default_num_classes=default_num_classes,
            extra=dict(extra),
        )
        return builder

    return decorate


def _ensure_loaded() -> None:
    import resaction.models  # noqa: F401  (importing the package registers every family)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    _ensure_loaded()
    return sorted(name for name in _BUILDERS if fnmatch.fnmatch(name, pattern))


def _check_name(name: str) -> None:
    _ensure_loaded()
    if name not in _BUILDERS:
        close = [n for n in _BUILDERS if name.split("_")[0] in n][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelError(
            f"unknown model {name!r}{hint}; `resaction models` lists the available ones"
        )


def model_info(name: str) -> ModelInfo:
    _check_name(name)
    return _INFOS[name]


def create_model(
    name: str,
    num_classes: int | None = None,
    weights: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, optionally loading weights.

    ``weights`` is None/"none", a named weight set of the model (for example "imagenet" or
    "kinetics400"), or a path to a local checkpoint. With named weights and no ``num_classes``
    the model keeps the weights' classes; with a different ``num_classes`` the classifier is
    replaced and the replacement is reported (``model.load_report``).
    """
    _check_name(name)
    info = _INFOS[name]
    builder = _checked_builder(name)
    if weights in (None, "", "none", "None"):
        model = builder(num_classes=num_classes or info.default_num_classes, **kwargs)
        model.load_report = None
    else:
        from resaction.models.weights import build_with_weights

        model = build_with_weights(name, builder, info, num_classes, weights, kwargs)
    model.model_name = name
    return model


def _checked_builder(name: str) -> Callable[..., nn.Module]:
    """The builder, with an unknown option reported as a ``ModelError`` naming the model."""
    builder = _BUILDERS[name]

    @functools.wraps(builder)
    def build(**kwargs: Any) -> nn.Module:
        try:
            return builder(**kwargs)
        except TypeError as error:
            message = str(error)
            if "unexpected keyword argument" not in message and "multiple values" not in message:
                raise
            option = message.rsplit(" ", 1)[-1]
            raise ModelError(f"model {name} has no option {option}") from None

    return build


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
    from torch.utils.flop_counter import FlopCounterMode

    with device:
        model = _BUILDERS[name](num_classes=_INFOS[name].default_num_classes).eval()
        clip = torch.zeros(shape)
    counter = FlopCounterMode(display=False)
    no_onednn = torch.backends.mkldnn.flags(
        enabled=False, deterministic=None, allow_tf32=None, fp32_precision=None
    )
    with torch.no_grad(), no_onednn, counter:
        model(clip)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()


def default_preprocess(name: str) -> dict[str, Any]:
    """The preprocessing dict (see docs/architecture.md) a model expects by default."""
    info = model_info(name)
    preprocess = {
        "clip_len": info.clip_len,
        "sampling": info.extra.get("sampling", "dense"),
        "frame_interval": info.extra.get("frame_interval", 1),
        "target_fps": info.fps,
        "resize": info.resize,
        "crop": info.input_size,
        "mean": list(info.mean),
        "std": list(info.std),
    }
    if info.extra.get("segment_len", 1) != 1:
        preprocess["segment_len"] = info.extra["segment_len"]
    return preprocess
