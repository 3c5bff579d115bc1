from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resaction.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    CenterCrop,
    ClipTransform,
    MultiScaleCrop,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    ThreeCrop,
    build_transform,
    imagenet_preset,
    kinetics_preprocess,
    kinetics_preset,
)
from resaction.errors import ConfigError
from resaction.io import VideoReader

# Our steps are torchvision's (float bilinear resize rounded to uint8, /255, normalise), so any
# difference comes from decoding. One uint8 level is 1 / (255 * std) ~ 0.018 after normalising:
# sample values may differ by that much (a decoder rounding a pixel the other way); channel
# means and standard deviations, averaged over ~200k values, by far less.
ONE_LEVEL = 1 / (255 * min(KINETICS_STD))
STAT_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def demo_clip(videos_dir: Path) -> torch.Tensor:
    with VideoReader(videos_dir / "kinetics400_samples" / "arm_wrestling" / "demo.mp4") as reader:
        return reader.get_frames(list(range(16)))


@pytest.fixture(scope="module")
def preprocessing_reference(reference: Path) -> dict:
    return json.loads((reference / "torchvision_preprocessing.json").read_text())


def _coordinates(frames: int = 3, height: int = 20, width: int = 30) -> torch.Tensor:
    """A clip whose red channel is the row, green the column and blue the frame number."""
    rows = torch.arange(height).view(1, height, 1).expand(frames, height, width)
    cols = torch.arange(width).view(1, 1, width).expand(frames, height, width)
    times = torch.arange(frames).view(frames, 1, 1).expand(frames, height, width)
    return torch.stack([rows, cols, times], dim=-1).to(torch.uint8)


def _raw(transform_ops: list, clip: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Ops only, scaled back to uint8 values: (V, C, T, H, W) or (C, T, H, W)."""
    return (ClipTransform(transform_ops)(clip, np.random.default_rng(seed)) * 255).round()


def _matches_reference(out: torch.Tensor, expected: dict, sample: torch.Tensor) -> bool:
    dims = tuple(range(1, out.ndim))
    means = torch.tensor(expected["mean_per_channel"])
    stds = torch.tensor(expected["std_per_channel"])
    sample_key = next(key for key in expected if key.startswith("sample_values"))
    return (
        list(out.shape) == expected["shape"]
        and torch.allclose(out.mean(dims), means, atol=STAT_TOLERANCE, rtol=0)
        and torch.allclose(out.std(dims), stds, atol=STAT_TOLERANCE, rtol=0)
        and torch.allclose(sample, torch.tensor(expected[sample_key]), atol=ONE_LEVEL, rtol=0)
    )


def test_kinetics_preset_reproduces_torchvision(demo_clip, preprocessing_reference) -> None:
    expected = preprocessing_reference["video_preset"]
    out = kinetics_preset()(demo_clip)
    assert out.dtype == torch.float32
    assert _matches_reference(out, expected, out[0, 0, 56, :8])
    # The reference is only met without antialias, as torchvision's video preset resizes:
    antialiased = build_transform({**kinetics_preprocess(), "antialias": True})(demo_clip)
    assert not _matches_reference(antialiased, expected, antialiased[0, 0, 56, :8])


def test_imagenet_preset_reproduces_torchvision(demo_clip, preprocessing_reference) -> None:
    out = imagenet_preset()(demo_clip[:1])[:, 0]
    assert _matches_reference(out, preprocessing_reference["image_preset"], out[0, 112, :8])


def test_resize_sizes_follow_torchvision() -> None:
    assert Resize(128).output_size(240, 320) == (128, 170)
    assert Resize(128).output_size(320, 240) == (170, 128)
    assert Resize((128, 171)).output_size(480, 640) == (128, 171)
    clip = torch.zeros(2, 240, 320, 3, dtype=torch.uint8)
    assert ClipTransform([Resize(64)])(clip).shape == (3, 2, 64, 85)


def test_flip_mirrors_every_frame_or_none() -> None:
    clip = torch.randint(0, 256, (6, 12, 16, 3), dtype=torch.uint8)
    plain = ClipTransform([])(clip)
    assert torch.equal(ClipTransform([RandomHorizontalFlip(1.0)])(clip), plain.flip(-1))
    outcomes = set()
    for seed in range(20):
        out = ClipTransform([RandomHorizontalFlip(0.5)])(clip, np.random.default_rng(seed))
        flipped = [torch.equal(out[:, t], plain[:, t].flip(-1)) for t in range(6)]
        kept = [torch.equal(out[:, t], plain[:, t]) for t in range(6)]
        assert all(flipped) or all(kept)
        outcomes.add(all(flipped))
    assert outcomes == {True, False}


def test_random_crop_is_one_window_for_the_whole_clip() -> None:
    tops_lefts = set()
    for seed in range(40):
        out = _raw([RandomCrop(8)], _coordinates(), seed)
        top, left = int(out[0, 0, 0, 0]), int(out[1, 0, 0, 0])
        for t in range(3):
            assert torch.equal(
                out[0, t], torch.arange(top, top + 8).view(8, 1).expand(8, 8).float()
            )
            assert torch.equal(
                out[1, t], torch.arange(left, left + 8).view(1, 8).expand(8, 8).float()
            )
            assert torch.all(out[2, t] == t)
        assert 0 <= top <= 12 and 0 <= left <= 22
        tops_lefts.add((top, left))
    assert len(tops_lefts) > 10


def test_centre_crop_position() -> None:
    out = _raw([CenterCrop((10, 12))], _coordinates(height=20, width=30))
    assert (out[0, 0, 0, 0], out[1, 0, 0, 0]) == (5, 9)


def test_centre_crop_larger_than_the_frame_pads_with_zeros() -> None:
    clip = torch.full((2, 4, 6, 3), 200, dtype=torch.uint8)
    out = _raw([CenterCrop(8)], clip)
    assert out.shape == (3, 2, 8, 8)
    assert out[:, :, 2:6, 1:7].eq(200).all() and out.sum() == 200 * 3 * 2 * 4 * 6


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [(20, 30, [(0, 0), (0, 5), (0, 10)]), (30, 20, [(0, 0), (5, 0), (10, 0)])],
)
def test_three_crop_runs_along_the_long_side(height: int, width: int, expected: list) -> None:
    out = _raw([ThreeCrop(20)], _coordinates(2, height, width))
    assert out.shape == (3, 3, 2, 20, 20)
    assert [(int(v[0, 0, 0, 0]), int(v[1, 0, 0, 0])) for v in out] == expected


def test_multi_scale_crop_draws_once_per_clip() -> None:
    clip = _coordinates(frames=4, height=60, width=80)
    sizes = set()
    op = MultiScaleCrop(32)
    assert (60, 60) in op.crop_sizes(60, 80) and (39, 45) in op.crop_sizes(60, 80)
    for seed in range(30):
        out = _raw([op], clip, seed)
        assert out.shape == (3, 4, 32, 32)
        for t in range(1, 4):
            assert torch.equal(out[:2, t], out[:2, 0])
        sizes.add(
            (int(out[0, 0, -1, 0] - out[0, 0, 0, 0]), int(out[1, 0, 0, -1] - out[1, 0, 0, 0]))
        )
    assert len(sizes) > 2


def test_normalisation_is_last_and_exact() -> None:
    clip = torch.full((2, 8, 8, 3), 100, dtype=torch.uint8)
    out = ClipTransform([CenterCrop(4)], KINETICS_MEAN, KINETICS_STD)(clip)
    expected = (100 / 255 - torch.tensor(KINETICS_MEAN)) / torch.tensor(KINETICS_STD)
    assert torch.allclose(out[:, 0, 0, 0], expected)


def test_build_transform_shapes_and_dtypes() -> None:
    preprocess = {"resize": 128, "crop": 112, "mean": [0.5] * 3, "std": [0.25] * 3}
    clip = torch.randint(0, 256, (8, 120, 160, 3), dtype=torch.uint8)
    train = build_transform(preprocess, train=True)
    assert train(clip).shape == (3, 8, 112, 112) and train(clip).dtype == torch.float32
    assert build_transform(preprocess)(clip).shape == (3, 8, 112, 112)
    three = build_transform(preprocess, num_crops=3)
    assert three.num_views == 3 and three(clip).shape == (3, 3, 8, 112, 112)
    assert train.decode_hint() == {"short_side": 128}
    assert kinetics_preset().decode_hint() == {}
    assert kinetics_preset().decode_hint(force=True) == {"size": (128, 171)}
    with pytest.raises(ConfigError):
        build_transform(preprocess, num_crops=5)
    with pytest.raises(ValueError, match="uint8"):
        train(clip.float())


def test_direction_blind_plays_training_clips_backwards_at_random_and_tests_both_ways() -> None:
    preprocess = {"resize": 16, "crop": 16, "scales": [1.0], "flip": 0.0, "direction_blind": True}
    clip = torch.randint(0, 256, (6, 16, 16, 3), dtype=torch.uint8)
    plain = build_transform({**preprocess, "direction_blind": False})(clip)

    train = build_transform(preprocess, train=True)
    seen = set()
    for seed in range(20):
        out = train(clip, np.random.default_rng(seed))
        assert torch.equal(out, plain) or torch.equal(out, plain.flip(1))
        seen.add(torch.equal(out, plain))
    assert seen == {True, False}

    test = build_transform(preprocess)
    views = test(clip)
    assert test.num_views == 2 and views.shape == (2, 3, 6, 16, 16)
    assert torch.equal(views[0], plain) and torch.equal(views[1], plain.flip(1))
    # a clip and its reverse give the same two views, so averaged scores cannot tell them apart
    reversed_views = test(clip.flip(0))
    assert torch.equal(reversed_views[0], views[1]) and torch.equal(reversed_views[1], views[0])
