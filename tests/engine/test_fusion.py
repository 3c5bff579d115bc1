from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from resaction.data.synthetic import generate_dataset
from resaction.engine.fusion import choose_weights, fuse_checkpoints, weight_grid
from resaction.errors import ConfigError
from resaction.models.checkpoint import load_checkpoint, save_checkpoint
from resaction.models.factory import create_model
from resaction.models.fusion import FUSION_NAME

INPUT = {"resize": 32, "crop": 32, "sampling": "segments", "frame_interval": 1}


def test_the_grid_covers_the_simplex() -> None:
    assert weight_grid(2, steps=4) == [(0, 1), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (1, 0)]
    assert all(sum(w) == pytest.approx(1) for w in weight_grid(3, steps=5))


def test_the_weighting_with_the_best_validation_accuracy_wins() -> None:
    labels = np.array([0, 0, 1, 1])
    sure_wrong = np.array([[0.1, 0.9], [0.1, 0.9], [0.1, 0.9], [0.1, 0.9]])  # right on 2 of 4
    mostly_right = np.array([[0.6, 0.4], [0.6, 0.4], [0.45, 0.55], [0.55, 0.45]])  # 3 of 4
    weights, top1 = choose_weights([sure_wrong, mostly_right], labels)
    fused = weights[0] * sure_wrong + weights[1] * mostly_right
    assert top1 == float(np.mean(fused.argmax(1) == labels)) == 1.0
    assert 0 < weights[0] < 1  # neither part alone gets all four


def _checkpoint(folder: Path, model: str, clip_len: int, classes: list[str], seed: int) -> Path:
    torch.manual_seed(seed)
    network = create_model(model, num_classes=len(classes), num_segments=2)
    segment_len = clip_len // 2
    preprocess = {**INPUT, "clip_len": clip_len, "mean": [0.5] * 3, "std": [0.25] * 3}
    if segment_len > 1:
        preprocess["segment_len"] = segment_len
    return save_checkpoint(
        folder / f"{model}.pt",
        network,
        model_name=model,
        classes=classes,
        model_kwargs={"num_segments": 2},
        preprocess=preprocess,
        protocol={"num_clips": 1, "num_crops": 1},
    )


@pytest.fixture(scope="module")
def two_streams(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("fusion")
    data = generate_dataset(root / "data", 2, size=32, num_frames=12, progress=False)
    classes = sorted(p.name for p in (root / "data").iterdir() if p.is_dir())
    rgb = _checkpoint(root, "tsn_resnet18", 2, classes, seed=1)
    motion = _checkpoint(root, "tsn_diff_resnet18", 6, classes, seed=2)
    return data, rgb, motion


def test_the_command_fuses_into_a_checkpoint_whose_scores_are_the_weighted_sum_of_its_parts(
    two_streams, tmp_path, capsys
) -> None:
    from resaction.cli import run_app

    data, rgb, motion = two_streams
    out = tmp_path / "fused.pt"
    args = ["fuse", str(rgb), str(motion), "--val-data", str(data), "--out", str(out)]
    assert run_app([*args, "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "tsn_resnet18: weight" in printed and "tsn_diff_resnet18: weight" in printed
    fused = load_checkpoint(out)
    assert fused.model_name == FUSION_NAME and fused.preprocess["segment_len"] == 3
    weights = fused.model_kwargs["weights"]
    assert sum(weights) == pytest.approx(1) and fused.extra["fusion"]["videos"] == 20
    parts = [load_checkpoint(rgb).model, load_checkpoint(motion).model]
    clip = torch.randn(2, 3, 6, 32, 32)
    with torch.no_grad():
        expected = weights[0] * parts[0](clip[:, :, 1::3]).softmax(1)
        expected += weights[1] * parts[1](clip).softmax(1)
        assert torch.allclose(fused.model(clip).softmax(1), expected, atol=1e-6)
    assert run_app(["fuse", str(rgb), "--val-data", str(data), "--out", str(out)]) == 1
    assert "two or more" in capsys.readouterr().err

    from resaction.deploy.export import export_checkpoint
    from resaction.runtime.loading import load_model

    exported = export_checkpoint(out, tmp_path / "fused.onnx")  # one graph, same scores
    assert exported.max_abs_diff is not None and exported.max_abs_diff < 1e-3
    onnx = load_model(exported.path)
    assert onnx.spec.segment_len == 3 and onnx.classes == fused.classes
    logits = torch.from_numpy(onnx.backend(clip[:1].numpy()))
    assert np.allclose(logits.softmax(1).numpy(), expected[:1].numpy(), atol=1e-4)


def test_fusing_models_that_see_different_pixels_is_refused(two_streams, tmp_path) -> None:
    data, rgb, _ = two_streams
    other = load_checkpoint(rgb)
    wide = save_checkpoint(
        tmp_path / "wide.pt",
        other.model,
        model_name=other.model_name,
        classes=other.classes,
        model_kwargs=other.model_kwargs,
        preprocess={**other.preprocess, "crop": 28},
    )
    with pytest.raises(ConfigError, match="differ in crop"):
        fuse_checkpoints([rgb, wide], data, tmp_path / "x.pt", num_workers=0, progress=False)
