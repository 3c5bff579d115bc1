"""Export a model to ONNX with everything a predictor needs, checked against PyTorch.

The graph takes ``clips`` (N, 3, T, H, W) float32 with a dynamic batch axis and returns
``logits`` (N, K). T, H and W are fixed at the exported preprocessing: the 2D-trunk models fold
time into the batch with the clip length as a constant. Class names, model name, preprocessing
and protocol go into ``metadata_props`` as JSON (read back by ``runtime.onnx_backend``).

The exporter is torch's TorchScript one (``dynamo=False``): it needs no extra package, handles
every family here (TSM's shifts and LRCN's LSTM included), and ONNX Runtime's quantiser
works well on its graphs. After export the file is run with ONNX Runtime on a batch of another
size than the traced one, and the largest difference from PyTorch's logits is reported.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resaction.errors import DeployError
from resaction.models.tsm import TemporalShift
from resaction.outputs import replaced_atomically
from resaction.runtime.loading import DECISION_EXTRAS, LoadedModel, load_model
from resaction.runtime.onnx_backend import FORMAT_KEY, METADATA_FORMAT, OnnxBackend

# ONNX Runtime 1.17+ runs opset 17 everywhere, and its QDQ quantiser supports per-channel
# weights from opset 13; torch's TorchScript exporter is tested best up to 17.
DEFAULT_OPSET = 17
INPUT_NAME = "clips"
OUTPUT_NAME = "logits"
CHECK_BATCH = 3


@dataclass
class ExportResult:
    """Where the model went and how closely ONNX Runtime reproduces PyTorch."""

    path: Path
    model_name: str
    opset: int
    input_shape: tuple[Any, ...]
    num_classes: int
    max_abs_diff: float | None
    seconds: float
    metadata: dict[str, Any]

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> ExportResult:
    """Export a resaction checkpoint (pruned ones included) to an ONNX file."""
    loaded = load_for_export(checkpoint)
    return export_model(
        loaded.module,
        out,
        **model_facts(loaded),
        opset=opset,
        check=check,
        extra_metadata={
            "source": Path(checkpoint).name,
            "pruned": bool(loaded.extra.get("pruned", False)),
            **decision_metadata(loaded.extra),
        },
    )


def load_for_export(checkpoint: str | Path) -> LoadedModel:
    """The checkpoint to export, refused with one line when it is already an ONNX file."""
    if Path(checkpoint).suffix.lower() == ".onnx":
        raise DeployError(f"{checkpoint} is already an ONNX model; export takes a checkpoint (.pt)")
    return load_model(checkpoint)


def model_facts(loaded: LoadedModel) -> dict[str, Any]:
    """What an exporter is told of a loaded model besides its module: name, classes,
    preprocessing and test protocol (the keywords of ``export_model``)."""
    return {
        "model_name": loaded.model_name,
        "classes": loaded.classes,
        "preprocess": loaded.spec.to_dict(),
        "protocol": loaded.views.to_dict(),
    }


def export_model(
    model: nn.Module,
    out: str | Path,
    *,
    model_name: str,
    classes: list[str],
    preprocess: dict[str, Any],
    protocol: dict[str, Any],
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    extra_metadata: dict[str, Any] | None = None,
) -> ExportResult:
    """Export ``model`` (in eval mode) for clips shaped by ``preprocess``; see the module doc."""
    started = time.perf_counter()
    require("onnx", "ONNX export")
    _check_exportable(model, model_name)
    model.eval()
    shape = clip_shape(preprocess)
    generator = torch.Generator().manual_seed(0)
    traced_input = torch.randn((1, *shape), generator=generator)
    metadata = export_metadata(model_name, classes, preprocess, protocol, opset)
    metadata.update(extra_metadata or {})

    def write(path: Path) -> None:
        axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
        subject = f"{model_name} to ONNX"
        trace_onnx(model, (traced_input,), path, [INPUT_NAME], [OUTPUT_NAME], axes, opset, subject)

    def compare(path: Path) -> float:
        check_input = torch.randn((CHECK_BATCH, *shape), generator=generator)
        diff = compare_with_torch(model, path, check_input)
        with torch.no_grad():
            scale = float(model(check_input).abs().max())
        return check_agreement(diff, scale, model_name, Path(out))

    return write_export(
        Path(out), metadata, ("N", *shape), started, write, compare if check else None
    )


def write_export(
    out: Path,
    metadata: dict[str, Any],
    input_shape: tuple[Any, ...],
    started: float,
    write: Callable[[Path], None],
    check: Callable[[Path], float] | None,
) -> ExportResult:
    """Write a graph (``write``) and its ``metadata`` to ``out`` atomically, ``check`` it (its
    largest difference from PyTorch) before it takes ``out``'s name, and report what was done."""
    diff = None
    with replaced_atomically(out) as tmp:
        write(tmp)
        write_metadata(tmp, metadata)
        if check is not None:
            diff = check(tmp)
    return ExportResult(
        path=out,
        model_name=metadata["model_name"],
        opset=metadata["opset"],
        input_shape=input_shape,
        num_classes=len(metadata["classes"]),
        max_abs_diff=diff,
        seconds=time.perf_counter() - started,
        metadata=metadata,
    )


def check_agreement(diff: float, scale: float, subject: str, out: Path) -> float:
    """``diff`` if it is small beside the logits' ``scale``, else a ``DeployError`` saying that
    the exported ``subject`` disagrees with PyTorch and ``out`` was not written."""
    if not diff <= 1e-3 * (1.0 + scale):
        raise DeployError(
            f"the exported {subject} disagrees with PyTorch (max abs difference "
            f"{diff:.3g} on logits up to {scale:.3g}); {out} was not written"
        )
    return diff


def decision_metadata(extra: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's calibration (thresholds, operating point, background class), which an
    exported file carries so every command that runs it raises the same alarms."""
    return {key: extra[key] for key in DECISION_EXTRAS if key in extra}


def export_metadata(
    model_name: str,
    classes: list[str],
    preprocess: dict[str, Any],
    protocol: dict[str, Any],
    opset: int,
) -> dict[str, Any]:
    """The resaction metadata every exported ONNX file carries."""
    return {
        FORMAT_KEY: METADATA_FORMAT,
        "model_name": model_name,
        "classes": list(classes),
        "preprocess": dict(preprocess),
        "protocol": dict(protocol),
        "opset": opset,
        "resaction_version": _version(),
    }


def require(module: str, purpose: str, package: str = "resaction[onnx]") -> None:
    """A one-line ``DeployError`` naming the install command when an optional package is
    missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DeployError(f"{purpose} needs the {module} package: pip install '{package}'")


def crop_size(preprocess: dict[str, Any]) -> tuple[int, int]:
    """(H, W) of the crop the preprocessing dict makes (an int crop is square)."""
    crop = preprocess.get("crop") or 112
    return (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))


def clip_shape(preprocess: dict[str, Any]) -> tuple[int, int, int, int]:
    """(C, T, H, W) of one clip as the preprocessing dict makes it."""
    return 3, int(preprocess.get("clip_len", 16)), *crop_size(preprocess)


def compare_with_torch(model: nn.Module, path: str | Path, clips: torch.Tensor) -> float:
    """Largest absolute difference between PyTorch's and ONNX Runtime's logits on ``clips``."""

    with torch.no_grad():
        expected = model(clips).float().numpy()
    got = OnnxBackend(path)(clips.numpy())
    return float(np.abs(got - expected).max())


def write_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    """Set ``metadata_props`` of an ONNX file: one JSON value per key, replacing those keys."""
    import onnx

    model = onnx.load(str(path))
    kept = [prop for prop in model.metadata_props if prop.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value)
    onnx.save(model, str(path))


def trace_onnx(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    axes: dict[str, dict[int, str]],
    opset: int,
    subject: str,
) -> None:
    """Trace ``module`` on ``args`` into an ONNX file with torch's TorchScript exporter; a
    failure is a one-line ``DeployError``: "cannot export ``subject``: reason"."""
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                do_constant_folding=True,
            )
    except Exception as error:  # the exporter raises many types, all meaning "cannot export"
        text = str(error).strip().splitlines()
        reason = text[0][:200] if text else type(error).__name__
        raise DeployError(f"cannot export {subject}: {reason}") from None


def _check_exportable(model: nn.Module, model_name: str) -> None:
    """Refuse, with the reason, models an ONNX graph cannot represent."""

    if any(isinstance(m, TemporalShift) and m.mode == "online" for m in model.modules()):
        raise DeployError(
            f"cannot export {model_name} in online shift mode: it keeps the last frame between "
            "calls, which a stateless ONNX graph cannot; export it in 'past' mode instead"
        )
    if not isinstance(model, nn.Module):
        raise DeployError(f"cannot export {model_name}: it is not a torch module")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("resaction")
    except Exception:  # not installed, e.g. run from a source tree
        return "unknown"
