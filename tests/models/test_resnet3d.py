from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch

from resaction.data.transforms import KINETICS_MEAN, KINETICS_STD
from resaction.errors import ModelError
from resaction.models import create_model, default_preprocess, list_models, model_info, model_stats
from resaction.models.resnet3d import BasicBlock3d, BasicStem, Conv3DSimple, VideoResNet

TORCHVISION_MODELS = ["r3d_18", "mc3_18", "r2plus1d_18"]
RESNET3D_MODELS = [name for name in list_models() if model_info(name).family == "resnet3d"]

# torchvision's weight metadata (`_ops`, GMACs per 16x112x112 clip) for its Kinetics-400 models.
TORCHVISION_GMACS = {"r3d_18": 40.697, "mc3_18": 43.343, "r2plus1d_18": 40.519}


def test_registers_the_whole_family() -> None:
    expected = {"r3d_10", "r3d_18", "r3d_34", "r3d_50", "mc3_18", "r2plus1d_18", "r2plus1d_34"}
    assert set(RESNET3D_MODELS) == expected


@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_torchvision_state_dict_loads_strictly_and_gives_its_logits(
    name: str, torchvision_reference: dict[str, Any], reference_weights: ModuleType
) -> None:
    ref = torchvision_reference[name]
    model = create_model(name, num_classes=ref["num_classes"]).eval()
    model.load_state_dict(reference_weights.make_state_dict(ref["state_dict_shapes"]), strict=True)
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]

    with torch.no_grad():
        logits = model(reference_weights.make_input(ref["input_shape"]))

    assert logits.shape == (ref["input_shape"][0], ref["num_classes"])
    torch.testing.assert_close(logits[:, :16], torch.tensor(ref["logits"]), rtol=0, atol=1e-4)
    assert logits.sum().item() == pytest.approx(ref["logits_sum"], abs=1e-3)
    assert logits.abs().sum().item() == pytest.approx(ref["logits_abs_sum"], rel=1e-5)


@pytest.mark.parametrize("name", RESNET3D_MODELS)
def test_forward_and_backward_on_a_tiny_clip(name: str) -> None:
    model = create_model(name, num_classes=7)
    clip = torch.randn(2, 3, 4, 32, 32)

    logits = model(clip)
    logits.square().mean().backward()

    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.get_classifier() is model.fc


@pytest.mark.parametrize("name", RESNET3D_MODELS)
def test_metadata_and_measured_stats(name: str) -> None:
    info = model_info(name)
    stats = model_stats(name)
    model = create_model(name)

    assert (info.clip_len, info.input_size, info.resize) == (16, 112, 128)
    assert (info.mean, info.std) == (KINETICS_MEAN, KINETICS_STD)
    assert info.default_num_classes == model.fc.out_features == 400
    assert stats.params == sum(p.numel() for p in model.parameters())
    assert stats.input_shape == (1, 3, 16, 112, 112)
    if name in TORCHVISION_MODELS:
        assert info.weights == ("kinetics400",)
        assert default_preprocess(name)["target_fps"] == 15
        assert stats.gflops == pytest.approx(2 * TORCHVISION_GMACS[name], rel=1e-3)
    else:
        assert info.weights == ()


def test_stage_names_for_generic_freezing() -> None:
    model = create_model("r2plus1d_18")
    children = dict(model.named_children())
    assert list(children) == ["stem", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]


def test_reset_classifier_changes_outputs_and_keeps_the_trunk() -> None:
    model = create_model("r3d_10").eval()
    trunk = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}

    model.reset_classifier(5)

    assert model.get_classifier().out_features == 5
    assert model(torch.randn(1, 3, 2, 32, 32)).shape == (1, 5)
    for key, value in trunk.items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_mc3_keeps_time_above_layer1_and_r3d_does_not() -> None:
    """MC3's spatial-only stages keep the clip length; R3D's strided 3D stages halve it."""
    clip = torch.randn(1, 3, 8, 32, 32)
    for name, time_out in (("mc3_18", 8), ("r3d_18", 1)):
        model = create_model(name).eval()
        with torch.no_grad():
            features = model.layer4(model.layer3(model.layer2(model.layer1(model.stem(clip)))))
        assert features.shape[2] == time_out, name


def test_one_builder_per_block_composes_a_stage() -> None:
    per_block = [Conv3DSimple, Conv3DSimple]
    model = VideoResNet(BasicBlock3d, [per_block] * 4, [2, 2, 2, 2], BasicStem, num_classes=3)
    reference = create_model("r3d_18", num_classes=3)
    model.load_state_dict(reference.state_dict(), strict=True)
    clip = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(clip), reference.eval()(clip))


def test_builder_count_must_match_blocks() -> None:
    with pytest.raises(ModelError, match="2 blocks got 3 conv builders"):
        VideoResNet(BasicBlock3d, [[Conv3DSimple] * 3] * 4, [2, 2, 2, 2], BasicStem)


def test_rejects_images_with_a_clear_error() -> None:
    model = create_model("r3d_10")
    with pytest.raises(ModelError, match=r"\(N, C, T, H, W\)"):
        model(torch.randn(1, 3, 32, 32))
