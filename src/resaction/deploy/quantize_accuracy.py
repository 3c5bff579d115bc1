"""Did quantisation cost accuracy? Float and int8 scored on the same held-out videos (none of
them used for calibration), with the labels that changed and the speed of each."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resaction.data.manifests import read_manifest
from resaction.engine.evaluate import evaluate
from resaction.errors import DatasetError
from resaction.runtime.loading import load_model

ACCEPTABLE_DROP_POINTS = 1.0


@dataclass
class ModelScore:
    """One model's accuracy and speed on the held-out videos."""

    name: str
    path: Path
    top1: float
    ms_per_clip: float
    size_mb: float
    predictions: list[int] = field(default_factory=list, repr=False)


@dataclass
class AccuracyComparison:
    """Float and int8 scored on the same held-out videos."""

    fp32: ModelScore
    int8: ModelScore
    num_videos: int
    agreement: float

    @property
    def accuracy_drop(self) -> float:
        """Points of top-1 lost by quantising (positive = int8 is worse)."""
        return 100.0 * (self.fp32.top1 - self.int8.top1)

    @property
    def speedup(self) -> float:
        return self.fp32.ms_per_clip / max(1e-9, self.int8.ms_per_clip)

    def warning(self, max_drop: float = ACCEPTABLE_DROP_POINTS) -> str | None:
        """A line to show when int8 costs more than ``max_drop`` points, else None.

        Measured on models trained from scratch on small data: their decision margins are thin,
        and 8-bit activations can flip several percent of labels (see docs/deploy.md).
        """
        if self.accuracy_drop <= max_drop:
            return None
        changed = round((1.0 - self.agreement) * self.num_videos)
        return (
            f"int8 loses {self.accuracy_drop:.1f} points of top-1 (more than {max_drop:g}) and "
            f"changes the label of {changed} of {self.num_videos} videos; "
            "keep the fp32 .onnx where that matters"
        )


def compare_accuracy(
    fp32: str | Path,
    int8: str | Path,
    data: str | Path,
    *,
    exclude: set[str] | None = None,
    max_videos: int | None = None,
    num_workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> AccuracyComparison:
    """Top-1 and ms/clip of both models on ``data``'s videos, leaving out ``exclude`` paths."""
    reference = load_model(fp32)  # a frames file too
    entries = held_out_entries(data, reference.classes, exclude or set(), max_videos, seed)
    scores = [
        score_onnx(name, path, entries, num_workers=num_workers, progress=progress)
        for name, path in (("onnx fp32", Path(fp32)), ("onnx int8", Path(int8)))
    ]
    agreement = float(
        np.mean(np.asarray(scores[0].predictions) == np.asarray(scores[1].predictions))
    )
    return AccuracyComparison(scores[0], scores[1], len(scores[0].predictions), agreement)


def check_eval_classes(data: str | Path | None, classes: Sequence[str]) -> None:
    """Refuse held-out videos of a class the model lacks; called before the model is written,
    so the mistake costs no quantisation or fine-tuning."""
    if data is None:
        return
    unknown = [name for name in read_manifest(data).classes if name not in classes]
    if unknown:
        raise DatasetError(
            f"{data} has class {unknown[0]!r}, which the model does not know "
            f"({', '.join(list(classes)[:6])}); evaluate on videos of its classes"
        )


def held_out_entries(
    data: str | Path,
    classes: Sequence[str],
    exclude: set[str],
    max_videos: int | None,
    seed: int,
    remedy: str = "give held-out videos with --eval",
) -> list[Any]:
    """``data``'s videos labelled in the model's class order, minus ``exclude``d paths;
    ``remedy`` is what the error says to do when none are left."""
    check_eval_classes(data, classes)
    entries = [
        entry
        for entry in read_manifest(data, classes=list(classes)).entries
        if str(Path(entry.path).resolve()) not in exclude
    ]
    if not entries:
        raise DatasetError(
            f"{data} has no videos left for the accuracy check after removing the "
            f"calibration videos; {remedy}"
        )
    if max_videos is not None and len(entries) > max_videos:
        order = np.random.default_rng(seed).permutation(len(entries))[:max_videos]
        entries = [entries[i] for i in sorted(order.tolist())]
    return entries


def score_onnx(
    name: str,
    path: Path,
    entries: Sequence[Any],
    *,
    num_workers: int | None = None,
    progress: bool = True,
) -> ModelScore:
    """Evaluate an ONNX model on ``entries`` with its own protocol, and time one clip."""
    loaded = load_model(path)
    backend = loaded.backend
    result = evaluate(
        backend,
        entries,
        loaded.classes,
        preprocess=loaded.spec.to_dict(),
        protocol=loaded.views.to_dict(),
        num_workers=num_workers,
        progress=progress,
    )
    clip = np.random.default_rng(0).standard_normal((1, *backend.input_shape[1:]), np.float32)
    return ModelScore(
        name=name,
        path=path,
        top1=result.top1,
        ms_per_clip=median_ms(lambda: backend(clip)),
        size_mb=path.stat().st_size / 1e6,
        predictions=result.predictions.tolist(),
    )


def median_ms(run: Any, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``run()`` in milliseconds after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))
