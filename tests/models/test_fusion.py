from __future__ import annotations

import pytest
import torch

from resaction.errors import ModelError
from resaction.models.factory import create_model
from resaction.models.fusion import LateFusion, build_fusion


def _parts(classes: int = 3) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    rgb = create_model("tsn_resnet18", num_classes=classes, num_segments=2).eval()
    motion = create_model("tsn_diff_resnet18", num_classes=classes, num_segments=2).eval()
    return [rgb, motion]


def test_fused_scores_are_the_weighted_sum_of_the_parts_scores() -> None:
    rgb, motion = _parts()
    fused = LateFusion([rgb, motion], [1, 3], [0.3, 0.7]).eval()
    clip = torch.randn(2, 3, 6, 32, 32)  # 2 segments of 3 frames
    with torch.no_grad():
        expected = 0.3 * rgb(clip[:, :, 1::3]).softmax(1) + 0.7 * motion(clip).softmax(1)
        scores = fused(clip).softmax(1)
    assert torch.allclose(scores, expected, atol=1e-6)
    assert torch.allclose(fused.weights, torch.tensor([0.3, 0.7]))


def test_weights_are_normalised_and_parts_must_fit_one_clip() -> None:
    rgb, motion = _parts()
    assert LateFusion([rgb, motion], [1, 3], [2, 6]).weights.tolist() == pytest.approx([0.25, 0.75])
    with pytest.raises(ModelError, match="each must read 3 or 1"):
        LateFusion([rgb, motion], [2, 3], [1, 1])
    with pytest.raises(ModelError, match="non-negative"):
        LateFusion([rgb, motion], [1, 3], [0, 0])


def test_a_fused_model_is_rebuilt_from_its_description() -> None:
    parts = [
        {"model": "tsn_resnet18", "model_kwargs": {"num_segments": 2}, "segment_len": 1},
        {"model": "tsn_diff_resnet18", "model_kwargs": {"num_segments": 2}, "segment_len": 3},
    ]
    fused = build_fusion("late_fusion", 4, parts, [0.5, 0.5])
    assert fused.segment_len == 3 and fused(torch.randn(1, 3, 6, 32, 32)).shape == (1, 4)
