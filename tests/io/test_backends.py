"""``open_video`` and the optional backends keep the reader interface."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from resaction.errors import ConfigError, SourceError, VideoNotFoundError, VideoOpenError
from resaction.io import OpenCVReader, VideoReader, open_video
from tests.io.conftest import FRAMES, RATE
from tests.io.videogen import read_code


def test_pyav_is_the_default(h264_video: Path) -> None:
    with open_video(h264_video, short_side=32) as reader:
        assert isinstance(reader, VideoReader)
        assert reader.frame_size == (32, 48)


def test_opencv_reader_is_frame_accurate_on_files(coded_video: tuple[Path, str]) -> None:
    wanted = np.random.default_rng(3).integers(0, FRAMES, size=20)
    with open_video(coded_video[0], backend="opencv", short_side=32) as reader:
        assert isinstance(reader, OpenCVReader)
        assert (reader.num_frames, reader.fps) == (FRAMES, pytest.approx(RATE))
        assert (reader.metadata.width, reader.metadata.height) == (96, 64)
        frames = reader.get_frames(wanted)
        assert frames.shape == (20, 32, 48, 3)
        assert [read_code(f) for f in frames.numpy()] == wanted.tolist()
        tail = list(reader.iter_frames(start=36))
        assert [(i, read_code(f)) for i, _, f in tail] == [(i, i) for i in range(36, 40)]
        assert tail[0][1] == pytest.approx(36 / RATE)


def test_opencv_stream_url_is_read_in_order(h264_video: Path) -> None:
    """A URL is a live source: frames arrive in order, with no random access."""
    with open_video(h264_video.as_uri(), backend="opencv") as reader:
        assert reader.live and reader.num_frames == 0
        seen = [(i, read_code(f)) for i, _, f in reader.iter_frames(stop=6)]
        assert seen == [(i, i) for i in range(6)]
        with pytest.raises(SourceError):
            reader.get_frames([0])


def test_opencv_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(VideoNotFoundError):
        open_video(tmp_path / "missing.avi", backend="opencv")
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n" * 10)
    with pytest.raises(VideoOpenError, match=r"notes\.txt"):
        open_video(text, backend="opencv")
    with pytest.raises(SourceError, match="cannot open camera or stream"):
        open_video("rtsp://127.0.0.1:1/none", backend="opencv")


def test_torchcodec_backend(h264_video: Path) -> None:
    if importlib.util.find_spec("torchcodec") is None:
        with pytest.raises(ConfigError, match="pip install torchcodec"):
            open_video(h264_video, backend="torchcodec")
    else:
        with open_video(h264_video, backend="torchcodec", short_side=32) as reader:
            frames = reader.get_frames([30, 2])
            assert frames.shape == (2, 32, 48, 3)
            assert [read_code(f) for f in frames.numpy()] == [30, 2]


def test_unknown_backend(h264_video: Path) -> None:
    with pytest.raises(ConfigError, match="unknown video backend 'decord'"):
        open_video(h264_video, backend="decord")
    with pytest.raises(ConfigError, match="backend='opencv'"):
        open_video("rtsp://camera.local/stream")
