"""VideoReader returns exactly the frames asked for, on every codec and container we write."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from resaction.io import VideoReader
from tests.io.conftest import FRAMES, GOP, RATE
from tests.io.videogen import read_code


def codes(frames: torch.Tensor) -> list[int]:
    return [read_code(frame) for frame in frames.numpy()]


def test_metadata_and_timestamps(coded_video: tuple[Path, str]) -> None:
    path, codec = coded_video
    with VideoReader(path) as reader:
        meta = reader.metadata
        assert (meta.num_frames, meta.width, meta.height, meta.codec) == (FRAMES, 96, 64, codec)
        assert meta.fps == pytest.approx(RATE)
        assert meta.duration == pytest.approx(FRAMES / RATE)
        assert meta.rotation == 0
        np.testing.assert_allclose(reader.timestamps, np.arange(FRAMES) / RATE, atol=1e-3)
        assert reader.frame_to_time(10) == pytest.approx(10 / RATE, abs=1e-3)
        assert reader.time_to_frame(10.5 / RATE) == 10


def test_all_frames_in_order(coded_video: tuple[Path, str]) -> None:
    with VideoReader(coded_video[0]) as reader:
        frames = reader.get_frames(range(FRAMES))
    assert frames.dtype == torch.uint8
    assert frames.shape == (FRAMES, 64, 96, 3)
    assert codes(frames) == list(range(FRAMES))


def test_random_orders_repeats_and_seeks(coded_video: tuple[Path, str]) -> None:
    rng = np.random.default_rng(0)
    with VideoReader(coded_video[0]) as reader:
        for _ in range(6):
            wanted = rng.integers(0, FRAMES, size=12)
            assert codes(reader.get_frames(wanted)) == wanted.tolist()
        backwards = [39, 38, 21, 20, 19, 9, 0, 0, 39]
        assert codes(reader.get_frames(backwards)) == backwards
        clip = torch.arange(23, 39, 2)
        assert codes(reader.get_frames(clip)) == clip.tolist()


def test_iter_frames_decodes_forward(coded_video: tuple[Path, str]) -> None:
    with VideoReader(coded_video[0], short_side=32) as reader:
        seen = list(reader.iter_frames(start=13, stop=31))
    assert [index for index, _, _ in seen] == list(range(13, 31))
    assert [read_code(image) for _, _, image in seen] == list(range(13, 31))
    np.testing.assert_allclose([t for _, t, _ in seen], np.arange(13, 31) / RATE, atol=1e-3)
    assert all(image.shape == (32, 48, 3) for _, _, image in seen)


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [({"short_side": 32}, (32, 48)), ({"size": (40, 40)}, (40, 40)), ({}, (64, 96))],
)
def test_resize_during_conversion(h264_video: Path, kwargs: dict, shape: tuple) -> None:
    with VideoReader(h264_video, **kwargs) as reader:
        frames = reader.get_frames([7, 31])
        assert reader.frame_size == shape
        assert reader.metadata.width == 96
    assert frames.shape == (2, *shape, 3)
    assert codes(frames) == [7, 31]


def test_one_late_frame_decodes_one_gop(h264_video: Path, decoded_slots: list[int]) -> None:
    """A frame near the end is reached by seeking, not by decoding from the start."""
    yielded = decoded_slots
    with VideoReader(h264_video) as reader:
        reader.get_frames([35])
        assert min(yielded) >= 30 and len(yielded) <= GOP
        yielded.clear()
        reader.get_frames([2, 5, 33])
        # pictures before a wanted one that nothing refers to are not decoded at all
        assert {2, 5, 33} <= set(yielded) <= {*range(6), *range(30, 34)}


def test_matches_plain_pyav_decode_pixel_for_pixel(h264_video: Path) -> None:
    container = av.open(str(h264_video))
    reference = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    container.close()
    wanted = [33, 4, 17, 17, 0]
    with VideoReader(h264_video) as reader:
        frames = reader.get_frames(wanted).numpy()
    for got, index in zip(frames, wanted, strict=True):
        np.testing.assert_array_equal(got, reference[index])


def test_empty_request_and_index_types(h264_video: Path) -> None:
    with VideoReader(h264_video, short_side=32) as reader:
        assert reader.get_frames([]).shape == (0, 32, 48, 3)
        assert codes(reader.get_frames(np.array([3], dtype=np.uint8))) == [3]
        assert codes(reader.get_frames(torch.tensor([4, 2]))) == [4, 2]
        with pytest.raises(TypeError):
            reader.get_frames([1.5])
