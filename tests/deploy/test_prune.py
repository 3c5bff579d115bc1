from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from resaction.deploy.prune import (
    check_ratio,
    count_params,
    example_input,
    prune_checkpoint,
    prune_model,
)
from resaction.errors import CheckpointError, ConfigError
from resaction.models import create_model
from resaction.models.checkpoint import load_checkpoint, save_checkpoint, update_checkpoint
from resaction.models.pruned import shrink_to_state_dict

from .conftest import GT_CLASSES, make_checkpoint, tiny_preprocess


@pytest.mark.parametrize("ratio", [0.0, -0.1, 0.95, 1.0, math.nan])
def test_ratio_out_of_range_is_one_line(ratio: float) -> None:
    with pytest.raises(ConfigError, match="pruning ratio") as error:
        check_ratio(ratio)
    assert "\n" not in str(error.value)


def _silence_half_of_inner_channels(model: nn.Module) -> None:
    """Zero the first half of the channels between the two convolutions of every basic block:
    they carry nothing, so a magnitude pruner at ratio 0.5 must remove exactly them."""
    for name, module in model.named_modules():
        if name.count(".") == 1 and name.startswith("layer") and hasattr(module, "conv1"):
            half = module.conv1.out_channels // 2
            with torch.no_grad():
                module.conv1.weight[:half] = 0
                module.bn1.weight[:half] = 0
                module.bn1.bias[:half] = 0
                module.conv2.weight[:, :half] = 0


def test_pruning_silent_channels_keeps_the_output() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=4).eval()
    _silence_half_of_inner_channels(model)
    clips = torch.randn(2, 3, 2, 48, 48)
    with torch.no_grad():
        before = model(clips)
    result = prune_model(model, 0.5, clips[:1], keep_residual=True)
    with torch.no_grad():
        after = model(clips)
    assert result.params_after < result.params_before
    assert result.gflops_after < result.gflops_before
    assert model.layer1[0].conv1.out_channels == 32
    assert model.layer4[1].conv1.out_channels == 256
    assert model.layer1[0].conv2.out_channels == 64, "residual channels were kept"
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_pruned_checkpoint_loads_everywhere(tmp_path: Path, videos_dir: Path) -> None:
    from resaction.inference import Predictor

    checkpoint = make_checkpoint(tmp_path / "resnet18.pt", "resnet18", sampling="segments")
    background = GT_CLASSES[0]
    calibrated = {"thresholds": {GT_CLASSES[1]: 0.7}, "calibration": {"rate": 1.0}}
    update_checkpoint(checkpoint, {**calibrated, "background": background})
    with pytest.warns(UserWarning, match="calibrated thresholds of .* are not carried over"):
        report = prune_checkpoint(checkpoint, 0.3, tmp_path / "pruned.pt")
    result = report.result
    assert result.param_ratio < 0.75 and result.flop_ratio < 0.75
    bundle = load_checkpoint(report.path)
    assert bundle.extra["pruned"] is True and bundle.extra["prune"]["ratio"] == 0.3
    assert bundle.extra["background"] == background, "alarms would fire on the background"
    assert "thresholds" not in bundle.extra and "calibration" not in bundle.extra
    clips = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(clips), result.model(clips))
    assert sum(p.numel() for p in bundle.model.parameters()) == result.params_after

    predictor = Predictor.from_checkpoint(report.path)
    video = next((videos_dir / "kth_samples" / "boxing").iterdir())
    assert predictor.predict(video).label in bundle.classes


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "preprocess", "options"),
    [
        ("r2plus1d_18", {}, {}),
        ("lrcn_resnet18", {}, {}),
        ("tsm_resnet18", {"sampling": "segments"}, {}),
        ("tsn_diff_resnet18", {"sampling": "segments", "segment_len": 2}, {"segment_len": 2}),
    ],
)
def test_families_prune_save_reload_and_export(
    name: str, preprocess: dict, options: dict, tmp_path: Path
) -> None:
    from resaction.deploy.export import export_checkpoint
    from resaction.runtime.onnx_backend import OnnxBackend

    checkpoint = make_checkpoint(tmp_path / f"{name}.pt", name, model_kwargs=options, **preprocess)
    report = prune_checkpoint(checkpoint, 0.3, tmp_path / "pruned.pt")
    model = load_checkpoint(report.path).model
    assert report.result.params_after < 0.8 * report.result.params_before
    if name == "tsm_resnet18":
        assert report.result.keep_residual and model.conv1.out_channels == 64
        assert model.layer1[0].conv1.out_channels < 64
    if name == "lrcn_resnet18":
        assert model.rnn.input_size < 512 and model.rnn.hidden_size == 512
    if name == "tsn_diff_resnet18":
        assert model.conv1.in_channels == 3 and model.segment_len == 2
    clips = example_input(tiny_preprocess(**preprocess), batch=2)
    clips.normal_()
    exported = export_checkpoint(report.path, tmp_path / "pruned.onnx")
    with torch.no_grad():
        expected = model(clips).numpy()
    np.testing.assert_allclose(OnnxBackend(exported.path)(clips), expected, atol=1e-3)


def test_shrink_refuses_a_state_dict_of_another_architecture() -> None:
    model = create_model("resnet18", num_classes=2)
    state = {"conv1.weight": torch.zeros(64, 3, 7)}
    with pytest.raises(CheckpointError, match="another architecture"):
        shrink_to_state_dict(model, state)


def test_unpruned_checkpoint_with_other_shapes_still_fails_cleanly(tmp_path: Path) -> None:
    model = create_model("resnet18", num_classes=2)
    model.fc = nn.Linear(512, 2)
    model.layer4[1].conv2 = nn.Conv2d(512, 500, 3, padding=1, bias=False)
    path = save_checkpoint(tmp_path / "odd.pt", model, model_name="resnet18", classes=["a", "b"])
    with pytest.raises(CheckpointError, match="does not match model resnet18"):
        load_checkpoint(path)


@pytest.mark.slow
def test_finetune_after_pruning_on_real_videos(tmp_path: Path, gt_videos: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "resnet18.pt", "resnet18", clip_len=2)
    report = prune_checkpoint(
        checkpoint,
        0.5,
        tmp_path / "pruned.pt",
        finetune_epochs=1,
        data=gt_videos,
        group_by=r"P(\d)",
        batch_size=4,
        num_workers=0,
        progress=False,
    )
    assert len(report.finetune_history) == 1
    row = report.finetune_history[0]
    assert math.isfinite(row["train_loss"]) and 0.0 <= row["val_top1"] <= 1.0
    assert load_checkpoint(report.path).extra["prune"]["finetune_epochs"] == 1


def test_finetune_needs_data(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "resnet18.pt", "resnet18", clip_len=2)
    with pytest.raises(ConfigError, match="--data"):
        prune_checkpoint(checkpoint, 0.3, tmp_path / "p.pt", finetune_epochs=1)


def test_each_layer_keeps_the_nearest_multiple_of_sixteen_channels() -> None:
    model = create_model("r3d_10", num_classes=3).eval()
    result = prune_model(model, 0.3, example_input(tiny_preprocess()))
    convs = {name: width for name, width in result.widths.items() if name != "classifier_in"}
    assert all(width % 16 == 0 for width in convs.values()), convs
    # 70% of 64, 128, 256, 512 is 44.8, 89.6, 179.2, 358.4: nearest multiples 48, 96, 176, 352
    assert sorted(set(convs.values())) == [48, 96, 176, 352]
    assert 0.4 < result.param_ratio < 0.6


@pytest.mark.slow
def test_train_starts_from_a_pruned_checkpoint(tmp_path: Path, gt_videos: Path) -> None:
    """``train --weights pruned.pt`` keeps the pruned widths, and its checkpoints reload."""
    from resaction.engine.config import TrainConfig
    from resaction.engine.trainer import train

    checkpoint = make_checkpoint(tmp_path / "resnet18.pt", "resnet18", clip_len=2)
    pruned = prune_checkpoint(checkpoint, 0.5, tmp_path / "pruned.pt", progress=False)
    config = TrainConfig(
        data=str(gt_videos),
        model="resnet18",
        weights=str(pruned.path),
        out=str(tmp_path / "run"),
        epochs=1,
        batch_size=4,
        val_split=0.0,
        preprocess={"clip_len": 2},
        num_workers=0,
        progress=False,
    )
    result = train(config)
    trained = load_checkpoint(result.checkpoint)
    assert trained.extra.get("pruned") is True
    assert count_params(trained.model) == count_params(load_checkpoint(pruned.path).model)
