"""Fuse trained models into one (``models.fusion.LateFusion``), weights chosen on validation data.

Each part is scored on the validation videos through the fused model's own input (so the weights
fit exactly what the fused model will see), then every weighting on a grid over the simplex is
scored from those probabilities: averaging views and weighting parts are both linear, so the
fused model's video probabilities are the weighted sums. The weighting with the best top-1 wins;
ties go to the lower validation loss, then to the more even weighting.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resaction.data.manifests import read_manifest
from resaction.engine.evaluate import evaluate
from resaction.errors import ConfigError
from resaction.models.checkpoint import ModelBundle, load_checkpoint, save_checkpoint
from resaction.models.fusion import FUSION_NAME, LateFusion

_SHARED_INPUT = ("resize", "crop", "mean", "std", "target_fps", "frame_interval", "sampling")


@dataclass
class FusionResult:
    """The fused checkpoint and how its weights were chosen."""

    path: Path
    parts: list[str]
    weights: list[float]
    part_top1: list[float]
    fused_top1: float
    videos: int


def fusion_input(bundles: list[ModelBundle]) -> tuple[dict[str, Any], list[int]]:
    """The fused model's preprocessing (its widest part's) and every part's segment length.

    Parts must see the same pixels: same resize, crop, normalisation and sampling, and the same
    number of segments, each of the widest part's length or of one frame.
    """
    lengths = [int(b.preprocess.get("segment_len", 1) or 1) for b in bundles]
    widest = bundles[int(np.argmax(lengths))]
    for bundle, length in zip(bundles, lengths, strict=True):
        for key in _SHARED_INPUT:
            if bundle.preprocess.get(key) != widest.preprocess.get(key):
                raise ConfigError(
                    f"cannot fuse {bundle.model_name} with {widest.model_name}: they differ in "
                    f"{key} ({bundle.preprocess.get(key)!r} vs {widest.preprocess.get(key)!r}); "
                    "train both with the same -p settings"
                )
        segments = int(bundle.preprocess.get("clip_len", 1)) // length
        wanted = int(widest.preprocess.get("clip_len", 1)) // max(lengths)
        if segments != wanted:
            raise ConfigError(
                f"cannot fuse {bundle.model_name} ({segments} segments) with "
                f"{widest.model_name} ({wanted} segments): give both the same number"
            )
    return dict(widest.preprocess), lengths


def weight_grid(parts: int, steps: int = 20) -> list[tuple[float, ...]]:
    """Every weighting of ``parts`` parts in steps of ``1/steps`` that sums to one."""
    return [
        tuple(c / steps for c in combo)
        for combo in itertools.product(range(steps + 1), repeat=parts)
        if sum(combo) == steps
    ]


def choose_weights(
    part_probs: list[np.ndarray], labels: np.ndarray
) -> tuple[tuple[float, ...], float]:
    """The grid weighting with the best validation top-1 (then lower loss, then most even)."""
    best: tuple[Any, ...] | None = None
    rows = np.arange(len(labels))
    for weights in weight_grid(len(part_probs)):
        fused = sum(w * p for w, p in zip(weights, part_probs, strict=True))
        top1 = float(np.mean(np.argmax(fused, axis=1) == labels))
        loss = float(-np.log(np.clip(fused[rows, labels], 1e-12, None)).mean())
        key = (top1, -round(loss, 9), -float(np.ptp(weights)))
        if best is None or key > best[0]:
            best = (key, weights)
    assert best is not None
    return best[1], best[0][0]


def fuse_checkpoints(
    checkpoints: list[str | Path],
    val_data: str | Path,
    out: str | Path,
    *,
    batch_size: int = 8,
    num_workers: int | None = None,
    progress: bool = True,
) -> FusionResult:
    """Fuse ``checkpoints`` (same classes) into ``out``, weights chosen on ``val_data``."""
    if len(checkpoints) < 2:
        raise ConfigError("fusion needs two or more checkpoints")
    bundles = [load_checkpoint(path) for path in checkpoints]
    classes = bundles[0].classes
    for path, bundle in zip(checkpoints, bundles, strict=True):
        if bundle.classes != classes:
            raise ConfigError(f"cannot fuse {path}: its classes differ from {checkpoints[0]}'s")
    preprocess, lengths = fusion_input(bundles)
    fused = LateFusion([b.model for b in bundles], lengths, [1.0] * len(bundles)).eval()
    entries = read_manifest(val_data, classes=classes).entries
    protocol = bundles[int(np.argmax(lengths))].protocol
    part_probs, labels = [], np.empty(0)
    for index in range(len(bundles)):
        fused.weights.copy_(fused.weights.new_tensor(np.eye(len(bundles))[index]))
        result = evaluate(
            fused,
            entries,
            classes,
            preprocess=preprocess,
            protocol=protocol,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
        )
        part_probs.append(result.video_probs)
        labels = result.labels
    weights, top1 = choose_weights(part_probs, labels)
    fused.weights.copy_(fused.weights.new_tensor(weights))
    part_top1 = [float(np.mean(np.argmax(p, axis=1) == labels)) for p in part_probs]
    names = [b.model_name for b in bundles]
    path = save_checkpoint(
        out,
        fused,
        model_name=FUSION_NAME,
        classes=classes,
        model_kwargs={
            "parts": [
                {"model": b.model_name, "model_kwargs": b.model_kwargs, "segment_len": length}
                for b, length in zip(bundles, lengths, strict=True)
            ],
            "weights": list(weights),
        },
        preprocess=preprocess,
        protocol=protocol,
        fusion={
            "sources": [str(Path(p)) for p in checkpoints],
            "val_data": str(val_data),
            "videos": len(labels),
            "part_top1": part_top1,
            "fused_top1": top1,
        },
    )
    return FusionResult(Path(path), names, list(weights), part_top1, top1, len(labels))
