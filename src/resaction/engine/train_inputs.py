"""What a training run learns from (its videos, classes and clip preprocessing, or another
``TrainingTask``'s) and how it is scored on its validation videos."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from resaction.data.manifests import read_manifest
from resaction.data.spans import training_window
from resaction.data.spec import DEFAULT_VIEWS, ClipSpec
from resaction.data.splits import train_test_split
from resaction.engine.config import TrainConfig, check_preprocess_keys
from resaction.engine.evaluate import evaluate
from resaction.errors import CheckpointError, DatasetError
from resaction.models.weights import training_preprocess


@dataclass
class TrainingData:
    """The entries a run trains and validates on, and the class names (sorted, label order)."""

    classes: list[str]
    train: list[Any]
    val: list[Any] | None


def load_training_data(
    config: TrainConfig, resumed_classes: list[str] | None, checkpoint: Path
) -> TrainingData:
    """Read ``config.data`` (and the validation data or split); fail early and clearly on data
    a run cannot use, or that does not match the run it resumes (``checkpoint``)."""
    read = functools.partial(
        read_manifest, background=config.background, skip_bad_rows=config.skip_bad_rows
    )
    manifest = read(config.data)
    if not manifest.entries:
        raise DatasetError(f"dataset {config.data} has no videos")
    if len(manifest.classes) < 2:
        raise DatasetError(
            f"dataset {config.data} has one class ({manifest.classes[0]!r}): a classifier "
            "learns to tell classes apart, so add videos of another (for example of the scene "
            "when nothing happens)"
        )
    val = None
    if config.val_data:
        found = read(config.val_data)
        unknown = [name for name in found.classes if name not in manifest.classes]
        if unknown:
            raise DatasetError(
                f"validation data {config.val_data} has class {unknown[0]!r}, "
                f"which the training data {config.data} lacks"
            )
        val = read(config.val_data, classes=manifest.classes).entries
        if not val:
            raise DatasetError(f"validation data {config.val_data} has no videos")
    elif config.val_split > 0:
        manifest, held_out = train_test_split(
            manifest, config.val_split, group_by=config.group_by, seed=config.seed
        )
        val = held_out.entries
    empty = [name for name, count in manifest.class_counts().items() if count == 0]
    if empty:
        split = config.val_split and not config.val_data
        raise DatasetError(
            f"class {empty[0]!r} has no training videos in {config.data}"
            + (" after the validation split: lower --val-split or add videos" if split else "")
        )
    if resumed_classes is not None and list(resumed_classes) != list(manifest.classes):
        raise CheckpointError(
            f"cannot resume {checkpoint}: it was trained on "
            f"{len(resumed_classes)} classes ({', '.join(resumed_classes[:4])}...), "
            f"the data has {len(manifest.classes)} ({', '.join(manifest.classes[:4])}...)"
        )
    return TrainingData(classes=list(manifest.classes), train=list(manifest.entries), val=val)


def training_pipeline(
    config: TrainConfig, entries: list[Any], say: Callable[[str], None] = lambda _: None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's preprocessing and test protocol, as plain dicts for its checkpoints.

    The model's (or its named weights') preprocessing, the config's overrides on top, the
    model's ``segment_len``, and ``window_s`` for models spreading frames over whole videos.
    """
    defaults = training_preprocess(config.model, config.weights)
    check_preprocess_keys(config.preprocess, defaults)
    preprocess = {**defaults, **config.preprocess}
    if "segment_len" in config.model_kwargs and "segment_len" not in config.preprocess:
        preprocess["segment_len"] = int(config.model_kwargs["segment_len"])
    ClipSpec.from_dict(preprocess)
    window = training_window(preprocess, entries)
    if window is not None:
        preprocess["window_s"] = round(window, 3)
        say(f"clips covered a median {window:.2f} s of video (the window inference will use)")
    return preprocess, DEFAULT_VIEWS.updated(config.protocol).to_dict()


def classification_loss(
    forward: Callable[[torch.Tensor], torch.Tensor],
    clips: torch.Tensor,
    labels: torch.Tensor,
    criterion: nn.Module,
) -> tuple[torch.Tensor, float]:
    """The batch's loss under ``criterion`` and how many clips the model got right."""
    logits = forward(clips)
    loss = criterion(logits.float(), labels)
    return loss, float((logits.detach().argmax(dim=1) == labels).sum())


class TrainingTask(Protocol):
    """What a run learns: its data and classes, the dataset its clips come from, and the loss
    of a batch (with the number of clips it got right)."""

    def data(
        self, config: TrainConfig, resumed_classes: list[str] | None, checkpoint: Path
    ) -> TrainingData: ...

    def dataset(self, spec: ClipSpec, entries: list[Any], seed: int) -> Dataset: ...

    def loss(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        clips: torch.Tensor,
        labels: torch.Tensor,
        criterion: nn.Module,
    ) -> tuple[torch.Tensor, float]: ...


class LabelledVideos:
    """Supervised training: the labels of ``config.data``, clips as the spec samples them."""

    def data(
        self, config: TrainConfig, resumed_classes: list[str] | None, checkpoint: Path
    ) -> TrainingData:
        return load_training_data(config, resumed_classes, checkpoint)

    def dataset(self, spec: ClipSpec, entries: list[Any], seed: int) -> Dataset:
        return spec.dataset(entries, train=True, seed=seed)

    loss = staticmethod(classification_loss)


def validation_row(
    model: nn.Module,
    entries: list[Any],
    classes: list[str],
    preprocess: dict[str, Any],
    protocol: dict[str, Any],
    config: TrainConfig,
) -> tuple[dict[str, float], list[dict[str, str]]]:
    """The epoch's validation numbers (loss of the averaged view probabilities, top-1/5, mean
    class accuracy) and the validation videos that could not be decoded."""
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            result = evaluate(
                model,
                entries,
                classes,
                preprocess=preprocess,
                protocol=protocol,
                batch_size=config.batch_size,
                num_workers=config.num_workers,
                progress=config.progress,
            )
    except DatasetError as error:
        raise DatasetError(f"validation: {error}") from None
    probs = torch.as_tensor(result.video_probs, dtype=torch.float64)
    labels = torch.as_tensor(result.labels, dtype=torch.int64)
    picked = probs[torch.arange(len(labels)), labels].clamp_min(1e-12)
    row = {
        "val_loss": float(-picked.log().mean()),
        "val_top1": float(result.metrics["top1"]),
        "val_top5": float(result.metrics["top5"]),
        "val_mean_class_accuracy": float(result.metrics["mean_class_accuracy"]),
    }
    return row, list(result.skipped)


def nothing_trained(dataset: Any, epoch: int) -> DatasetError:
    """The error for an epoch that read no clip at all: a run must not save a model it never
    trained (with no validation set nothing else would notice)."""
    rows = dataset.skipped.as_dicts() if hasattr(dataset, "skipped") else []
    first = f" (first: {rows[0]['path']}: {rows[0]['reason']})" if rows else ""
    return DatasetError(
        f"epoch {epoch + 1} read no training clip: none of the {len(dataset)} training videos "
        f"could be decoded{first}"
    )
