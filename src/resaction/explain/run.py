"""``explain_video``: where and when a model looked when it scored a stretch of video.

One clip (the model's test view, ``clip.read_clip``) gives one map: saliency (T, H, W) in [0, 1]
over the clip's frames in model input space, for a target class (default: the clip's top-1),
and a temporal importance per frame. Grad-CAM and Grad-CAM++ read gradients of the PyTorch
network (``saliency.py``); occlusion only calls the backend (``occlusion.py``), so it also
explains ONNX files.

Temporal importance is defined per method: for Grad-CAM and Grad-CAM++ it is the mean saliency
of the frame (in [0, 1], comparable between the frames of one clip); for occlusion it is the
drop in the target's probability when the frame's slab of ``patch_frames`` frames is hidden
whole (in [-1, 1]).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resaction.errors import ConfigError
from resaction.explain.clip import ExplainClip, read_clip
from resaction.explain.occlusion import occlusion_map
from resaction.explain.saliency import CAM_METHODS, class_activation_map
from resaction.inference import Predictor
from resaction.runtime.backends import TorchBackend

METHODS = (*CAM_METHODS, "occlusion")
CLASSES_LISTED = 30
IMPORTANCE = {
    "gradcam": "mean saliency of the frame",
    "gradcam++": "mean saliency of the frame",
    "occlusion": "drop in the target's probability when the frame's slab is hidden",
}


@dataclass
class Explanation:
    """What ``explain_video`` found. ``saliency`` is (T, H, W) float32 in [0, 1] in model input
    space, ``importance`` (T,) as the module docstring defines it per method; ``grid`` is the
    (time, height, width) of the map the method made before upsampling."""

    clip: ExplainClip
    model_name: str
    method: str
    target: str
    target_index: int
    probability: float
    top: str
    top_probability: float
    saliency: np.ndarray
    importance: np.ndarray
    grid: tuple[int, int, int]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready summary: everything but the saliency array itself."""
        clip = self.clip
        return {
            "video": clip.video,
            "model": self.model_name,
            "method": self.method,
            "target": {
                "label": self.target,
                "index": self.target_index,
                "probability": round(self.probability, 6),
            },
            "top1": {"label": self.top, "probability": round(self.top_probability, 6)},
            "range_s": [round(clip.start, 4), round(clip.end, 4)],
            "frames": [int(i) for i in clip.indices],
            "times": [round(float(t), 4) for t in clip.times],
            "importance": [round(float(v), 6) for v in self.importance],
            "importance_is": IMPORTANCE[self.method],
            "saliency_grid": {"time": self.grid[0], "height": self.grid[1], "width": self.grid[2]},
            "input_size": list(self.saliency.shape),
            "crop_box": [round(v, 6) for v in clip.box],
            **self.settings,
        }


def explain_video(
    predictor: Predictor,
    video: str | Path,
    *,
    target: str | None = None,
    method: str = "gradcam",
    start: float | None = None,
    end: float | None = None,
    patch: int | None = None,
    patch_frames: int = 2,
    batch_size: int = 16,
    progress: bool = False,
) -> Explanation:
    """Explain the predictor's score for ``target`` (default: the top-1 class) on the clip of
    ``video`` between ``start`` and ``end`` seconds, with ``method`` (one of ``METHODS``).

    ``patch`` (pixels, default ``occlusion.default_patch``), ``patch_frames`` and ``batch_size``
    set occlusion's patches. Refused with one line: an unknown method or class, a range outside
    the video, and Grad-CAM on a backend without gradients (an ONNX file).
    """
    network = _network(predictor, method)
    clip = read_clip(predictor.spec, video, start, end)
    probs = predictor.predict_clips(clip.inputs.unsqueeze(0))[0]
    index = resolve_target(target, predictor.classes, probs)
    settings: dict[str, Any] = {}
    if network is not None and patch is not None:
        warnings.warn(f"--patch applies to occlusion only: {method} ignores it", stacklevel=2)
    if network is not None:
        cam = class_activation_map(network, clip.inputs, index, method=method)
        saliency = cam.saliency.numpy()
        importance = saliency.mean(axis=(1, 2))
        grid = cam.grid
        settings["layer"] = cam.layer
    else:
        occluded = occlusion_map(
            predictor.predict_clips,
            clip.inputs,
            index,
            patch=patch,
            patch_frames=patch_frames,
            batch_size=batch_size,
            progress=progress,
        )
        saliency, importance, grid = occluded.saliency.numpy(), occluded.importance, occluded.grid
        settings["patch"] = {"pixels": occluded.patch, "frames": occluded.patch_frames}
    top = int(np.argmax(probs))
    return Explanation(
        clip=clip,
        model_name=predictor.model_name or "model",
        method=method,
        target=predictor.classes[index],
        target_index=index,
        probability=float(probs[index]),
        top=predictor.classes[top],
        top_probability=float(probs[top]),
        saliency=saliency.astype(np.float32),
        importance=np.asarray(importance, dtype=np.float32),
        grid=grid,
        settings=settings,
    )


def _network(predictor: Predictor, method: str) -> Any:
    """The PyTorch module Grad-CAM reads (None for occlusion); refuses what cannot work."""
    if method not in METHODS:
        raise ConfigError(f"unknown --method {method!r}; use one of {', '.join(METHODS)}")
    if method == "occlusion":
        return None
    backend = predictor.backend
    if not isinstance(backend, TorchBackend):
        name = getattr(backend, "name", "this backend")
        raise ConfigError(
            f"--method {method} needs gradients; {predictor.model_name or 'the model'} runs on "
            f"{name}, which gives none: use --method occlusion (or the model's .pt checkpoint)"
        )
    return backend.model


def resolve_target(target: str | None, classes: list[str], probs: np.ndarray) -> int:
    """The index of class ``target``, or of the most probable class when it is None."""
    if target is None:
        return int(np.argmax(probs))
    if target in classes:
        return classes.index(target)
    shown = ", ".join(classes[:CLASSES_LISTED])
    more = f" and {len(classes) - CLASSES_LISTED} more" if len(classes) > CLASSES_LISTED else ""
    raise ConfigError(
        f"the model has no class {target!r}; pass one of its classes to --class: {shown}{more}"
    )
