from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch

from resaction.errors import ModelError
from resaction.models import create_model, model_info

REFERENCE_MODELS = ["resnet18", "resnet34", "resnet50"]


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_has_torchvisions_keys_shapes_and_parameter_count(
    name: str, torchvision_reference: dict[str, Any]
) -> None:
    ref = torchvision_reference[name]
    model = create_model(name, num_classes=ref["num_classes"])

    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}

    assert shapes == ref["state_dict_shapes"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_torchvision_state_dict_loads_strictly_and_gives_its_logits(
    name: str, torchvision_reference: dict[str, Any], reference_weights: ModuleType
) -> None:
    ref = torchvision_reference[name]
    model = create_model(name, num_classes=ref["num_classes"]).eval()
    model.load_state_dict(reference_weights.make_state_dict(ref["state_dict_shapes"]), strict=True)

    with torch.no_grad():
        logits = model(reference_weights.make_input(ref["input_shape"]))

    torch.testing.assert_close(logits[:, :16], torch.tensor(ref["logits"]), rtol=0, atol=1e-4)
    assert logits.sum().item() == pytest.approx(ref["logits_sum"], abs=1e-3)
    assert logits.abs().sum().item() == pytest.approx(ref["logits_abs_sum"], rel=1e-5)


def test_resnet101_has_torchvisions_depth_and_size() -> None:
    model = create_model("resnet101")

    assert len(model.layer3) == 23
    # torchvision's ResNet101_Weights meta: num_params 44,549,160.
    assert sum(p.numel() for p in model.parameters()) == 44_549_160


def test_clip_input_averages_the_logits_of_its_frames() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=6).eval()
    clip = torch.randn(2, 3, 3, 32, 32)

    with torch.no_grad():
        per_frame = torch.stack([model(clip[:, :, t]) for t in range(3)], dim=1)
        logits = model(clip)

    torch.testing.assert_close(logits, per_frame.mean(dim=1), rtol=0, atol=1e-5)


def test_rejects_input_that_is_neither_image_nor_clip() -> None:
    model = create_model("resnet18", num_classes=2)

    with pytest.raises(ModelError, match=r"\(N, C, T, H, W\)"):
        model(torch.zeros(3, 64, 64))


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101"])
def test_image_models_declare_imagenet_inputs(name: str) -> None:
    info = model_info(name)

    assert (info.family, info.clip_len, info.input_size, info.resize) == ("resnet2d", 1, 224, 256)
    assert info.default_num_classes == 1000
    assert "imagenet" in info.weights
