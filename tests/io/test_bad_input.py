"""Every bad input becomes a one-line ``VideoError`` naming the file and the reason."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from resaction.errors import (
    FrameIndexError,
    ResactionError,
    VideoError,
    VideoNotFoundError,
    VideoOpenError,
)
from resaction.io import VideoReader
from resaction.io.exactness import check_exactness
from tests.io.conftest import CODECS
from tests.io.videogen import read_code, replace_packet, write_audio_only, write_video


def assert_one_line(error: pytest.ExceptionInfo, path: Path, reason: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    assert reason in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoNotFoundError) as error:
        VideoReader(path)
    assert_one_line(error, path, "not found")


def test_folder(tmp_path: Path) -> None:
    with pytest.raises(VideoOpenError) as error:
        VideoReader(tmp_path)
    assert_one_line(error, tmp_path, "folder")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(VideoOpenError) as error:
        VideoReader(path)
    assert_one_line(error, path, "empty")


@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.txt", b"this is not a video\n" * 20), ("noise.mp4", bytes(range(256)) * 64)],
)
def test_not_a_video(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VideoOpenError) as error:
        VideoReader(path)
    assert_one_line(error, path, "cannot be opened as a video")


def test_audio_only_file(tmp_path: Path) -> None:
    path = write_audio_only(tmp_path / "speech.wav")
    with pytest.raises(VideoOpenError) as error:
        VideoReader(path)
    assert_one_line(error, path, "no video stream (found 1 audio)")


def test_mp4_cut_before_its_index(tmp_path: Path) -> None:
    """Without faststart the MP4 index (moov) is at the end: half a file cannot be read."""
    full = write_video(tmp_path / "full.mp4", num_frames=30, **CODECS["h264_mp4"][2])
    path = tmp_path / "half.mp4"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(VideoOpenError) as error:
        VideoReader(path)
    assert_one_line(error, path, "cannot be opened as a video")


def test_frames_outside_the_video(h264_video: Path) -> None:
    with VideoReader(h264_video) as reader:
        for bad in ([40], [0, 5, 99], [-1]):
            with pytest.raises(FrameIndexError) as error:
                reader.get_frames(bad)
            assert_one_line(error, h264_video, "out of range; the video has 40 frames")
        with pytest.raises(FrameIndexError):
            reader.frame_to_time(40)
        with pytest.raises(FrameIndexError):
            reader.time_to_frame(reader.duration + 0.5)
        with pytest.raises(FrameIndexError):
            next(reader.iter_frames(start=41))
        assert list(reader.iter_frames(start=40)) == []
        assert len(list(reader.iter_frames(start=35, stop=100))) == 5


@pytest.mark.parametrize("name", ["h264_mp4", "mpeg4_bframes_avi"])
def test_corrupt_middle_never_crashes(tmp_path: Path, name: str) -> None:
    """Garbage in the middle of the data: reading either works or raises a VideoError."""
    suffix, _, kwargs = CODECS[name]
    kwargs = {**kwargs, "options": {**kwargs.get("options", {}), "b": "1000k"}}
    path = write_video(tmp_path / f"bad{suffix}", num_frames=40, **kwargs)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 600] = np.random.default_rng(0).bytes(600)
    path.write_bytes(bytes(data))
    try:
        reader = VideoReader(path)
    except VideoError:
        return
    with reader:
        seen = [index for index, _, _ in reader.iter_frames()]
        assert seen == sorted(set(seen))
        for start in range(0, reader.num_frames, 8):
            try:
                clip = reader.get_frames(range(start, min(start + 8, reader.num_frames)))
            except ResactionError as error:
                assert isinstance(error, VideoError)
                assert str(path) in str(error)
            else:
                assert clip.shape[1:] == (64, 96, 3)


@pytest.mark.parametrize(
    ("suffix", "kwargs"),
    [(".avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}), (".mp4", {"codec": "mpeg4"})],
)
def test_iter_frames_goes_on_after_a_damaged_packet(
    tmp_path: Path, suffix: str, kwargs: dict
) -> None:
    """One packet of garbage (a disk error, a camera's broken JPEG): the frames from it up to
    the next keyframe are skipped (a plain MPEG-4 decode shows wrong pictures there) and the
    rest of the recording is read; ``iter_frames`` used to end at the damage, and a long
    video's timeline with it. A read that needs a lost frame says so."""
    source = write_video(tmp_path / f"source{suffix}", num_frames=90, gop=10, **kwargs)
    with av.open(str(source)) as container:
        size = [p.size for p in container.demux(video=0) if p.size][40]
    garbage = np.random.default_rng(0).bytes(size)
    path = replace_packet(source, tmp_path / f"damaged{suffix}", 40, garbage)
    with VideoReader(path) as reader:
        resume = min(int(k) for k in reader._index.key_slot if k > 40)
        lost = list(range(40, resume))
        streamed = [(index, read_code(frame)) for index, _, frame in reader.iter_frames()]
        assert [index for index, _ in streamed] == [i for i in range(90) if i not in lost]
        assert all(index == code for index, code in streamed)
        with pytest.raises(VideoError, match="frame 40 of 90 could not be decoded"):
            reader.get_frames([40])
        assert read_code(reader.get_frames([resume]).numpy()[0]) == resume
    assert (len(lost) == 1) == (suffix == ".avi")
    report = check_exactness(path, reads=2)
    assert "1 packet(s) fail to decode: the file is damaged there" in str(report.error)
