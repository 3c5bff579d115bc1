"""An untrained two-class TSN small enough for the watcher tests (2 frames, 32 px)."""

from __future__ import annotations

from pathlib import Path

from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint

CLASSES = ["fight", "noFight"]


def save_tiny_tsn(path: Path) -> Path:
    model = create_model("tsn_resnet18", num_classes=2, num_segments=2)
    preprocess = {"clip_len": 2, "resize": 40, "crop": 32, "mean": [0.45] * 3, "std": [0.225] * 3}
    return save_checkpoint(
        path, model, model_name="tsn_resnet18", classes=CLASSES, preprocess=preprocess
    )
