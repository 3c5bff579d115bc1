"""Self-supervised pretraining on unlabelled videos: what speed, and which way, is this clip?

A user without internet access has no ImageNet or Kinetics weights, but often hours of footage
from their own cameras. ``pretrain`` teaches a network from that footage alone: each clip is
read at one of several playback speeds (frames 1, 2 or 4 apart) and forwards or backwards, and
the network learns to tell which. Recognising speed and the arrow of time needs what action
recognition needs (what moves, how, and how fast) and nothing a label gives (Misra et al. 2016;
Wei et al. 2018, "arrow of time"; Benaim et al. 2020, SpeedNet). It is plain classification, so
it costs what supervised training costs on a CPU and needs no large batches, unlike contrastive
methods (CVRL, rho-BYOL), whose negatives or momentum encoders want GPU-sized batches.

The run is an ordinary training run (``engine.trainer`` with another ``TrainingTask``): resumable,
with progress and checkpoints; its ``last.pt`` is what ``train --weights`` fine-tunes (the
pretext classifier is dropped, the rest is kept). See ``docs/pretraining.md``.

The second method, ``contrastive`` (``engine.contrastive``), learns instead that two clips of one
video belong together; it also pretrains RGB models.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from resaction.data.entries import VideoEntry
from resaction.data.spec import ClipSpec
from resaction.data.video_lists import list_videos
from resaction.engine.config import TrainConfig
from resaction.engine.contrastive import contrastive_loss, embedding_classes, pair_dataset
from resaction.engine.pretext import PretextDataset, pretext_classes
from resaction.engine.train_inputs import TrainingData, classification_loss
from resaction.engine.train_setup import TrainResult
from resaction.engine.trainer import train
from resaction.errors import CheckpointError, ConfigError
from resaction.models import model_info

PRETRAIN_ADAMW_LR = 0.003
"""The command's learning rate with AdamW: on generated footage (``tests/engine/test_pretrain.py``)
it learned the pretext task where AdamW at 0.001 learned it more slowly and SGD at 0.01 not at all
in the same 32 steps."""
ORDER_BLIND_FAMILIES = ("tsn", "resnet2d")  # average frames: blind to speed and direction


METHODS = ("speed", "contrastive")


class UnlabelledVideos:
    """The ``TrainingTask`` of pretraining: every video of ``config.data``, labels ignored;
    ``method`` is ``speed`` (which speed and direction) or ``contrastive``."""

    def __init__(self, method: str = "speed") -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown pretraining method {method!r}; use {' or '.join(METHODS)}")
        self.method = method
        self.loss = classification_loss if method == "speed" else contrastive_loss

    def data(
        self, config: TrainConfig, resumed_classes: list[str] | None, checkpoint: Path
    ) -> TrainingData:
        classes = pretext_classes() if self.method == "speed" else embedding_classes()
        if resumed_classes is not None and list(resumed_classes) != classes:
            raise CheckpointError(
                f"cannot resume {checkpoint}: it is not a {self.method} pretraining run of "
                f"this version (classes {', '.join(resumed_classes[:3])}...)"
            )
        videos = list_videos(config.data)
        return TrainingData(classes, [VideoEntry(video, 0) for video in videos], None)

    def dataset(self, spec: ClipSpec, entries: list[Any], seed: int) -> Dataset:
        if self.method == "speed":
            return PretextDataset(spec, entries, seed)
        return pair_dataset(spec, entries, seed)


def pretrain_config(config: TrainConfig, method: str = "speed") -> TrainConfig:
    """``config`` made a pretraining run: no validation, no class balance, no label smoothing,
    every epoch kept as ``last.pt``; for ``speed``, no time reversal (it would erase the arrow
    of time) and a model that sees motion."""
    if config.val_data:
        raise ConfigError("pretraining has no labels to validate on: drop --val-data")
    if method == "contrastive" and config.batch_size < 2:
        raise ConfigError(
            "contrastive pretraining needs at least 2 videos a batch (--batch-size 2 or more): "
            "with one, a clip's only other clip is its partner, and nothing is learned"
        )
    if method == "speed" and config.preprocess.get("direction_blind"):
        raise ConfigError(
            "pretraining learns the arrow of time: -p direction_blind=true would hide it"
        )
    info = model_info(config.model)
    modality = config.model_kwargs.get("modality", info.modality)
    if method == "speed" and info.family in ORDER_BLIND_FAMILIES and modality == "rgb":
        raise ConfigError(
            f"{config.model} sees one frame per segment, so it cannot see speed or direction: "
            "pretrain a model that reads motion (a *_diff_* model, TSM or a 3D ResNet), "
            "or use --method contrastive"
        )
    return dataclasses.replace(
        config,
        val_split=0.0,
        balance="none",
        label_smoothing=0.0,
        select="last",
    )


def pretrain(config: TrainConfig, method: str = "speed") -> TrainResult:
    """Run self-supervised pretraining (resumable like ``train``)."""
    task = UnlabelledVideos(method)
    return train(pretrain_config(config, method), task=task)


def chance_accuracy(method: str, classes: int, batch_size: int) -> float:
    """What guessing scores: one pretext class in ``classes``, or one partner among the other
    ``2 * batch_size - 1`` clips of a batch."""
    return 1 / classes if method == "speed" else 1 / max(2 * batch_size - 1, 1)
