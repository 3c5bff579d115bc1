"""Occlusion on a stand-in scorer whose answer is known pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resaction.errors import ConfigError
from resaction.explain.occlusion import default_patch, occlusion_map


def spot_scorer(frame: int, row: int, column: int):
    """Probabilities of two classes; class 1 is 0.9 while pixel (frame, row, column) is lit and
    0.5 once it is hidden (set to 0), whatever else happens in the clip."""

    def score(batch: torch.Tensor) -> np.ndarray:
        lit = (batch[:, 0, frame, row, column] != 0).numpy()
        target = np.where(lit, 0.9, 0.5)
        return np.stack([1 - target, target], axis=1)

    return score


def test_the_drop_lands_on_the_patch_and_the_frames_that_hold_the_evidence() -> None:
    clip = torch.ones(3, 6, 20, 28)
    found = occlusion_map(spot_scorer(3, 13, 21), clip, 1, patch=8, patch_frames=2, batch_size=5)
    # 3 slabs of 2 frames, rows 0-7, 8-15, 16-19 and columns 0-7, 8-15, 16-23, 24-27
    assert found.grid == (3, 3, 4) and found.base == pytest.approx(0.9)
    hot = np.zeros((6, 20, 28), dtype=bool)
    hot[2:4, 8:16, 16:24] = True
    assert np.array_equal(found.saliency.numpy() == 1.0, hot)
    assert found.saliency[~torch.from_numpy(hot)].abs().max() == 0.0
    assert np.allclose(found.importance, [0, 0, 0.4, 0.4, 0, 0])


def test_a_patch_whose_loss_helps_the_target_is_not_evidence() -> None:
    def score(batch: torch.Tensor) -> np.ndarray:
        target = np.where((batch[:, 0, 0, 0, 0] != 0).numpy(), 0.3, 0.6)
        return np.stack([1 - target, target], axis=1)

    found = occlusion_map(score, torch.ones(3, 2, 8, 8), 1, patch=4, patch_frames=1)
    assert found.saliency.max() == 0.0
    assert found.importance[0] == pytest.approx(-0.3) and found.importance[1] == 0.0
    whole = occlusion_map(score, torch.ones(3, 2, 8, 8), 1, patch=1000, patch_frames=9)
    assert (whole.patch, whole.patch_frames) == (8, 2), "the record says what was hidden"


def test_patch_defaults_and_limits() -> None:
    assert default_patch(112, 112) == 8 and default_patch(224, 298) == 16
    assert default_patch(32, 32) == 8
    with pytest.raises(ConfigError, match="at least 1"):
        occlusion_map(spot_scorer(0, 0, 0), torch.ones(3, 2, 8, 8), 1, patch_frames=0)
