from __future__ import annotations

import pytest
import torch

from resaction.errors import ModelError, WeightsError
from resaction.models import create_model
from resaction.models.inflation import inflate_kernel, inflate_state_dict, resnet_2d_key_to_3d


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return create_model("resnet18").state_dict()


def test_mean_inflation_spreads_the_kernel_evenly_over_time() -> None:
    kernel = torch.randn(4, 2, 3, 3)
    inflated = inflate_kernel(kernel, 5, "mean")
    assert inflated.shape == (4, 2, 5, 3, 3)
    for t in range(5):
        torch.testing.assert_close(inflated[:, :, t], kernel / 5)
    torch.testing.assert_close(inflated.sum(dim=2), kernel)


def test_centre_inflation_puts_the_kernel_in_the_middle_slice() -> None:
    kernel = torch.randn(4, 2, 7, 7)
    inflated = inflate_kernel(kernel, 3, "centre")
    torch.testing.assert_close(inflated[:, :, 1], kernel)
    assert inflated[:, :, [0, 2]].abs().sum() == 0


def test_inflating_a_one_frame_kernel_keeps_it() -> None:
    kernel = torch.randn(8, 4, 1, 1)
    for mode in ("mean", "centre"):
        torch.testing.assert_close(inflate_kernel(kernel, 1, mode)[:, :, 0], kernel)


@pytest.mark.parametrize(
    ("key_2d", "key_3d"),
    [
        ("conv1.weight", "stem.0.weight"),
        ("bn1.running_var", "stem.1.running_var"),
        ("layer2.1.conv2.weight", "layer2.1.conv2.0.weight"),
        ("layer3.0.bn3.num_batches_tracked", "layer3.0.conv3.1.num_batches_tracked"),
        ("layer4.0.downsample.1.bias", "layer4.0.downsample.1.bias"),
        ("fc.weight", "fc.weight"),
    ],
)
def test_resnet_keys_map_onto_video_resnet(key_2d: str, key_3d: str) -> None:
    assert resnet_2d_key_to_3d(key_2d) == key_3d


@pytest.mark.parametrize("depth", [18, 50])
def test_a_2d_resnet_fills_every_key_of_its_i3d_model(depth: int) -> None:
    state_2d = create_model(f"resnet{depth}").state_dict()
    model_3d = create_model(f"i3d_resnet{depth}", num_classes=1000)

    state_3d = inflate_state_dict(state_2d, model_3d)

    assert set(state_3d) == set(model_3d.state_dict())
    model_3d.load_state_dict(state_3d, strict=True)
    torch.testing.assert_close(model_3d.stem[1].running_var, state_2d["bn1.running_var"])
    torch.testing.assert_close(model_3d.fc.weight, state_2d["fc.weight"])
    stem_kernel = model_3d.stem[0].weight
    torch.testing.assert_close(stem_kernel.sum(dim=2), state_2d["conv1.weight"])


def test_shapes_mapping_works_like_the_model(resnet18_state: dict[str, torch.Tensor]) -> None:
    model = create_model("i3d_resnet18", num_classes=1000)
    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}

    from_model = inflate_state_dict(resnet18_state, model, mode="centre")
    from_shapes = inflate_state_dict(resnet18_state, shapes, mode="centre")

    assert from_model.keys() == from_shapes.keys()
    for key in from_model:
        torch.testing.assert_close(from_model[key], from_shapes[key])


def test_other_classifier_and_unknown_keys_pass_through_for_the_loader(
    resnet18_state: dict[str, torch.Tensor],
) -> None:
    model = create_model("i3d_resnet18", num_classes=400)
    state = {**resnet18_state, "extra.weight": torch.ones(2)}

    inflated = inflate_state_dict(state, model)

    assert inflated["fc.weight"] is resnet18_state["fc.weight"]
    assert inflated["extra.weight"] is state["extra.weight"]


def test_custom_rename_seeds_a_model_with_other_names(
    resnet18_state: dict[str, torch.Tensor],
) -> None:
    model = create_model("i3d_resnet18", num_classes=1000)
    prefixed = {f"backbone.{key}": value for key, value in resnet18_state.items()}

    inflated = inflate_state_dict(
        prefixed, model, rename=lambda key: resnet_2d_key_to_3d(key.removeprefix("backbone."))
    )

    model.load_state_dict(inflated, strict=True)


def test_a_kernel_that_cannot_be_inflated_is_an_error(
    resnet18_state: dict[str, torch.Tensor],
) -> None:
    shapes = {"stem.0.weight": (64, 3, 5, 5, 5)}
    with pytest.raises(WeightsError, match=r"conv1\.weight .* into stem\.0\.weight"):
        inflate_state_dict(resnet18_state, shapes)


def test_unknown_mode_is_an_error(resnet18_state: dict[str, torch.Tensor]) -> None:
    with pytest.raises(ModelError, match="inflation mode 'center'"):
        inflate_state_dict(resnet18_state, {}, mode="center")
