from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from resaction.errors import VideoError
from resaction.io.writer import VideoWriter


def moving_square(num_frames: int, height: int, width: int) -> np.ndarray:
    """A gradient with a bright square sliding right: easy to compress and to tell apart."""
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 200 // width, ys * 200 // height, np.full_like(xs, 60)], axis=-1)
    frames = np.repeat(base[None].astype(np.uint8), num_frames, axis=0)
    side = max(4, min(height, width) // 4)
    for t in range(num_frames):
        left = t * (width - side) // max(num_frames - 1, 1)
        frames[t, height // 3 : height // 3 + side, left : left + side] = (250, 250, 250)
    return frames


def decode(path: Path) -> tuple[np.ndarray, av.video.stream.VideoStream]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    return frames, stream


@pytest.mark.parametrize("fps", [15, 29.97])
def test_written_video_decodes_to_the_same_frames(tmp_path: Path, fps: float) -> None:
    frames = moving_square(12, 48, 64)
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps) as writer:
        writer.write_many(torch.from_numpy(frames))

    decoded, stream = decode(path)
    assert decoded.shape == frames.shape
    assert stream.average_rate == Fraction(fps).limit_denominator(1001)
    error = np.abs(decoded.astype(np.int16) - frames).mean(axis=(1, 2, 3))
    assert error.max() < 4
    distances = np.abs(decoded[:, None].astype(np.int16) - frames[None]).mean(axis=(2, 3, 4))
    assert (distances.argmin(axis=1) == np.arange(len(frames))).all()


def test_odd_size_is_padded_to_even_for_yuv420p(tmp_path: Path) -> None:
    frames = moving_square(5, 33, 45)
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, 10) as writer:
        for frame in frames:
            writer.write(frame)
        assert writer.frame_size == (34, 46)

    decoded, _ = decode(path)
    assert decoded.shape == (5, 34, 46, 3)
    assert np.abs(decoded[:, :33, :45].astype(np.int16) - frames).mean() < 4


def test_frames_are_resized_to_the_requested_size(tmp_path: Path) -> None:
    path = tmp_path / "small.mp4"
    with VideoWriter(path, 10, size=(32, 48)) as writer:
        writer.write_many(moving_square(3, 64, 96))
    decoded, _ = decode(path)
    assert decoded.shape == (3, 32, 48, 3)


def test_an_error_inside_the_block_leaves_the_old_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "kept.mp4"
    path.write_bytes(b"previous result")
    with pytest.raises(RuntimeError), VideoWriter(path, 10) as writer:
        writer.write_many(moving_square(4, 32, 32))
        raise RuntimeError("crash while annotating")
    assert path.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.mp4"]


def test_the_file_appears_only_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "late.mp4"
    writer = VideoWriter(path, 10)
    writer.write_many(moving_square(3, 32, 32))
    assert not path.exists()
    writer.close()
    assert decode(path)[0].shape[0] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.mp4"]


def test_closing_without_frames_saves_nothing(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "empty.mp4", 10, size=(32, 32))
    with pytest.raises(VideoError, match="no frames"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_paths_are_user_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(VideoError, match="a_file"):
        VideoWriter(blocker / "clip.mp4", 10)
    with pytest.raises(VideoError, match=r"unknown extension '\.xyz'"):
        VideoWriter(tmp_path / "clip.xyz", 10)


def test_wrong_frames_are_rejected(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "clip.mp4", 10) as writer:
        with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
            writer.write(np.zeros((32, 32, 3), np.float32))
        with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
            writer.write(np.zeros((32, 32), np.uint8))
        writer.write(np.zeros((32, 32, 3), np.uint8))
