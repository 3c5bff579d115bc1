from __future__ import annotations

import pytest
import torch

from resaction.errors import ModelError
from resaction.models import create_model, default_preprocess
from resaction.models.modality import FrameDifference, adapt_first_conv, input_channels
from resaction.models.weights import apply_state_dict


def test_frame_difference_stacks_the_differences_within_each_segment() -> None:
    clip = torch.randn(2, 3, 6, 5, 4)
    out = FrameDifference(3)(clip)

    assert out.shape == (2, 6, 2, 5, 4)
    for segment in range(2):
        first, second, third = (clip[:, :, 3 * segment + k] for k in range(3))
        torch.testing.assert_close(out[:, :3, segment], second - first)
        torch.testing.assert_close(out[:, 3:, segment], third - second)


def test_rgb_plus_diff_puts_the_segment_s_first_frame_in_front() -> None:
    clip = torch.randn(1, 3, 4, 5, 5)
    out = FrameDifference(2, keep_rgb=True)(clip)

    assert out.shape == (1, 6, 2, 5, 5)
    torch.testing.assert_close(out[:, :3, 1], clip[:, :, 2])
    torch.testing.assert_close(out[:, 3:, 1], clip[:, :, 3] - clip[:, :, 2])


def test_a_clip_that_is_not_whole_segments_is_refused() -> None:
    with pytest.raises(ModelError, match="not a whole number of segments of 3"):
        FrameDifference(3)(torch.randn(1, 3, 7, 8, 8))


@pytest.mark.parametrize(("modality", "segment_len"), [("rgb", 2), ("rgb_diff", 1), ("flow", 2)])
def test_bad_modalities(modality: str, segment_len: int) -> None:
    with pytest.raises(ModelError):
        input_channels(modality, segment_len)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("tsn_diff_resnet18", {}),
        ("tsm_diff_resnet18", {}),
        ("lrcn_resnet18", {"modality": "rgb_diff", "segment_len": 3}),
    ],
)
def test_a_difference_model_ignores_what_does_not_move(name: str, options: dict) -> None:
    """Brightness added to every frame cancels in the differences; a moving pattern does not."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, **options).eval()
    clip = torch.randn(2, 3, 24, 32, 32)

    with torch.no_grad():
        logits = model(clip)
        torch.testing.assert_close(model(clip + 0.7), logits, rtol=0, atol=1e-4)
        moved = clip.clone()
        moved[:, :, 1::3] = moved[:, :, 1::3].roll(4, dims=-1)
        assert (model(moved) - logits).abs().max() > 1e-3


def test_default_input_is_segments_of_frames_the_model_reads() -> None:
    preprocess = default_preprocess("tsn_diff_resnet18")
    model = create_model("tsn_diff_resnet18", num_classes=3)

    assert preprocess["sampling"] == "segments"
    assert preprocess["segment_len"] == model.segment_len == 3
    assert preprocess["clip_len"] == 24
    assert model.conv1.in_channels == input_channels("rgb_diff", 3) == 6
    assert model(torch.randn(1, 3, 24, 32, 32)).shape == (1, 3)


def test_rgb_weights_seed_a_difference_model_with_averaged_first_kernels() -> None:
    torch.manual_seed(0)
    rgb = create_model("resnet18", num_classes=1000).state_dict()
    model = create_model("tsn_diff_resnet18", num_classes=5)

    report = apply_state_dict(model, rgb, source="rgb.pt", model_name="tsn_diff_resnet18")

    kernel = model.conv1.weight.detach()
    averaged = rgb["conv1.weight"].mean(dim=1)
    for channel in range(kernel.shape[1]):
        torch.testing.assert_close(kernel[:, channel], averaged)
    torch.testing.assert_close(model.layer3[0].conv1.weight.detach(), rgb["layer3.0.conv1.weight"])
    assert report.replaced_head and "conv1.weight" not in report.dropped


def test_rgb_plus_diff_keeps_the_rgb_kernel() -> None:
    weight = torch.randn(8, 3, 3, 3)
    adapted = adapt_first_conv(weight, "rgb+diff", 3)

    assert adapted.shape == (8, 9, 3, 3)
    torch.testing.assert_close(adapted[:, :3], weight)
    torch.testing.assert_close(adapted[:, 5], weight.mean(dim=1))
