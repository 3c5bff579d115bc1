"""Videos that trip readers up: variable frame rate, rotation, grayscale, odd sizes, lying
headers and truncated files."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import resaction.io.index_build as index_module
from resaction.io import VideoReader, VideoWriter, open_video
from tests.io.conftest import CODECS
from tests.io.videogen import code_image, cut_in_half, read_code, write_video

H264 = CODECS["h264_mp4"][2]


def all_codes(reader: VideoReader) -> list[int]:
    return [read_code(frame) for frame in reader.get_frames(range(reader.num_frames)).numpy()]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_timestamps(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(1)
    gaps = rng.choice([20, 33, 40, 100, 250], size=29)
    pts = np.concatenate([[0], np.cumsum(gaps)])
    path = write_video(
        tmp_path / f"vfr{suffix}", num_frames=30, pts=pts, time_base=Fraction(1, 1000), **H264
    )
    with VideoReader(path) as reader:
        np.testing.assert_allclose(reader.timestamps, pts / 1000, atol=1e-6)
        assert reader.fps == pytest.approx(29 / (pts[-1] / 1000), rel=1e-6)
        assert reader.time_to_frame(pts[12] / 1000 + 0.001) == 12
        assert reader.time_to_frame(pts[12] / 1000 - 0.001) == 11
        wanted = [29, 3, 17, 17, 0, 25]
        assert [read_code(f) for f in reader.get_frames(wanted).numpy()] == wanted
        seen = [(i, t) for i, t, _ in reader.iter_frames(5, 9)]
    assert seen == [(i, pytest.approx(pts[i] / 1000)) for i in range(5, 9)]


@pytest.mark.parametrize(
    ("rotation", "suffix", "tag"),
    [(90, ".mp4", False), (180, ".mp4", False), (270, ".mp4", False), (270, ".mkv", True)],
)
def test_rotated_video_is_returned_upright(
    tmp_path: Path, rotation: int, suffix: str, tag: bool
) -> None:
    """Display matrix (phones), or the legacy ``rotate`` tag (90 = turn clockwise) in MKV."""
    path = tmp_path / f"rot{rotation}{suffix}"
    kwargs = {"rotation": rotation, "rotate_tag": tag, **H264}
    write_video(path, num_frames=12, width=48, height=80, **kwargs)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        coded = (stream.height, stream.width)
    assert coded == ((80, 48) if rotation == 180 else (48, 80))
    with VideoReader(path) as reader:
        meta = reader.metadata
        assert (meta.rotation, meta.height, meta.width) == (rotation, 80, 48)
        assert all_codes(reader) == list(range(12))
    with VideoReader(path, short_side=24) as reader:
        frames = reader.get_frames([11, 2]).numpy()
        assert frames.shape == (2, 40, 24, 3)
        assert [read_code(f) for f in frames] == [11, 2]


@pytest.mark.parametrize(
    ("name", "kwargs", "pix_fmt"),
    [
        ("gray.mkv", {"codec": "ffv1", "pix_fmt": "gray"}, "gray"),
        # monochrome (4:0:0) H.264: FFmpeg's decoder returns it as yuv420p with flat chroma
        ("gray.mp4", {**H264, "pix_fmt": "gray"}, "yuv420p"),
    ],
)
def test_grayscale_source(tmp_path: Path, name: str, kwargs: dict, pix_fmt: str) -> None:
    path = write_video(tmp_path / name, num_frames=20, **kwargs)
    with VideoReader(path) as reader:
        assert reader.metadata.pix_fmt == pix_fmt
        frames = reader.get_frames(range(20)).numpy().astype(int)
    assert frames.shape == (20, 64, 96, 3)
    assert np.abs(frames[..., 0] - frames[..., 1]).max() <= 1
    assert np.abs(frames[..., 0] - frames[..., 2]).max() <= 1
    assert [read_code(f) for f in frames] == list(range(20))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("odd.mp4", {**H264, "pix_fmt": "yuv444p"}),
        ("odd.avi", {"codec": "mjpeg", "pix_fmt": "yuvj444p"}),
        ("odd.mkv", {"codec": "ffv1", "pix_fmt": "yuv420p"}),
    ],
)
def test_odd_frame_size(tmp_path: Path, name: str, kwargs: dict) -> None:
    path = write_video(tmp_path / name, num_frames=20, width=97, height=61, **kwargs)
    with VideoReader(path) as reader:
        assert (reader.metadata.width, reader.metadata.height) == (97, 61)
        assert reader.get_frames([0]).shape == (1, 61, 97, 3)
        assert all_codes(reader) == list(range(20))
    with VideoReader(path, short_side=31) as reader:
        assert reader.frame_size == (31, 49)
        assert [read_code(f) for f in reader.get_frames([19, 4]).numpy()] == [19, 4]


def test_frame_count_missing_from_header(tmp_path: Path) -> None:
    path = write_video(tmp_path / "nocount.webm", num_frames=33, codec="libvpx-vp9")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    with VideoReader(path) as reader:
        assert reader.num_frames == 33
        assert all_codes(reader) == list(range(33))


def _set_avi_frame_count(path: Path, count: int) -> None:
    data = bytearray(path.read_bytes())
    avih = data.index(b"avih")
    struct.pack_into("<I", data, avih + 8 + 16, count)
    strh = data.index(b"strh")
    struct.pack_into("<I", data, strh + 8 + 32, count)
    path.write_bytes(bytes(data))


def test_frame_count_wrong_in_header(tmp_path: Path) -> None:
    path = write_video(tmp_path / "lying.avi", num_frames=30, codec="mjpeg", pix_fmt="yuvj420p")
    _set_avi_frame_count(path, 1000)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 1000
    with VideoReader(path) as reader:
        assert reader.num_frames == 30
        assert all_codes(reader) == list(range(30))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("cut_faststart.mp4", {**H264, "container_options": {"movflags": "faststart"}}),
        ("cut.mkv", H264),
        ("cut_bframes.avi", {"codec": "mpeg4", "max_b_frames": 2, "options": {"b": "2000k"}}),
        ("cut_mjpeg.avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}),
    ],
)
def test_truncated_file_yields_the_frames_it_has(tmp_path: Path, name: str, kwargs: dict) -> None:
    full = write_video(tmp_path / f"full_{name}", num_frames=60, **kwargs)
    path = cut_in_half(full, tmp_path / name)
    with VideoReader(path) as reader:
        count = reader.num_frames
        assert 10 < count < 60
        # every indexed frame decodes, and shows the source frame its timestamp says it is
        expected = np.rint(reader.timestamps * 25).astype(int).tolist()
        assert all_codes(reader) == expected
        assert expected[0] == 0 and expected == sorted(set(expected))
        assert [i for i, _, _ in reader.iter_frames()] == list(range(count))


def test_truncated_avi_with_counted_frames(tmp_path: Path, monkeypatch) -> None:
    """The same cut B-frame AVI when frames are numbered by packet (as for DivX packed
    B-frames)."""
    monkeypatch.setattr(index_module, "identify_by_pts", lambda *args: False)
    kwargs = {"codec": "mpeg4", "max_b_frames": 2, "options": {"b": "2000k"}}
    full = write_video(tmp_path / "full.avi", num_frames=60, **kwargs)
    with VideoReader(cut_in_half(full, tmp_path / "cut.avi")) as reader:
        assert 10 < reader.num_frames < 60
        assert all_codes(reader) == list(range(reader.num_frames))


def test_a_thumbnail_stream_before_the_recording_is_not_the_video(tmp_path: Path) -> None:
    """An MKV whose first video stream is a one-picture 32 x 32 thumbnail: the reader takes the
    recording, as FFmpeg's players do (it took the thumbnail: one frame)."""
    path = tmp_path / "with_thumbnail.mkv"
    with av.open(str(path), mode="w") as container:
        thumbnail = container.add_stream("mjpeg", rate=1)
        thumbnail.width = thumbnail.height = 32
        thumbnail.pix_fmt = "yuvj420p"
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        picture = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for packet in [*thumbnail.encode(picture), *thumbnail.encode()]:
            container.mux(packet)
        for number in range(30):
            gray = np.repeat(code_image(number, 64, 96)[..., None], 3, axis=2)
            container.mux(video.encode(av.VideoFrame.from_ndarray(gray, format="rgb24")))
        container.mux(video.encode())
    with VideoReader(path) as reader:
        assert (reader.metadata.width, reader.metadata.height) == (96, 64)
        assert all_codes(reader) == list(range(30))


@pytest.mark.parametrize("name", ["12:30:00.mp4", "cam1:front door.mp4"])
def test_a_file_name_with_a_colon_is_not_taken_for_a_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Recorders name files by the time ("12:30:00.mp4"); given by a relative path, FFmpeg took
    the part before the colon for a protocol and every reader failed ("Protocol not found")."""
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "source.mp4", "libx264", num_frames=20).rename(tmp_path / name)
    with VideoReader(name) as reader:
        assert all_codes(reader) == list(range(20))
    with open_video(name, backend="opencv") as reader:
        assert reader.num_frames == 20
    written = f"copy {name}"
    with VideoWriter(written, fps=25) as writer:
        for _ in range(3):
            writer.write(np.zeros((32, 48, 3), np.uint8))
    with VideoReader(written) as reader:
        assert reader.num_frames == 3
