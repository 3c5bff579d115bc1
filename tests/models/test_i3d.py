from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from resaction.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from resaction.errors import ModelError
from resaction.models import create_model, list_models, model_info, model_stats
from resaction.models.i3d import i3d_resnet, temporal_kernels
from resaction.models.inflation import inflate_state_dict

I3D_MODELS = [name for name in list_models() if model_info(name).family == "i3d"]


def pretrained_like_2d_resnet(
    depth: int, reference: Path, reference_weights: ModuleType
) -> nn.Module:
    """The 2D ResNet with the reference's deterministic, realistically scaled weights."""
    shapes = json.loads((reference / "torchvision_reference.json").read_text())[f"resnet{depth}"]
    model = create_model(f"resnet{depth}")
    model.load_state_dict(reference_weights.make_state_dict(shapes["state_dict_shapes"]))
    return model.eval()


def inflated(model_2d: nn.Module, name: str, mode: str, **kwargs) -> nn.Module:
    model_3d = create_model(name, num_classes=model_2d.fc.out_features, **kwargs)
    model_3d.load_state_dict(inflate_state_dict(model_2d.state_dict(), model_3d, mode), strict=True)
    return model_3d.eval()


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("mode", ["mean", "centre"])
def test_inflated_model_on_a_repeated_frame_gives_the_2d_logits(
    depth: int, mode: str, reference: Path, reference_weights: ModuleType
) -> None:
    model_2d = pretrained_like_2d_resnet(depth, reference, reference_weights)
    model_3d = inflated(model_2d, f"i3d_resnet{depth}", mode)
    frames = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    boring_clip = frames.unsqueeze(2).expand(-1, -1, 6, -1, -1)

    with torch.no_grad():
        expected = model_2d(frames)
        actual = model_3d(boring_clip)

    assert expected.abs().max() > 0.5
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("layout", ["all", (True, (1, 3), 5, False)])
def test_the_property_holds_for_any_temporal_layout(
    layout: object, reference: Path, reference_weights: ModuleType
) -> None:
    model_2d = pretrained_like_2d_resnet(18, reference, reference_weights)
    model_3d = inflated(model_2d, "i3d_resnet18", "mean", temporal_stages=layout)
    frame = torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(1))

    with torch.no_grad():
        expected = model_2d(frame)
        actual = model_3d(frame.unsqueeze(2).expand(-1, -1, 5, -1, -1))

    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


def test_centre_inflation_starts_as_the_2d_model_frame_by_frame(
    reference: Path, reference_weights: ModuleType
) -> None:
    """On a moving clip: centre mode equals the 2D model's mean of per-frame logits; mean mode,
    which mixes neighbouring frames, does not."""
    model_2d = pretrained_like_2d_resnet(18, reference, reference_weights)
    clip = torch.randn(2, 3, 4, 40, 40, generator=torch.Generator().manual_seed(2))

    with torch.no_grad():
        per_frame = torch.stack([model_2d(clip[:, :, t]) for t in range(4)]).mean(dim=0)
        centre = inflated(model_2d, "i3d_resnet18", "centre")(clip)
        mean = inflated(model_2d, "i3d_resnet18", "mean")(clip)

    torch.testing.assert_close(centre, per_frame, rtol=0, atol=1e-4)
    assert (mean - per_frame).abs().max() > 1e-2


@pytest.mark.parametrize("name", I3D_MODELS)
def test_forward_and_backward_on_a_tiny_clip(name: str) -> None:
    model = create_model(name, num_classes=5)
    clip = torch.randn(2, 3, 4, 32, 32)

    logits = model(clip)
    logits.square().mean().backward()

    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", I3D_MODELS)
def test_metadata_names_the_2d_model_to_inflate(name: str) -> None:
    info = model_info(name)
    model = create_model(name)

    assert set(I3D_MODELS) == {"i3d_resnet18", "i3d_resnet50"}
    assert info.weights == ("imagenet",)
    assert (info.mean, info.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert model_stats(name).params == sum(p.numel() for p in model.parameters())
    source = create_model(info.extra["inflate_from"], num_classes=400)
    state = inflate_state_dict(source.state_dict(), model, info.extra["inflation"])
    model.load_state_dict(state, strict=True)


def test_no_temporal_downsampling() -> None:
    model = create_model("i3d_resnet50").eval()
    with torch.no_grad():
        stem = model.stem(torch.randn(1, 3, 6, 32, 32))
        features = model.layer4(model.layer3(model.layer2(model.layer1(stem))))
    assert stem.shape[2] == features.shape[2] == 6


def test_i3d_layout_inflates_every_other_block() -> None:
    model = create_model("i3d_resnet50")
    time_kernels = [block.conv2[0].kernel_size[0] for block in model.layer3]
    assert time_kernels == [3, 1, 3, 1, 3, 1]
    assert [block.conv2[0].kernel_size[0] for block in model.layer4] == [1, 3, 1]
    assert model.stem[0].kernel_size == (5, 7, 7)


def test_layouts_by_stage_and_by_block() -> None:
    assert temporal_kernels("slowonly", [2, 2, 2, 2]) == [[1, 1], [1, 1], [3, 3], [3, 3]]
    assert temporal_kernels((False, 5, (3, 1), [True]), [1, 2, 3, 1]) == [
        [1],
        [5, 5],
        [3, 1, 3],
        [3],
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temporal_stages": "slowfast"}, "unknown temporal layout 'slowfast'"),
        ({"temporal_stages": (True, True)}, "needs 4 stage entries, got 2"),
        ({"temporal_stages": (2, 1, 1, 1)}, "odd and positive, got 2"),
        ({"stem_temporal_kernel": 4}, "odd and positive, got 4"),
    ],
)
def test_bad_options_are_model_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        i3d_resnet(18, **kwargs)


def test_unsupported_depth_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="depth 101"):
        i3d_resnet(101)
