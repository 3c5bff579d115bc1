"""Weights: the table of named weight files, their download, and loading checkpoints into models.

Named weights are torchvision's official files, fetched by ``torch.hub`` into its cache and checked
against the SHA-256 prefix in their names. A model whose own file is not in the table borrows the
one of its trunk (``backbone=`` or ``inflate_from=`` in its registry entry): a TSN gets ResNet-50's
ImageNet weights without their classifier, an I3D gets them inflated to 3D.

Loading (named or a local file) keeps every tensor that fits, drops a classifier of another shape
and reports what it skipped (``LoadReport``). A file of another architecture is refused with one
line that names both, instead of a model that silently runs with random layers.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resaction.errors import ModelError, WeightsError
from resaction.models.layers import module_name
from resaction.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    ModelInfo,
    create_model,
    default_preprocess,
    list_models,
    model_info,
)

logger = logging.getLogger(__name__)

TORCHVISION_URL = "https://download.pytorch.org/models/"
# A checkpoint sharing less than this much of a model is another architecture, not a variant.
MAX_UNEXPECTED_FRACTION = 0.1


@cache
def kinetics400_classes() -> tuple[str, ...]:
    """The 400 Kinetics class names in the order of torchvision's Kinetics-400 weights' outputs."""
    text = resources.files("resaction.models").joinpath("kinetics400_classes.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


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


def _imagenet(file: str, resize: int, source: str) -> WeightSpec:
    preprocess = {"resize": resize, "crop": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    return WeightSpec(
        url=TORCHVISION_URL + file,
        sha256_prefix=file.rsplit("-", 1)[1].split(".")[0],
        classes=None,
        num_classes=1000,
        preprocess={k: list(v) if isinstance(v, tuple) else v for k, v in preprocess.items()},
        source=source,
    )


def _kinetics(file: str, source: str) -> WeightSpec:
    return WeightSpec(
        url=TORCHVISION_URL + file,
        sha256_prefix=file.rsplit("-", 1)[1].split(".")[0],
        classes=kinetics400_classes(),
        num_classes=400,
        preprocess={
            "clip_len": 16,
            "sampling": "dense",
            "frame_interval": 1,
            "target_fps": 15,
            "resize": [128, 171],
            "crop": 112,
            "antialias": False,
            "mean": list(KINETICS_MEAN),
            "std": list(KINETICS_STD),
        },
        source=source,
    )


_TV = "torchvision"
_K400 = "Kinetics-400 top-1/top-5 (video, 5 clips x 16 frames at 15 fps, 112 px)"
# Architecture -> weight tag -> file. Accuracies are torchvision's published ones.
WEIGHTS: dict[str, dict[str, WeightSpec]] = {
    "resnet18": {
        "imagenet": _imagenet("resnet18-f37072fd.pth", 256, f"{_TV} IMAGENET1K_V1, top-1 69.76"),
    },
    "resnet34": {
        "imagenet": _imagenet("resnet34-b627a593.pth", 256, f"{_TV} IMAGENET1K_V1, top-1 73.31"),
    },
    "resnet50": {
        "imagenet": _imagenet("resnet50-0676ba61.pth", 256, f"{_TV} IMAGENET1K_V1, top-1 76.13"),
        "imagenet_v2": _imagenet("resnet50-11ad3fa6.pth", 232, f"{_TV} IMAGENET1K_V2, top-1 80.86"),
    },
    "resnet101": {
        "imagenet": _imagenet("resnet101-63fe2227.pth", 256, f"{_TV} IMAGENET1K_V1, top-1 77.37"),
        "imagenet_v2": _imagenet(
            "resnet101-cd907fc2.pth", 232, f"{_TV} IMAGENET1K_V2, top-1 81.89"
        ),
    },
    "r3d_18": {"kinetics400": _kinetics("r3d_18-b3b3357e.pth", f"{_TV}, {_K400} 63.20/83.48")},
    "mc3_18": {"kinetics400": _kinetics("mc3_18-a90a0ba3.pth", f"{_TV}, {_K400} 63.96/84.13")},
    "r2plus1d_18": {
        "kinetics400": _kinetics("r2plus1d_18-91a641e6.pth", f"{_TV}, {_K400} 67.46/86.18")
    },
}


@dataclass
class LoadReport:
    """What loading weights into a model did.

    ``dropped``: checkpoint tensors not loaded because their shape differs (the classifier).
    ``missing``: model tensors the checkpoint did not provide (left at their initial values).
    ``unexpected``: checkpoint tensors the model has no place for.
    ``replaced_head``: the classifier is newly initialised, not loaded.
    ``classes``: the class names the loaded classifier predicts, when known and kept.
    """

    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    replaced_head: bool = False
    source: str = ""
    classes: list[str] | None = None

    def summary(self) -> str:
        parts = [f"loaded {self.source}"]
        if self.replaced_head:
            parts.append("new classifier (" + ", ".join(self.dropped or ["not in file"]) + ")")
        if self.missing:
            parts.append(f"{len(self.missing)} tensors not in file: {_preview(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unused: {_preview(self.unexpected)}")
        return "; ".join(parts)


def _preview(keys: list[str], limit: int = 4) -> str:
    more = f", ... (+{len(keys) - limit})" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


# ---------------------------------------------------------------------------- named weights


def weight_spec(name: str, tag: str) -> tuple[str, WeightSpec]:
    """The architecture whose file serves ``name``'s weights ``tag``, and that file's spec.

    The model's own file if the table has one, else its trunk's (``backbone``/``inflate_from``).
    """
    info = model_info(name)
    for arch in (name, info.extra.get("backbone"), info.extra.get("inflate_from")):
        if arch and tag in WEIGHTS.get(arch, {}):
            return arch, WEIGHTS[arch][tag]
    offered = ", ".join(info.weights) or "none"
    raise WeightsError(
        f"model {name} has no weights named {tag!r} (named weights: {offered}); "
        "or pass the path of a checkpoint file"
    )


def weights_preprocess(name: str, tag: str | None) -> dict[str, Any]:
    """The preprocessing dict for ``name`` with weights ``tag``.

    The model's own file brings its whole preprocessing (Kinetics: 16 frames at 15 fps, 128x171,
    crop 112); a trunk's file only its normalisation, since the model's clip shape is its own.
    """
    preprocess = default_preprocess(name)
    if tag in (None, "", "none"):
        return preprocess
    arch, spec = weight_spec(name, tag)
    if arch == name:
        preprocess.update(spec.preprocess)
    else:
        preprocess.update(mean=spec.preprocess["mean"], std=spec.preprocess["std"])
    return preprocess


def training_preprocess(name: str, weights: str | None) -> dict[str, Any]:
    """The preprocessing to fine-tune ``name`` from ``weights`` with: named weights bring their
    own (``weights_preprocess``), a file or no weights the model's default."""
    if weights in (None, "", "none") or _is_weights_file(str(weights)):
        return default_preprocess(name)
    return weights_preprocess(name, str(weights))


_VERIFIED: set[tuple[str, int, float]] = set()


def _verify_cached(path: Path, spec: WeightSpec) -> None:
    """torch.hub checks the hash only when downloading; a file copied in by hand is checked here."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key in _VERIFIED:
        return
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(spec.sha256_prefix):
        raise WeightsError(
            f"{path} is not the expected file (its SHA-256 starts {digest.hexdigest()[:8]}, "
            f"expected {spec.sha256_prefix}); delete it and download {spec.url} again"
        )
    _VERIFIED.add(key)


def fetch_state_dict(spec: WeightSpec) -> dict[str, torch.Tensor]:
    """The file's state dict, downloaded into the torch hub cache on first use and hash-checked."""
    path = spec.cache_path()
    if path.is_file():
        _verify_cached(path, spec)
    try:
        state = torch.hub.load_state_dict_from_url(
            spec.url, check_hash=True, map_location="cpu", weights_only=True
        )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", None) or error
        raise WeightsError(
            f"cannot download {spec.file_name} ({reason}); without network, copy the file from "
            f"{spec.url} to {path}"
        ) from None
    except RuntimeError as error:
        if "hash" not in str(error):
            raise WeightsError(f"cannot load {path}: {_first_line(error)}") from None
        raise WeightsError(
            f"the file downloaded from {spec.url} does not match its SHA-256 prefix "
            f"{spec.sha256_prefix} ({_first_line(error)}); the download is corrupt or "
            "the server sent another file"
        ) from None
    except Exception as error:  # unpickling and I/O raise many types
        raise WeightsError(f"cannot load {path}: {_first_line(error)}") from None
    return dict(state)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def load_2d_imagenet_state_dict(depth: int, version: str = "imagenet") -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet-``depth`` state dict; ``version`` "imagenet" or "imagenet_v2".

    The 3D families inflate it (``inflation.inflate_state_dict``) to seed I3D models.
    """
    spec = WEIGHTS.get(f"resnet{depth}", {}).get(version)
    if spec is None:
        have = [
            f"{arch} {tag}" for arch, tags in WEIGHTS.items() for tag in tags if "resnet" in arch
        ]
        raise WeightsError(
            f"no ImageNet weights {version!r} for ResNet-{depth}; available: {', '.join(have)}"
        )
    return fetch_state_dict(spec)


# ---------------------------------------------------------------------------- local files

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class CheckpointContents:
    state_dict: dict[str, torch.Tensor]
    model_name: str | None = None
    classes: list[str] | None = None


def read_weights_file(path: str | Path) -> CheckpointContents:
    """A state dict from any of: a resaction checkpoint, a plain state dict, a dict with a
    "state_dict" or "model" entry (``.pth``/``.pt``), or ``.safetensors``; read without pickle code.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            payload: Any = load_file(path, device="cpu")
        else:
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many types for foreign files
        raise WeightsError(
            f"{path} cannot be read as weights (corrupt, or not a torch/safetensors file): "
            f"{_first_line(error)}"
        ) from None
    model_name, classes = None, None
    if isinstance(payload, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(payload.get(key), Mapping):
                model_name = payload.get("model_name") if key == "state_dict" else None
                classes = payload.get("classes") if key == "state_dict" else None
                payload = payload[key]
                break
    tensors = (
        {k: v for k, v in payload.items() if isinstance(v, torch.Tensor)}
        if isinstance(payload, Mapping)
        else {}
    )
    if not tensors:
        raise WeightsError(
            f"{path} holds no state dict (expected tensors, or a dict with 'state_dict' or 'model')"
        )
    return CheckpointContents(_strip_wrappers(tensors), model_name, classes)


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a DDP ("module.") or torch.compile ("_orig_mod.") prefix shared by every key."""
    for prefix in _WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


# ---------------------------------------------------------------------------- loading


def _head_prefixes(model: nn.Module) -> tuple[str, tuple[str, ...]]:
    """The classifier's key prefix and the prefixes of every head module (classifier included)."""
    classifier = module_name(model, model.get_classifier()) + "."
    heads = getattr(model, "head_modules", lambda: [model.get_classifier()])()
    return classifier, tuple(module_name(model, m) + "." for m in heads)


def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def identify_architecture(state: Mapping[str, torch.Tensor]) -> str | None:
    """The registered model whose tensors (classifier aside) the state dict matches, if any."""
    wanted = {k: tuple(v.shape) for k, v in state.items() if not _is_counter(k)}
    scores = {
        name: sum(wanted.get(k) == shape for k, shape in shapes.items())
        / max(len(wanted), len(shapes), 1)
        for name, shapes in _registered_shapes(tuple(list_models())).items()
    }
    if not scores:
        return None
    # Models sharing a trunk tie (resnet18, tsn_resnet18, tsm_resnet18): name the plainest.
    best = min(scores, key=lambda name: (-scores[name], len(name), name))
    return best if scores[best] >= 0.9 else None


@cache
def _registered_shapes(names: tuple[str, ...]) -> dict[str, dict[str, tuple[int, ...]]]:
    shapes = {}
    for name in names:
        try:
            with torch.device("meta"):
                model = create_model(name)
        except Exception:  # a builder that cannot run on the meta device is simply not a candidate
            continue
        classifier = module_name(model, model.get_classifier()) + "."
        shapes[name] = {
            k: tuple(v.shape)
            for k, v in model.state_dict().items()
            if not k.startswith(classifier) and not _is_counter(k)
        }
    return shapes


def _other_architecture(state: Mapping[str, torch.Tensor], recorded: str | None) -> str:
    name = recorded or identify_architecture(state)
    return name if name else "another architecture"


def _prepare_for(model: nn.Module, name: str | None, state: dict[str, torch.Tensor]) -> dict:
    """Conversions a model declares: ``inflate_from`` inflates 2D kernels; an RGB-difference
    model turns an RGB first convolution into one for its stacked differences."""
    state = _adapt_first_conv(model, state)
    info: ModelInfo | None = None
    if name:
        try:
            info = model_info(name)
        except ModelError:
            info = None
    if info is None or "inflate_from" not in info.extra:
        return state
    from resaction.models.inflation import inflate_state_dict

    return inflate_state_dict(state, model, mode=info.extra.get("inflation", "mean"))


def _adapt_first_conv(model: nn.Module, state: dict[str, torch.Tensor]) -> dict:
    modality = getattr(model, "modality", "rgb")
    weight = state.get("conv1.weight")
    target = getattr(getattr(model, "conv1", None), "weight", None)
    if modality == "rgb" or weight is None or target is None or weight.dim() != 4:
        return state
    if weight.shape[1] != 3 or tuple(weight.shape) == tuple(target.shape):
        return state
    from resaction.models.modality import adapt_first_conv

    return {**state, "conv1.weight": adapt_first_conv(weight, modality, model.segment_len)}


def apply_state_dict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    model_name: str | None = None,
    source_model: str | None = None,
    classes: list[str] | None = None,
) -> LoadReport:
    """Load every tensor of ``state`` that fits ``model``; drop a classifier of another shape.

    Raises ``WeightsError`` naming both architectures when the file is of another network: a
    trunk tensor of another shape or missing, or more than a tenth of the file unused.
    """
    name = model_name or getattr(model, "model_name", None) or type(model).__name__
    original = dict(state)
    try:
        state = _prepare_for(model, model_name or getattr(model, "model_name", None), original)
    except WeightsError as error:
        other = _other_architecture(original, source_model)
        raise WeightsError(f"{source} holds weights of {other}, not {name}: {error}") from None
    target = model.state_dict()
    classifier, heads = _head_prefixes(model)
    keep_classifier = _classifier_fits(model, state)
    fits: dict[str, torch.Tensor] = {}
    dropped, wrong_shape, unexpected = [], [], []
    for key, tensor in state.items():
        if key not in target:
            if not _is_counter(key):
                unexpected.append(key)
        elif key.startswith(classifier) and not keep_classifier:
            dropped.append(key)
        elif tuple(tensor.shape) != tuple(target[key].shape):
            (dropped if key.startswith(classifier) else wrong_shape).append(key)
        else:
            fits[key] = tensor
    missing = [k for k in target if k not in fits and k not in dropped and not _is_counter(k)]
    trunk_missing = [k for k in missing if not k.startswith(heads)]
    counted = [k for k in state if not _is_counter(k)]
    reason = None
    if wrong_shape:
        key = wrong_shape[0]
        reason = (
            f"{len(wrong_shape)} tensors differ in shape, e.g. {key} "
            f"{_shape(state[key])} in the file vs {_shape(target[key])} in the model"
        )
    elif trunk_missing:
        reason = f"{len(trunk_missing)} tensors missing from the file, e.g. {trunk_missing[0]}"
    elif len(unexpected) > MAX_UNEXPECTED_FRACTION * max(len(counted), 1):
        reason = f"{len(unexpected)} of its {len(counted)} tensors unused, e.g. {unexpected[0]}"
    if reason:
        other = _other_architecture(original, source_model)
        if other == name:
            other = f"another variant of {name}"
        raise WeightsError(f"{source} holds weights of {other}, not {name}: {reason}")
    model.load_state_dict(fits, strict=False)
    replaced = any(k.startswith(classifier) for k in dropped + missing)
    report = LoadReport(
        dropped=dropped,
        missing=missing,
        unexpected=unexpected,
        replaced_head=replaced,
        source=source,
        classes=None if replaced else classes,
    )
    log = logger.warning if unexpected or (missing and not replaced) else logger.info
    log("%s: %s", name, report.summary())
    return report


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    *,
    model_name: str | None = None,
) -> LoadReport:
    """Load named weights (for a registered model), a checkpoint file or a state dict into
    ``model`` in place, keeping its classifier size; see ``apply_state_dict``."""
    name = model_name or getattr(model, "model_name", None)
    if isinstance(source, Mapping):
        return apply_state_dict(model, source, source="the state dict", model_name=name)
    if name and not Path(source).expanduser().exists() and _looks_like_tag(str(source)):
        arch, spec = weight_spec(name, str(source))
        return apply_state_dict(
            model,
            fetch_state_dict(spec),
            source=spec.file_name,
            model_name=name,
            source_model=arch,
            classes=spec.class_names() if arch == name else None,
        )
    contents = read_weights_file(source)
    return apply_state_dict(
        model,
        contents.state_dict,
        source=str(source),
        model_name=name,
        source_model=contents.model_name,
        classes=contents.classes,
    )


def _looks_like_tag(text: str) -> bool:
    return "/" not in text and "\\" not in text and "." not in text


def _is_weights_file(weights: str) -> bool:
    """Whether ``--weights`` names a file rather than a tag such as ``kinetics400``."""
    return Path(weights).expanduser().exists() or not _looks_like_tag(weights)


def build_with_weights(
    name: str,
    builder: Callable[..., nn.Module],
    info: ModelInfo,
    num_classes: int | None,
    weights: str,
    kwargs: dict[str, Any],
) -> nn.Module:
    """``create_model``'s path with weights: build with the right classifier size, then load.

    Without ``num_classes`` the model takes the class count of the weights' own classifier (the
    file's, for a checkpoint; a trunk's classifier is never kept, so then the registry default).
    """
    weights = str(weights)
    path = Path(weights).expanduser()
    if _is_weights_file(weights):
        contents = read_weights_file(path)
        state, source, source_model = contents.state_dict, str(path), contents.model_name
        classes = contents.classes
        keep_classes = True
    else:
        source_model, spec = weight_spec(name, weights)
        state, source = fetch_state_dict(spec), spec.file_name
        keep_classes = source_model == name
        classes = spec.class_names() if keep_classes else None
    model = builder(num_classes=num_classes or info.default_num_classes, **kwargs)
    if num_classes is None and keep_classes and _classifier_fits(model, state):
        found = _file_num_classes(model, state)
        if found and found != info.default_num_classes:
            model.reset_classifier(found)
    model.load_report = apply_state_dict(
        model,
        state,
        source=source,
        model_name=name,
        source_model=source_model,
        classes=classes,
    )
    return model


def _classifier_fits(model: nn.Module, state: Mapping[str, torch.Tensor]) -> bool:
    """Whether the file's classifier was trained on what feeds the model's classifier.

    Not when the model has other head modules the file lacks (an LRCN's RNN loaded from a 2D
    ResNet: that ``fc`` read image features, this one reads RNN states); such a classifier is
    dropped even if its shape fits.
    """
    classifier, heads = _head_prefixes(model)
    needed = [
        k
        for k in model.state_dict()
        if k.startswith(heads) and not k.startswith(classifier) and not _is_counter(k)
    ]
    return all(k in state for k in needed)


def _file_num_classes(model: nn.Module, state: Mapping[str, torch.Tensor]) -> int | None:
    """The classifier size in the file, if its classifier has the model's input width."""
    classifier = model.get_classifier()
    key = module_name(model, classifier) + ".weight"
    tensor = state.get(key)
    if tensor is None or tensor.dim() != 2 or tensor.shape[1] != classifier.weight.shape[1]:
        return None
    return int(tensor.shape[0])
