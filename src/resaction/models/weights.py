"""Weights: reading a named weight set or a checkpoint file, and loading it into a model.

A ``--weights`` value is a tag of the model (for example "imagenet" or "kinetics400"), served by
the model's own file or its trunk's (declared beside the builders, see ``catalog``), or the path of
a file: a resaction checkpoint, a plain state dict, a dict with a "state_dict" or "model" entry, or
``.safetensors``. A trunk's file seeds a TSN with ResNet-50's ImageNet weights without their
classifier, and an I3D with them inflated to 3D: the model family's conversion function
(``ModelInfo.convert``) turns any state dict into the model's names and shapes.

Loading keeps every tensor that fits, drops a classifier of another shape and reports what it
skipped (``LoadReport``). A file of another architecture is refused with one line that names both,
instead of a model that silently runs with random layers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from resaction.errors import WeightsError
from resaction.models.catalog import (
    WEIGHTS,
    StateDict,
    WeightSpec,
    build_model,
    default_preprocess,
    list_models,
    model_info,
    weight_spec,
)
from resaction.models.hub import fetch_state_dict, first_line, kinetics400_classes
from resaction.models.layers import module_name
from resaction.models.torch_files import torch_load_failure

__all__ = [
    "WEIGHTS",
    "CheckpointContents",
    "LoadReport",
    "WeightSpec",
    "apply_state_dict",
    "fetch_state_dict",
    "identify_architecture",
    "is_weights_file",
    "kinetics400_classes",
    "load_weights",
    "read_weights",
    "read_weights_file",
    "training_preprocess",
    "weight_spec",
    "weights_preprocess",
]

logger = logging.getLogger(__name__)

# A checkpoint sharing less than this much of a model is another architecture, not a variant.
MAX_UNEXPECTED_FRACTION = 0.1
NO_WEIGHTS = (None, "", "none", "None")


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


# ---------------------------------------------------------------------------- preprocessing


def weights_preprocess(name: str, tag: str | None) -> dict[str, Any]:
    """The preprocessing dict for ``name`` with weights ``tag``.

    The model's own file brings its whole preprocessing (Kinetics: 16 frames at 15 fps, 128x171,
    crop 112); a trunk's file only its normalisation, since the model's clip shape is its own.
    """
    preprocess = default_preprocess(name)
    if tag in (None, "", "none"):
        return preprocess
    owner, spec = weight_spec(name, tag)
    if owner == name:
        preprocess.update(spec.preprocess)
    else:
        preprocess.update(mean=spec.preprocess["mean"], std=spec.preprocess["std"])
    return preprocess


def training_preprocess(name: str, weights: str | None) -> dict[str, Any]:
    """The preprocessing to fine-tune ``name`` from ``weights`` with: named weights bring their
    own (``weights_preprocess``), a file or no weights the model's default."""
    if weights in (None, "", "none") or is_weights_file(str(weights)):
        return default_preprocess(name)
    return weights_preprocess(name, str(weights))


# ---------------------------------------------------------------------------- reading

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class CheckpointContents:
    """A state dict with what is known of it: where it was read (``source``), the model it was
    saved from, the classes its classifier predicts, and whether that classifier was trained for
    the model it is read for (``own_classifier``: not so for a trunk's file)."""

    state_dict: dict[str, torch.Tensor]
    model_name: str | None = None
    classes: list[str] | None = None
    source: str = ""
    own_classifier: bool = True


def _looks_like_tag(text: str) -> bool:
    return "/" not in text and "\\" not in text and "." not in text


def is_weights_file(weights: str) -> bool:
    """Whether ``--weights`` names a file rather than a tag such as ``kinetics400``."""
    return Path(weights).expanduser().exists() or not _looks_like_tag(weights)


def read_weights(name: str | None, weights: str | Path) -> CheckpointContents:
    """What ``weights`` names for model ``name``: one of its weight tags, else a file."""
    weights = str(weights)
    if not name or is_weights_file(weights):
        return read_weights_file(weights)
    owner, spec = weight_spec(name, weights)
    own = owner == name
    return CheckpointContents(
        fetch_state_dict(spec),
        model_name=owner,
        classes=spec.class_names() if own else None,
        source=spec.file_name,
        own_classifier=own,
    )


def read_weights_file(path: str | Path) -> CheckpointContents:
    """A state dict from any of: a resaction checkpoint, a plain state dict, a dict with a
    "state_dict" or "model" entry (``.pth``/``.pt``), or ``.safetensors``; read without pickle code.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise WeightsError(f"weights file {path} {what}")
    if path.suffix == ".safetensors":
        try:
            payload: Any = load_file(path, device="cpu")
        except Exception as error:  # safetensors raises several types for foreign files
            raise WeightsError(
                f"{path} cannot be read as safetensors: {first_line(error)}"
            ) from None
    else:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for corrupt or foreign files
            reason = torch_load_failure(error)
            raise WeightsError(f"{path} cannot be read as weights: {reason}") from None
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
    return CheckpointContents(_strip_wrappers(tensors), model_name, classes, source=str(path))


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a DDP ("module.") or torch.compile ("_orig_mod.") prefix shared by every key."""
    for prefix in _WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


# ---------------------------------------------------------------------------- architectures


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
                model = build_model(name)
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


# ---------------------------------------------------------------------------- loading


def _converted(model: nn.Module, name: str | None, state: StateDict) -> StateDict:
    """The state dict through the conversion function of the model's family, if it has one."""
    convert = model_info(name).convert if name in list_models() else None
    return convert(state, model) if convert else state


@dataclass
class _Sorted:
    """The tensors of a state dict sorted against a model's."""

    fits: dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _sort(model: nn.Module, state: StateDict, classifier: str) -> _Sorted:
    target = model.state_dict()
    keep_classifier = _classifier_fits(model, state)
    result = _Sorted()
    for key, tensor in state.items():
        if key not in target:
            if not _is_counter(key):
                result.unexpected.append(key)
        elif key.startswith(classifier) and not keep_classifier:
            result.dropped.append(key)
        elif tuple(tensor.shape) != tuple(target[key].shape):
            (result.dropped if key.startswith(classifier) else result.wrong_shape).append(key)
        else:
            result.fits[key] = tensor
    result.missing = [
        k for k in target if k not in result.fits and k not in result.dropped and not _is_counter(k)
    ]
    return result


def _refusal(model: nn.Module, state: StateDict, found: _Sorted, heads: tuple[str, ...]) -> str:
    """Why the state dict is of another network, or "" when it is of this one."""
    trunk_missing = [k for k in found.missing if not k.startswith(heads)]
    counted = [k for k in state if not _is_counter(k)]
    if found.wrong_shape:
        key = found.wrong_shape[0]
        return (
            f"{len(found.wrong_shape)} tensors differ in shape, e.g. {key} "
            f"{_shape(state[key])} in the file vs {_shape(model.state_dict()[key])} in the model"
        )
    if trunk_missing:
        return f"{len(trunk_missing)} tensors missing from the file, e.g. {trunk_missing[0]}"
    if len(found.unexpected) > MAX_UNEXPECTED_FRACTION * max(len(counted), 1):
        return (
            f"{len(found.unexpected)} of its {len(counted)} tensors unused, "
            f"e.g. {found.unexpected[0]}"
        )
    return ""


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
    registered = model_name or getattr(model, "model_name", None)
    name = registered or type(model).__name__
    original = dict(state)
    try:
        state = _converted(model, registered, original)
    except WeightsError as error:
        other = _other_architecture(original, source_model)
        raise WeightsError(f"{source} holds weights of {other}, not {name}: {error}") from None
    classifier, heads = _head_prefixes(model)
    found = _sort(model, state, classifier)
    reason = _refusal(model, state, found, heads)
    if reason:
        other = _other_architecture(original, source_model)
        if other == name:
            other = f"another variant of {name}"
        raise WeightsError(f"{source} holds weights of {other}, not {name}: {reason}")
    model.load_state_dict(found.fits, strict=False)
    replaced = any(k.startswith(classifier) for k in found.dropped + found.missing)
    report = LoadReport(
        dropped=found.dropped,
        missing=found.missing,
        unexpected=found.unexpected,
        replaced_head=replaced,
        source=source,
        classes=None if replaced else classes,
    )
    log = logger.warning if found.unexpected or (found.missing and not replaced) else logger.info
    log("%s: %s", name, report.summary())
    return report


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor] | CheckpointContents,
    *,
    model_name: str | None = None,
) -> LoadReport:
    """Load named weights (for a registered model), a checkpoint file, weights already read or a
    state dict into ``model`` in place, keeping its classifier size; see ``apply_state_dict``."""
    name = model_name or getattr(model, "model_name", None)
    if isinstance(source, Mapping):
        return apply_state_dict(model, source, source="the state dict", model_name=name)
    contents = source if isinstance(source, CheckpointContents) else read_weights(name, source)
    return apply_state_dict(
        model,
        contents.state_dict,
        source=contents.source,
        model_name=name,
        source_model=contents.model_name,
        classes=contents.classes,
    )


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


def kept_num_classes(model: nn.Module, contents: CheckpointContents) -> int | None:
    """The class count of the file's classifier, if the model can keep that classifier: the
    file's own (not a trunk's), fed by what feeds the model's, with the model's input width."""
    if not contents.own_classifier or not _classifier_fits(model, contents.state_dict):
        return None
    classifier = model.get_classifier()
    tensor = contents.state_dict.get(module_name(model, classifier) + ".weight")
    if tensor is None or tensor.dim() != 2 or tensor.shape[1] != classifier.weight.shape[1]:
        return None
    return int(tensor.shape[0])
