"""Small checkpoints for the deployment tests: registered models at a tiny input size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint

GT_CLASSES = ["A1_arms_up_sideways", "A2_one_hand_wave", "A3_arms_up_forward"]


def tiny_preprocess(**overrides: Any) -> dict[str, Any]:
    preprocess = {
        "clip_len": 4,
        "sampling": "dense",
        "frame_interval": 2,
        "target_fps": None,
        "resize": 40,
        "crop": 32,
        "mean": [0.45, 0.45, 0.45],
        "std": [0.225, 0.225, 0.225],
    }
    preprocess.update(overrides)
    return preprocess


def make_checkpoint(
    path: Path,
    name: str = "r3d_10",
    classes: list[str] | None = None,
    *,
    model_kwargs: dict[str, Any] | None = None,
    **preprocess: Any,
) -> Path:
    """A randomly initialised model with a sharpened classifier, so that its predictions depend
    clearly on the input (a fresh head gives nearly uniform, tie-prone outputs)."""
    classes = classes or GT_CLASSES
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(classes), **(model_kwargs or {}))
    with torch.no_grad():
        model.get_classifier().weight.mul_(100.0)
    return save_checkpoint(
        path,
        model,
        model_name=name,
        classes=classes,
        model_kwargs=model_kwargs,
        preprocess=tiny_preprocess(**preprocess),
        protocol={"num_clips": 2, "num_crops": 1},
    )


@pytest.fixture(autouse=True)
def two_torch_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def gt_videos(videos_dir: Path) -> Path:
    """27 real clips of 3 actions (3 people x 3 trials), the calibration data of the tests."""
    return videos_dir / "gt_cs4495_ps7"


@pytest.fixture(scope="session")
def r3d_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "r3d_10.pt")


@pytest.fixture(scope="session")
def r3d_onnx(r3d_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resaction.deploy.export import export_checkpoint

    return export_checkpoint(r3d_checkpoint, tmp_path_factory.mktemp("onnx") / "r3d_10.onnx").path
