"""One loader for every model file, and one place for scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from resaction.errors import CheckpointError
from resaction.inference import Predictor
from resaction.models import create_model, default_preprocess
from resaction.models.checkpoint import save_checkpoint
from resaction.runtime import load_model, softmax, top_k, video_probabilities


def write_checkpoint(path: Path, **fields) -> Path:
    torch.manual_seed(0)
    model = create_model("tsn_resnet18", num_classes=3)
    return save_checkpoint(
        path, model, model_name="tsn_resnet18", classes=["a", "b", "c"], **fields
    )


def test_a_checkpoint_as_the_current_code_saves_it_loads(tmp_path: Path) -> None:
    """Trained checkpoints store the full preprocess dict and a 3-clip protocol."""
    stored = default_preprocess("tsn_resnet18") | {"crop": 96}
    path = write_checkpoint(
        tmp_path / "best.pt", preprocess=stored, protocol={"num_clips": 3, "num_crops": 1}
    )
    loaded = load_model(path)
    assert loaded.model_name == "tsn_resnet18" and loaded.classes == ["a", "b", "c"]
    assert loaded.spec.to_dict() == stored
    assert loaded.views.num_clips == 3 and not loaded.is_onnx
    clips = torch.zeros(2, 3, 8, 96, 96)
    assert loaded.backend(clips).shape == (2, 3)


def test_a_checkpoint_storing_only_overrides_gets_the_model_defaults(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "old.pt", preprocess={"crop": 80})
    loaded = load_model(path)
    assert loaded.spec.to_dict() == default_preprocess("tsn_resnet18") | {"crop": 80}
    assert loaded.views.to_dict() == {"num_clips": 3, "num_crops": 1, "aggregate": "mean_softmax"}
    assert Predictor.from_checkpoint(path).protocol == loaded.views.to_dict()


def test_expecting_another_model_is_one_line(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="holds a tsn_resnet18 model, not r3d_18"):
        load_model(path, expect_model="r3d_18")


def test_scores() -> None:
    logits = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    probs = softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(video_probabilities(logits), probs.mean(axis=0))
    assert top_k(np.array([0.2, 0.5, 0.3]), 2).tolist() == [1, 2]
    assert top_k(np.array([0.5, 0.5]), 5).tolist() == [0, 1]


def test_the_background_class_of_the_training_run_reaches_the_alarms(tmp_path: Path) -> None:
    """`train --background none` stores it in the run's config; calibrate, timeline and
    evaluate-events read ``extra["background"]``, so the background raised alarms."""
    model = create_model("tsn_resnet18", num_classes=2)
    for name, calibrated, expected in (
        ("trained", {}, "none"),
        ("calibrated", {"background": "fight"}, "fight"),
    ):
        path = save_checkpoint(
            tmp_path / f"{name}.pt",
            model,
            model_name="tsn_resnet18",
            classes=["fight", "none"],
            config={"background": "none"},
            **calibrated,
        )
        assert load_model(path).extra["background"] == expected
