"""Generated videos and tiny models for the explanation tests.

The moving-square video is what the issue asks saliency to follow: a bright square crossing a
dark picture from left to right, one position per frame, in a wide, short picture (32 x 192) so
that even a 2D trunk's last stage (stride 32) has six cells across it.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from resaction.inference import Predictor, TorchBackend
from resaction.models import create_model

from ..inference.conftest import one_torch_thread, write_video

__all__ = ["one_torch_thread"]

SQUARE_SIZE = (32, 192)
SQUARE_SIDE = 10
BACKGROUND, FOREGROUND = 25, 230
SQUARE_FRAMES = 8


def square_video(path: Path, frames: int = SQUARE_FRAMES) -> tuple[Path, np.ndarray]:
    """The moving square (near-lossless H.264) and its centre column on every frame."""
    height, width = SQUARE_SIZE
    half = SQUARE_SIDE // 2
    columns = np.linspace(half + 2, width - half - 2, frames).round().astype(int)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "8"}
    for column in columns:
        image = np.full((height, width, 3), BACKGROUND, np.uint8)
        image[height // 2 - half : height // 2 + half, column - half : column + half] = FOREGROUND
        container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
    container.mux(stream.encode(None))
    container.close()
    return path, columns


def square_preprocess(clip_len: int, sampling: str) -> dict:
    """No resize or crop (the picture is the input); the normalisation mean is the background's
    level, so a pixel of background is 0 after normalisation, like an occluded one."""
    level = BACKGROUND / 255
    return {
        "clip_len": clip_len,
        "sampling": sampling,
        "crop": list(SQUARE_SIZE),
        "mean": [level] * 3,
        "std": [0.3] * 3,
    }


def square_probe(name: str, clip_len: int, sampling: str) -> Predictor:
    """A freshly built ``name`` (seed 0) whose classifier is set by hand, not trained: class
    "square" reads the direction from the pooled features of an empty clip to those of a clip
    with the square standing still in the middle, scaled so that the two give logits -2 and +2
    (class "empty" stays at 0). Nothing in it knows where the square goes in the test video."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=2).eval()
    height, width = SQUARE_SIZE
    empty = torch.zeros(1, 3, clip_len, height, width)
    still = empty.clone()
    half = SQUARE_SIDE // 2
    bright = (FOREGROUND - BACKGROUND) / 255 / 0.3
    still[..., height // 2 - half : height // 2 + half, width // 2 - half : width // 2 + half] = (
        bright
    )
    with torch.no_grad():
        features = [_pooled_features(model, clip) for clip in (empty, still)]
        direction = features[1] - features[0]
        scale = 4.0 / float(direction @ direction)
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[1] = scale * direction
        model.fc.bias[1] = -2.0 - scale * float(direction @ features[0])
    return Predictor(
        TorchBackend(model),
        ["empty", "square"],
        square_preprocess(clip_len, sampling),
        model_name=name,
    )


def _pooled_features(model: torch.nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """What the classifier reads: the trunk's features averaged over frames (2D trunks), or the
    3D network's pooled features."""
    if hasattr(model, "clip_frames"):
        frames, _ = model.clip_frames(clip)
        return model.forward_features(frames).mean(dim=0)
    return model.forward_features(clip)[0]


@pytest.fixture(scope="session")
def moving_square(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    return square_video(tmp_path_factory.mktemp("square") / "square.mp4")


@pytest.fixture(scope="session")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.2 s at 25 fps, 48 x 64, brightening, with a moving bar (the inference tests' video)."""
    return write_video(
        tmp_path_factory.mktemp("small") / "small.mp4", np.linspace(40, 200, 30).astype(int)
    )
