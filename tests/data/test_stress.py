from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from resaction.data.stress import STRESS_KINDS, apply_stress, parse_stress_kinds
from resaction.errors import ConfigError


@pytest.fixture(scope="module")
def real_clip(videos_dir: Path) -> torch.Tensor:
    """The first 8 frames of a real UCF101 video, uint8 (T, H, W, 3)."""
    path = sorted((videos_dir / "ucf101_subset").rglob("*.avi"))[0]
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 8:
                break
    return torch.from_numpy(np.stack(frames))


def change(before: torch.Tensor, after: torch.Tensor) -> float:
    """The fraction of pixels where some channel moved by more than 8 levels."""
    return ((after.int() - before.int()).abs().amax(dim=-1) > 8).float().mean().item()


@pytest.mark.parametrize("kind", STRESS_KINDS)
def test_stress_keeps_shape_and_dtype_and_changes_the_clip(
    real_clip: torch.Tensor, kind: str
) -> None:
    original = real_clip.clone()
    stressed = apply_stress(real_clip, kind, severity=0.5, seed=0)
    assert stressed.shape == real_clip.shape and stressed.dtype == torch.uint8
    torch.testing.assert_close(real_clip, original, rtol=0, atol=0)
    assert change(real_clip, stressed) > 0.02


@pytest.mark.parametrize("kind", STRESS_KINDS)
def test_severity_zero_is_the_identity(real_clip: torch.Tensor, kind: str) -> None:
    assert torch.equal(apply_stress(real_clip, kind, severity=0.0, seed=3), real_clip)


@pytest.mark.parametrize("kind", STRESS_KINDS)
def test_stress_is_deterministic_given_the_seed(real_clip: torch.Tensor, kind: str) -> None:
    first = apply_stress(real_clip, kind, severity=0.5, seed=1)
    assert torch.equal(first, apply_stress(real_clip, kind, severity=0.5, seed=1))
    assert not torch.equal(first, apply_stress(real_clip, kind, severity=0.5, seed=2))


@pytest.mark.parametrize("kind", STRESS_KINDS)
def test_higher_severity_changes_more(real_clip: torch.Tensor, kind: str) -> None:
    def mean_change(severity: float) -> float:
        changes = [
            change(real_clip, apply_stress(real_clip, kind, severity, seed)) for seed in range(3)
        ]
        return float(np.mean(changes))

    assert mean_change(1.0) > 1.5 * mean_change(0.2)


def test_numpy_in_numpy_out(real_clip: torch.Tensor) -> None:
    frames = real_clip.numpy()
    stressed = apply_stress(frames, "occlusion", severity=0.5, seed=0)
    assert isinstance(stressed, np.ndarray)
    np.testing.assert_array_equal(
        stressed, apply_stress(real_clip, "occlusion", severity=0.5, seed=0).numpy()
    )


def test_parse_stress_kinds() -> None:
    assert parse_stress_kinds("clutter,camera-motion") == ("clutter", "camera-motion")
    assert parse_stress_kinds(" occlusion , camera_motion,occlusion,") == (
        "occlusion",
        "camera-motion",
    )
    assert parse_stress_kinds("all") == STRESS_KINDS
    assert parse_stress_kinds(["CLUTTER"]) == ("clutter",)
    assert parse_stress_kinds(None) == ()
    with pytest.raises(ConfigError, match=r"'blur'.*clutter, camera-motion, occlusion"):
        parse_stress_kinds("clutter,blur")


def test_bad_kind_or_severity_is_a_config_error(real_clip: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="clutter, camera-motion, occlusion"):
        apply_stress(real_clip, "rain")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        apply_stress(real_clip, "clutter", severity=1.5)


def test_order_kinds_reorder_frames_whatever_the_severity() -> None:
    from resaction.data.stress import apply_stress, parse_stress_kinds

    clip = np.repeat(np.arange(6, dtype=np.uint8)[:, None, None, None], 3, axis=3)
    clip = np.broadcast_to(clip, (6, 4, 4, 3)).copy()
    assert apply_stress(clip, "time-reversed", 0.0)[:, 0, 0, 0].tolist() == [5, 4, 3, 2, 1, 0]
    shuffled = apply_stress(clip, "frame-shuffled", 0.0, seed=3)[:, 0, 0, 0]
    assert sorted(shuffled.tolist()) == list(range(6)) and shuffled.tolist() != list(range(6))
    assert np.array_equal(shuffled, apply_stress(clip, "frame-shuffled", 1.0, seed=3)[:, 0, 0, 0])
    assert parse_stress_kinds("all") == ("clutter", "camera-motion", "occlusion")
    assert parse_stress_kinds("time_reversed") == ("time-reversed",)
