"""``explain_video``: saliency follows a moving object, for a 2D trunk, a 3D network and
occlusion; every registered family gives a map over its clip's frames; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from resaction.errors import ConfigError
from resaction.explain import METHODS, explain_video
from resaction.inference import Predictor, TorchBackend
from resaction.models import create_model

from .conftest import SQUARE_FRAMES, square_probe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ["dark", "mid", "bright"]


def peak_columns(saliency: np.ndarray) -> np.ndarray:
    """The column of each frame's strongest saliency."""
    return saliency.max(axis=1).argmax(axis=1)


@pytest.mark.parametrize(
    ("name", "sampling", "clip_len", "method"),
    [
        ("tsn_resnet18", "segments", SQUARE_FRAMES, "gradcam"),
        ("i3d_resnet18", "dense", SQUARE_FRAMES, "gradcam"),
        ("tsn_resnet18", "segments", 4, "occlusion"),
    ],
)
def test_saliency_follows_a_moving_square(
    moving_square: tuple[Path, np.ndarray], name: str, sampling: str, clip_len: int, method: str
) -> None:
    # The classifier is a hand-set probe for "a bright square anywhere" (conftest.square_probe):
    # where the square is on each frame is for the map to find. A map flipped left to right or
    # frames out of order would correlate negatively with the square's path.
    video, columns = moving_square
    predictor = square_probe(name, clip_len, sampling)
    patch = {"patch": 32, "patch_frames": 1} if method == "occlusion" else {}
    found = explain_video(predictor, video, method=method, **patch)
    assert found.target == "square" and found.saliency.shape == (clip_len, 32, 192)
    truth = columns[found.clip.indices]
    peaks = peak_columns(found.saliency)
    assert np.corrcoef(peaks, truth)[0, 1] > 0.8, (peaks, truth)
    assert np.abs(peaks - truth).max() <= 48  # within a cell and a half of a 32-px grid


FAMILIES = {
    "tsn_resnet18": {"clip_len": 4, "sampling": "segments"},
    "tsm_resnet18": {"clip_len": 4, "sampling": "segments"},
    "tsn_diff_resnet18": {"clip_len": 6, "sampling": "segments", "segment_len": 3},
    "lrcn_resnet18": {"clip_len": 4},
    "r3d_10": {"clip_len": 4},
    "mc3_18": {"clip_len": 4},
    "r2plus1d_18": {"clip_len": 4},
    "i3d_resnet18": {"clip_len": 4},
}


def tiny_predictor(name: str) -> Predictor:
    torch.manual_seed(0)
    preprocess = {"resize": 36, "crop": 32, "mean": [0.45] * 3, "std": [0.225] * 3}
    model = create_model(name, num_classes=len(CLASSES))
    return Predictor(
        TorchBackend(model), CLASSES, {**preprocess, **FAMILIES[name]}, model_name=name
    )


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_gives_a_map_over_its_frames(small_video: Path, name: str) -> None:
    predictor = tiny_predictor(name)
    frames = FAMILIES[name]["clip_len"]
    for method in ("gradcam", "gradcam++"):
        found = explain_video(predictor, small_video, method=method, target="mid")
        assert found.saliency.shape == (frames, 32, 32)
        assert found.saliency.min() >= 0.0 and found.saliency.max() <= 1.0
        assert found.saliency.max() in (0.0, 1.0)  # scaled over the whole clip
        assert found.importance.shape == (frames,)
        assert np.allclose(found.importance, found.saliency.mean(axis=(1, 2)), atol=1e-6)
        assert found.target == "mid" and len(found.clip.indices) == frames
    if name == "tsn_diff_resnet18":  # one map per segment of 3 frames, given to all three
        assert found.grid[0] == 2
        assert np.array_equal(found.saliency[0], found.saliency[2])


def test_explanation_record_says_what_was_explained(small_video: Path) -> None:
    found = explain_video(tiny_predictor("r3d_10"), small_video, start=0.2, end=1.0)
    record = found.to_record()
    assert record["method"] == "gradcam" and record["model"] == "r3d_10"
    assert record["layer"] == "layer4"
    assert record["target"]["label"] == found.top == record["top1"]["label"]
    assert record["saliency_grid"] == {"time": 1, "height": 2, "width": 2}
    assert record["input_size"] == [4, 32, 32]
    assert all(0.2 - 1e-6 <= t < 1.0 for t in record["times"])
    assert len(record["frames"]) == len(record["importance"]) == 4


def test_bad_input_is_one_line(small_video: Path) -> None:
    predictor = tiny_predictor("r3d_10")
    cases = {
        "no class 'jump'": {"target": "jump"},
        "outside small.mp4": {"start": 0.5, "end": 9.0},
        "not before --end": {"start": 1.0, "end": 0.5},
        "unknown --method": {"method": "lime"},
    }
    for expected, options in cases.items():
        with pytest.raises(ConfigError) as error:
            explain_video(predictor, small_video, **options)
        assert expected in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="dark, mid, bright"):
        explain_video(predictor, small_video, target="jump")
    assert METHODS == ("gradcam", "gradcam++", "occlusion")
