"""Evaluate a model on a list of videos with multi-view testing.

Each video gives ``num_clips`` uniformly spaced clips times ``num_crops`` spatial crops ("views").
Views of several videos are packed into one forward pass of ``batch_size`` clips, the softmax of
every view is averaged into a video score, and metrics are computed at both levels. The protocol
that produced the numbers travels with them in ``EvalResult.protocol``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resaction.data.loader import make_loader
from resaction.data.manifests import VideoEntry, read_manifest
from resaction.data.spec import DEFAULT_VIEWS, ClipSpec, ViewProtocol
from resaction.data.stress import apply_stress
from resaction.data.transforms import ClipTransform
from resaction.engine.metrics import classification_metrics
from resaction.errors import ConfigError, DatasetError, ModelError
from resaction.models import compile as model_compile
from resaction.progress import progress_bar
from resaction.runtime.backends import Backend
from resaction.runtime.loading import LoadedModel, is_onnx, load_model
from resaction.runtime.scores import videos_probabilities


@dataclass
class EvalResult:
    """Scores of every view and video, their metrics, and how they were measured.

    ``metrics`` are video-level (views averaged), ``clip_metrics`` count every view on its own.
    Rows of ``video_probs`` and ``labels`` follow ``paths`` (the videos that decoded); the videos
    that did not are listed in ``skipped`` with the reason.
    """

    clip_logits: np.ndarray
    clip_video_index: np.ndarray
    video_probs: np.ndarray
    labels: np.ndarray
    metrics: dict[str, Any]
    clip_metrics: dict[str, Any]
    protocol: dict[str, Any]
    classes: list[str]
    paths: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    preprocess: dict[str, Any] = field(default_factory=dict)

    @property
    def view_protocol(self) -> dict[str, Any]:
        """The clips-and-crops part of the protocol, to evaluate again the same way."""
        return ViewProtocol.from_dict(self.protocol).to_dict()

    @property
    def top1(self) -> float:
        return float(self.metrics["top1"])

    @property
    def predictions(self) -> np.ndarray:
        return self.video_probs.argmax(axis=1)

    def accuracy_on(self, class_names: Sequence[str]) -> float:
        """Video-level accuracy on the videos whose true class is one of ``class_names``."""
        wanted = [self.classes.index(name) for name in class_names]
        mask = np.isin(self.labels, wanted)
        if not mask.any():
            return float("nan")
        return float((self.predictions[mask] == self.labels[mask]).mean())


class StressedTransform:
    """Adds one difficulty (``data.stress``) to the uint8 clip, then runs the usual transform.

    The seed comes from the item's random generator, which the dataset seeds from the video's
    index (or, called without one, from the clip's pixels), so the same video gets the same
    stress in every run, worker and batch, and different videos get different draws.
    """

    def __init__(self, transform: ClipTransform, kind: str, severity: float) -> None:
        self.transform = transform
        self.kind = kind
        self.severity = severity
        self.num_views = transform.num_views

    def decode_hint(self, force: bool = False) -> dict[str, Any]:
        return self.transform.decode_hint(force)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:

        if rng is not None:
            seed = int(rng.integers(2**31))
        else:
            seed = zlib.crc32(clip[:, ::16, ::16].contiguous().numpy().tobytes())
        stressed = apply_stress(clip, self.kind, self.severity, seed)
        return self.transform(stressed, rng)

    def __repr__(self) -> str:
        return f"StressedTransform({self.kind!r}, {self.severity}, {self.transform!r})"


def measurement_protocol(preprocess: dict[str, Any], protocol: dict[str, Any]) -> dict[str, Any]:
    """The evaluation protocol merged with the preprocessing that defines a clip."""
    merged = DEFAULT_VIEWS.updated(protocol).to_dict() | {
        key: value for key, value in protocol.items() if key not in DEFAULT_VIEWS.to_dict()
    }
    keys = ("clip_len", "sampling", "frame_interval", "target_fps", "resize", "crop")
    merged.update({key: preprocess.get(key) for key in keys})
    if preprocess.get("segment_len", 1) != 1:
        merged["segment_len"] = preprocess["segment_len"]
    merged["input_size"] = preprocess.get("crop")
    return merged


def _model_runner(
    model: nn.Module | Backend,
) -> tuple[Callable[[torch.Tensor], np.ndarray], Any]:
    """A function from a clip batch to logits, and a restore hook for the model's train mode."""
    if isinstance(model, nn.Module):
        was_training = model.training
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")

        def run(batch: torch.Tensor) -> np.ndarray:
            with torch.inference_mode():
                return model(batch.to(device)).float().cpu().numpy()

        return run, lambda: model.train(was_training)

    def run_backend(batch: torch.Tensor) -> np.ndarray:
        return np.asarray(model(batch), dtype=np.float32)

    return run_backend, lambda: None


def _packed_batches(
    loader: Any, batch_size: int
) -> Iterator[tuple[torch.Tensor, np.ndarray, np.ndarray]]:
    """Flatten each video's views and repack them into batches of about ``batch_size`` clips.

    Yields ``(clips, dataset_index_per_clip, label_per_clip)``.
    """
    clips: list[torch.Tensor] = []
    owners: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    pending = 0
    for views, label, index in loader:
        if views.ndim == 5:
            views = views.unsqueeze(1)
        count = views.shape[1]
        clips.append(views.flatten(0, 1))
        owners.append(np.repeat(np.asarray(index), count))
        labels.append(np.repeat(np.asarray(label), count))
        pending += clips[-1].shape[0]
        if pending >= batch_size:
            yield torch.cat(clips), np.concatenate(owners), np.concatenate(labels)
            clips, owners, labels, pending = [], [], [], 0
    if clips:
        yield torch.cat(clips), np.concatenate(owners), np.concatenate(labels)


def evaluate(
    model: nn.Module | Backend,
    entries: Sequence[VideoEntry],
    classes: Sequence[str],
    *,
    preprocess: dict[str, Any],
    protocol: dict[str, Any],
    batch_size: int = 8,
    num_workers: int | None = None,
    stress: str | None = None,
    stress_severity: float = 0.5,
    progress: bool = True,
) -> EvalResult:
    """Score ``entries`` with multi-view testing and compute clip- and video-level metrics.

    ``model`` is a torch module taking ``(N, C, T, H, W)`` and returning logits, or a backend
    (``runtime``: PyTorch or ONNX Runtime) that does the same. ``stress`` names a
    ``data.stress`` kind added to every clip before the transform. A module's train/eval mode is
    restored afterwards.
    """
    if not entries:
        raise DatasetError("nothing to evaluate: the dataset has no videos")
    started = time.perf_counter()
    views = DEFAULT_VIEWS.updated(protocol)
    protocol = {**protocol, **views.to_dict()}
    dataset = ClipSpec.from_dict(preprocess).dataset(list(entries), train=False, views=views)
    if stress:
        dataset.transform = StressedTransform(dataset.transform, stress, stress_severity)
    loader = make_loader(
        dataset,
        batch_size=max(1, batch_size // views.num_views),
        train=False,
        num_workers=num_workers,
    )
    label = f"evaluate[{stress}]" if stress else "evaluate"
    bar = progress_bar(
        total=len(entries), desc=label, unit="video", disable=not progress, leave=False
    )
    with bar:
        clip_logits, owners, label_by_index = _score_views(model, loader, batch_size, bar)
    skipped = skipped_videos(dataset)
    if not len(clip_logits):
        raise DatasetError(
            f"none of the {len(entries)} videos could be decoded "
            f"(first: {skipped[0]['path']}: {skipped[0]['reason']})"
            if skipped
            else "nothing to evaluate: the dataset gave no clips"
        )
    evaluated = np.unique(owners)
    position = {index: row for row, index in enumerate(evaluated.tolist())}
    clip_video_index = np.array([position[i] for i in owners.tolist()], dtype=np.int64)
    clip_probs, video_probs = videos_probabilities(clip_logits, clip_video_index, len(evaluated))
    labels = np.array([label_by_index[i] for i in evaluated.tolist()], dtype=np.int64)
    _check_class_count(clip_logits.shape[1], classes)
    measured = measurement_protocol(preprocess, protocol)
    measured.update(
        num_videos=len(entries),
        num_evaluated=len(evaluated),
        num_skipped=len(skipped),
        num_views=len(clip_logits),
        stress=stress,
        stress_severity=stress_severity if stress else None,
    )
    return EvalResult(
        clip_logits=clip_logits,
        clip_video_index=clip_video_index,
        video_probs=video_probs,
        labels=labels,
        metrics=classification_metrics(video_probs, labels),
        clip_metrics=classification_metrics(clip_probs, labels[clip_video_index]),
        protocol=measured,
        classes=list(classes),
        paths=[str(entries[i].path) for i in evaluated.tolist()],
        skipped=skipped,
        seconds=time.perf_counter() - started,
        preprocess=dict(preprocess),
    )


def _score_views(
    model: nn.Module | Backend, loader: Any, batch_size: int, bar: Any
) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Logits of every view, the dataset index of each, and each video's label."""
    run, restore = _model_runner(model)
    logits_parts: list[np.ndarray] = []
    owner_parts: list[np.ndarray] = []
    label_by_index: dict[int, int] = {}
    try:
        for clips, owners, labels in _packed_batches(loader, batch_size):
            logits_parts.append(run(clips))
            owner_parts.append(owners)
            for owner, video_label in zip(owners.tolist(), labels.tolist(), strict=True):
                label_by_index[owner] = video_label
            bar.update(len(np.unique(owners)))
    finally:
        restore()
    if not logits_parts:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), label_by_index
    return np.concatenate(logits_parts), np.concatenate(owner_parts), label_by_index


def _check_class_count(width: int, classes: Sequence[str]) -> None:
    if width != len(classes):
        raise ModelError(
            f"the model outputs {width} classes but the data has {len(classes)} "
            f"({', '.join(list(classes)[:5])}...); evaluate a checkpoint trained on these classes"
        )


def skipped_videos(dataset: Any) -> list[dict[str, str]]:
    """``{"path", "reason"}`` rows for the videos a dataset could not decode."""
    rows = []
    for item in getattr(dataset, "skipped", []) or []:
        if isinstance(item, dict):
            rows.append({"path": str(item.get("path")), "reason": str(item.get("reason", ""))})
        elif isinstance(item, tuple | list) and len(item) == 2:
            rows.append({"path": str(item[0]), "reason": str(item[1])})
        else:
            rows.append(
                {
                    "path": str(getattr(item, "path", item)),
                    "reason": str(getattr(item, "reason", "")),
                }
            )
    return rows


def entries_from_paths(paths: Sequence[str | Path], label: int = 0) -> list[VideoEntry]:
    """Entries for unlabelled videos (the label is a placeholder)."""
    return [VideoEntry(path=Path(p), label=label, group=None) for p in paths]


def load_for_evaluation(
    checkpoint: str | Path, data: str | Path, **reading: Any
) -> tuple[LoadedModel, list[VideoEntry]]:
    """The model file (``runtime.load_model``) and the data's entries, labelled in the model's
    class order. Every class of the data must be one the model knows; the model may know more.
    ``reading`` goes to ``read_manifest`` (``background``, ``skip_bad_rows``).
    """
    loaded = load_model(checkpoint)
    found = read_manifest(data, **reading)
    unknown = [name for name in found.classes if name not in loaded.classes]
    if unknown:
        raise DatasetError(
            f"{data} has class {unknown[0]!r}, which checkpoint {checkpoint} was not trained on "
            f"(it knows {len(loaded.classes)}: {', '.join(loaded.classes[:6])}"
            f"{'...' if len(loaded.classes) > 6 else ''})"
        )
    manifest = read_manifest(data, classes=loaded.classes, **reading)
    if not manifest.entries:
        raise DatasetError(f"{data} has no videos to evaluate")
    return loaded, manifest.entries


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    *,
    num_clips: int | None = None,
    num_crops: int | None = None,
    batch_size: int = 8,
    num_workers: int | None = None,
    progress: bool = True,
    compile: bool = False,
    background: str | None = None,
    skip_bad_rows: bool = False,
) -> tuple[EvalResult, LoadedModel, list[VideoEntry]]:
    """Evaluate a checkpoint or ONNX file on a dataset with its own clip spec and views.

    ``num_clips`` and ``num_crops`` override the stored views; ``compile`` runs a PyTorch model
    through ``torch.compile`` (``models.compile``). Returns the result (its protocol names the
    checkpoint and the data), the loaded model and the entries, so robustness runs reuse them.
    """
    if compile and is_onnx(checkpoint):
        raise ConfigError(f"--compile compiles PyTorch models; {checkpoint} runs on ONNX Runtime")
    loaded, entries = load_for_evaluation(
        checkpoint, data, background=background, skip_bad_rows=skip_bad_rows
    )
    overrides = {"num_clips": num_clips, "num_crops": num_crops}
    views = loaded.views.updated({k: v for k, v in overrides.items() if v is not None})
    model = loaded.network
    if compile:
        model = model_compile.compile_model(model)
    result = evaluate(
        model,
        entries,
        loaded.classes,
        preprocess=loaded.spec.to_dict(),
        protocol=views.to_dict(),
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
    )
    result.protocol.update(
        checkpoint=str(Path(checkpoint).resolve()),
        model=loaded.model_name,
        data=str(Path(data).resolve()),
    )
    return result, loaded, entries
