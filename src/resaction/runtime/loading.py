"""One way to load a model file: a backend, its clip specification, its views and class names.

``load_model(path)`` reads a resaction checkpoint (pruned ones included) or an ``.onnx`` file from
``resaction export`` / ``resaction quantize``. The preprocessing is resolved here, once: the
registered model's defaults under what the file stores. Predict, evaluate, bench, quantize,
export, serve, batch and stream all load through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from resaction.data.spec import DEFAULT_VIEWS, ClipSpec, ViewProtocol
from resaction.errors import CheckpointError
from resaction.models import default_preprocess, list_models
from resaction.models.checkpoint import load_checkpoint
from resaction.runtime.backends import Backend, TorchBackend
from resaction.runtime.onnx_backend import OnnxBackend
from resaction.runtime.onnx_frames import FramesBackend, OnnxFrames, is_frames_file


@dataclass
class LoadedModel:
    """A model ready to score clips. ``module`` is the PyTorch network (``None`` for ONNX);
    ``extra`` holds what the file stores beside it (``pruned``, ``source``, ...) and, for a
    frames file (``export --frames``), ``frame_runner``: its ``OnnxFrames``."""

    backend: Backend
    spec: ClipSpec
    views: ViewProtocol
    classes: list[str]
    model_name: str
    module: nn.Module | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_onnx(self) -> bool:
        return self.module is None

    @property
    def network(self) -> nn.Module | Backend:
        """What evaluation runs: the PyTorch module (train/eval mode restored around it), else
        the backend."""
        return self.backend if self.module is None else self.module


def resolve_spec(model_name: str | None, stored: dict[str, Any] | None) -> ClipSpec:
    """The clip specification of a model file: the registered model's defaults (when the name
    is registered) under the preprocessing the file stores."""
    defaults = default_preprocess(model_name) if model_name in list_models() else {}
    return ClipSpec.from_dict({**defaults, **(stored or {})})


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def load_model(
    path: str | Path,
    *,
    device: str = "cpu",
    expect_model: str | None = None,
    classes: list[str] | None = None,
) -> LoadedModel:
    """The model in ``path``. ``expect_model`` refuses a checkpoint of another model with one
    line; ``classes`` names the outputs of an ONNX file without resaction metadata. ONNX files
    run on ONNX Runtime's CUDA provider when ``device`` is a GPU (``onnxruntime-gpu``)."""
    if is_onnx(path):
        loaded = _load_onnx(Path(path), device, classes)
        if loaded.backend.model_name is not None:  # files without metadata do not say
            _check_model(path, loaded.model_name, expect_model)
        return loaded
    bundle = load_checkpoint(path)
    _check_model(path, bundle.model_name, expect_model)
    return LoadedModel(
        backend=TorchBackend(bundle.model, device),
        spec=resolve_spec(bundle.model_name, bundle.preprocess),
        views=DEFAULT_VIEWS.updated(bundle.protocol),
        classes=list(bundle.classes),
        model_name=bundle.model_name,
        module=bundle.model,
        extra=with_trained_background(dict(bundle.extra)),
    )


def _check_model(path: str | Path, holds: str, expect_model: str | None) -> None:
    if expect_model is not None and holds != expect_model:
        raise CheckpointError(
            f"{path} holds a {holds} model, not {expect_model}; "
            "pass the file of that model or drop --model"
        )


def with_trained_background(extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` with the background class its training run named (``train --background``,
    stored in its config), unless calibration set one: alarms must not fire on it."""
    trained = extra.get("config")
    if extra.get("background") is None and isinstance(trained, dict) and trained.get("background"):
        extra["background"] = trained["background"]
    return extra


DECISION_EXTRAS = ("thresholds", "calibration", "background")
"""What a model file may carry about turning scores into alarms (``resaction calibrate``)."""
ONNX_EXTRAS = ("pruned", "source", *DECISION_EXTRAS)
"""ONNX metadata keys passed on as a loaded model's ``extra``."""


def _load_onnx(path: Path, device: str, classes: list[str] | None) -> LoadedModel:

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        providers.insert(0, "CUDAExecutionProvider")
    extra: dict[str, Any] = {}
    if is_frames_file(path):
        runner = OnnxFrames(path, providers=providers)
        backend: OnnxBackend | FramesBackend = FramesBackend(runner)
        extra["frame_runner"] = runner  # what a LiveScorer runs incrementally
    else:
        backend = OnnxBackend(path, providers=providers, classes=classes)
    name = backend.model_name or path.stem
    return LoadedModel(
        backend=backend,
        spec=resolve_spec(backend.model_name, backend.preprocess),
        views=DEFAULT_VIEWS.updated(backend.protocol),
        classes=list(backend.classes),
        model_name=name,
        extra={
            **{k: backend.metadata[k] for k in ONNX_EXTRAS if k in backend.metadata},
            **extra,
        },
    )
