"""The checkpoint file: one file that holds a model and everything needed to use it.

Training (``engine``) adds optimiser, scheduler, sampler and RNG state to the same file;
inference, deployment and the service read only the model part. It lives here, below both, because
every package that runs a model reads it. Files are written to a temporary name and renamed, so a
kill never leaves half a checkpoint, and read with ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resaction.errors import CheckpointError
from resaction.models.factory import create_model
from resaction.models.fusion import FUSION_NAME, build_fusion
from resaction.models.pruned import shrink_to_state_dict
from resaction.models.torch_files import is_torch_file, torch_load_failure
from resaction.outputs import replaced_atomically

FORMAT_VERSION = 1
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")
"""Suffixes of torch files: one that does not start as a checkpoint is corrupt, not foreign."""


@dataclass
class ModelBundle:
    """A model with its class names and the preprocessing and protocol it was trained with."""

    model: nn.Module
    model_name: str
    classes: list[str]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    with replaced_atomically(path, CheckpointError) as tmp, tmp.open("wb") as handle:
        torch.save(obj, handle)
    return Path(path).expanduser()


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str,
    classes: list[str],
    model_kwargs: dict[str, Any] | None = None,
    preprocess: dict[str, Any] | None = None,
    protocol: dict[str, Any] | None = None,
    **training_state: Any,
) -> Path:
    """Write a checkpoint atomically. ``training_state`` holds optimiser, epoch, config, RNG..."""
    state = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
    payload = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs or {}),
        "num_classes": len(classes),
        "classes": list(classes),
        "preprocess": dict(preprocess or {}),
        "protocol": dict(protocol or {}),
        "state_dict": state,
        **training_state,
    }
    return atomic_save(payload, path)


def _foreign_file(path: Path) -> str | None:
    """What is wrong with ``path`` when it cannot be a torch checkpoint at all (an ONNX model,
    a common mix-up in ``prune model.onnx``, a CSV given for ``-c``); None otherwise."""
    if path.suffix.lower() == ".onnx":
        return "is an ONNX model, not a PyTorch checkpoint: give the .pt it was exported from"
    if is_torch_file(path):
        return None
    if not path.stat().st_size:
        return "is empty, not a PyTorch checkpoint"
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or not path.suffix:
        return "is not a PyTorch checkpoint (its first bytes are not one: corrupt or truncated?)"
    return f"is a {path.suffix} file, not a PyTorch checkpoint (.pt)"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's raw dictionary safely; one-line errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}")
    foreign = _foreign_file(path)
    if foreign:
        raise CheckpointError(f"{path} {foreign}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(
            f"checkpoint {path} cannot be read: {torch_load_failure(error)}"
        ) from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "model_name" not in payload:
        raise CheckpointError(
            f"{path} is not a resaction checkpoint (no model name or state dict); "
            "pass it as --weights to initialise a model instead"
        )
    return payload


def update_checkpoint(path: str | Path, values: dict[str, Any]) -> Path:
    """Replace top-level keys of a checkpoint (``thresholds``, ``calibration``, ...) in place,
    atomically; the weights and training state are kept as they are."""
    payload = read_checkpoint(path)
    payload.update(values)
    return atomic_save(payload, path)


def load_checkpoint(path: str | Path) -> ModelBundle:
    """Rebuild the model stored in a resaction checkpoint, in eval mode."""
    payload = read_checkpoint(path)
    build = build_fusion if payload["model_name"] == FUSION_NAME else create_model
    model = build(payload["model_name"], payload["num_classes"], **payload["model_kwargs"])
    if payload.get("pruned"):
        shrink_to_state_dict(model, payload["state_dict"])
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint {path} does not match model {payload['model_name']}: {first[:200]}"
        ) from None
    model.eval()
    return ModelBundle(
        model=model,
        model_name=payload["model_name"],
        classes=list(payload["classes"]),
        model_kwargs=dict(payload["model_kwargs"]),
        preprocess=dict(payload.get("preprocess", {})),
        protocol=dict(payload.get("protocol", {})),
        extra={k: v for k, v in payload.items() if k not in {"state_dict"}},
    )
