"""Every 2D-trunk model: builds, trains a step, has the head API, and reports measured metadata."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from resaction.errors import ModelError
from resaction.models import (
    create_model,
    default_preprocess,
    list_models,
    model_info,
    model_stats,
)
from resaction.models.catalog import _count

FAMILIES = {"resnet2d", "tsn", "lrcn", "tsm"}
MODELS = [name for name in list_models() if model_info(name).family in FAMILIES]
# ResNet-50/101 trunks take seconds for a training step on 2 shared cores.
HEAVY = [
    pytest.param(name, marks=pytest.mark.slow) if name.endswith(("50", "101")) else name
    for name in MODELS
]


def test_registers_every_2d_trunk_model() -> None:
    assert set(MODELS) == {
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "tsn_resnet18",
        "tsn_resnet34",
        "tsn_resnet50",
        "lrcn_resnet18",
        "lrcn_resnet34",
        "lrcn_resnet50",
        "tsm_resnet18",
        "tsm_resnet50",
        "tsm_online_resnet18",
        "tsn_diff_resnet18",
        "tsn_diff_resnet50",
        "tsm_diff_resnet18",
        "tsm_diff_resnet50",
    }


@pytest.mark.parametrize("name", HEAVY)
def test_trains_a_step_on_a_tiny_clip_and_swaps_its_classifier(name: str) -> None:
    model = create_model(name, num_classes=5)
    clip = torch.randn(2, 3, 2 * default_preprocess(name).get("segment_len", 1), 32, 32)

    logits = model(clip)
    logits.logsumexp(dim=1).sum().backward()
    model.reset_classifier(7)

    assert logits.shape == (2, 5)
    assert model.conv1.weight.grad is not None and model.get_classifier().weight.grad is None
    assert model(clip).shape == (2, 7)


@pytest.mark.parametrize("name", MODELS)
def test_backbone_and_head_parameters_partition_the_model(name: str) -> None:
    model = create_model(name, num_classes=5)
    backbone = {id(p) for p in model.backbone_parameters()}
    head = {id(p) for p in model.head_parameters()}

    assert backbone.isdisjoint(head)
    assert backbone | head == {id(p) for p in model.parameters()}
    assert id(model.get_classifier().weight) in head and id(model.conv1.weight) in backbone


@pytest.mark.parametrize("name", MODELS)
def test_metadata_describes_the_input_and_is_measured(name: str) -> None:
    info = model_info(name)
    preprocess = default_preprocess(name)
    stats = model_stats(name)
    model = create_model(name)

    assert info.weights and all(tag.startswith("imagenet") for tag in info.weights)
    assert preprocess["crop"] == info.input_size < preprocess["resize"]
    assert preprocess["sampling"] in ("dense", "segments")
    assert len(preprocess["mean"]) == len(preprocess["std"]) == 3
    assert stats.input_shape == (1, 3, info.clip_len, info.input_size, info.input_size)
    assert stats.params == sum(p.numel() for p in model.parameters())


def _flops(fn, *args) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn(*args)
    return counter.get_total_flops()


def test_tsn_costs_its_segments_times_one_frame_of_the_image_model() -> None:
    frame = create_model("resnet18", num_classes=400).eval()
    size = model_info("tsn_resnet18").input_size

    one_frame = _flops(frame, torch.zeros(1, 3, size, size))

    assert model_stats("tsn_resnet18").gflops * 1e9 == 8 * one_frame


def test_a_difference_model_costs_little_more_than_its_rgb_model() -> None:
    """Only the first convolution grows (2 differences, 6 channels); the trunk runs 8 times."""
    rgb, diff = model_stats("tsn_resnet18"), model_stats("tsn_diff_resnet18")
    size = model_info("tsn_resnet18").input_size
    stem = 2 * 64 * 3 * 7 * 7 * (size // 2) ** 2 * 8

    assert diff.params - rgb.params == 64 * 3 * 7 * 7
    assert diff.gflops * 1e9 == pytest.approx(rgb.gflops * 1e9 + stem, rel=1e-3)


def test_lrcn_flops_include_the_lstm() -> None:
    info = model_info("lrcn_resnet18")
    trunk = create_model("resnet18").eval()
    per_frame = _flops(trunk.forward_features, torch.zeros(1, 3, info.input_size, info.input_size))
    hidden = features = 512
    lstm = info.clip_len * 2 * 4 * hidden * (features + hidden)
    classifier = 2 * hidden * info.default_num_classes

    expected = info.clip_len * per_frame + lstm + classifier

    assert model_stats("lrcn_resnet18").gflops * 1e9 == expected


def test_counting_without_data_matches_counting_on_real_tensors() -> None:
    shape = model_stats("resnet18").input_shape

    assert _count("resnet18", shape, torch.device("cpu")) == _count(
        "resnet18", shape, torch.device("meta")
    )


def test_unknown_names_and_options_are_model_errors() -> None:
    with pytest.raises(ModelError, match="unknown model 'resnet19'"):
        create_model("resnet19")
    with pytest.raises(ModelError, match="tsn_resnet18 has no option 'depth'"):
        create_model("tsn_resnet18", depth=3)
