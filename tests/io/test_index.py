"""The frame index is built once per file; where pts cannot be trusted, pictures are numbered by
the packet they came from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import resaction.io.index_build as index_module
from resaction.io import VideoReader
from tests.io.conftest import CODECS, GOP
from tests.io.videogen import read_code, write_video


@pytest.fixture
def count_builds(monkeypatch) -> list[str]:
    index_module.clear_index_cache()
    built: list[str] = []
    original = index_module.build_index

    def counting(container, stream, path):
        built.append(str(path))
        return original(container, stream, path)

    monkeypatch.setattr(index_module, "build_index", counting)
    return built


def test_reopening_a_file_reuses_its_index(tmp_path: Path, count_builds: list[str]) -> None:
    path = write_video(tmp_path / "a.mp4", num_frames=20, **CODECS["h264_mp4"][2])
    for _ in range(3):
        with VideoReader(path, short_side=32) as reader:
            assert read_code(reader.get_frames([13])[0].numpy()) == 13
    assert count_builds == [str(path)]


def test_a_changed_file_is_indexed_again(tmp_path: Path, count_builds: list[str]) -> None:
    path = write_video(tmp_path / "a.mp4", num_frames=20, **CODECS["h264_mp4"][2])
    with VideoReader(path) as reader:
        assert reader.num_frames == 20
    write_video(path, num_frames=25, **CODECS["h264_mp4"][2])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with VideoReader(path) as reader:
        assert reader.num_frames == 25
    assert len(count_builds) == 2


def test_avi_with_b_frames_seeks_by_guessed_pts(tmp_path: Path, decoded_slots: list[int]) -> None:
    """FFmpeg guesses pts in AVI; when decoding confirms the guesses, seeks use them."""
    index_module.clear_index_cache()
    path = write_video(tmp_path / "b.avi", num_frames=40, **CODECS["mpeg4_bframes_avi"][2])
    yielded = decoded_slots
    with VideoReader(path) as reader:
        yielded.clear()  # what indexing decoded
        assert read_code(reader.get_frames([37])[0].numpy()) == 37
        assert min(yielded) > 20 and len(yielded) <= GOP + 2


def test_frames_numbered_by_packet_seek_near(
    tmp_path: Path, decoded_slots: list[int], monkeypatch
) -> None:
    """Where pts cannot be trusted (as with DivX packed B-frames, forced here), the stream is
    decoded once when indexed and its pictures are named by packet; every keyframe's frame number
    is then known, so even the first far request decodes only from the keyframe before it."""
    index_module.clear_index_cache()
    monkeypatch.setattr(index_module, "identify_by_pts", lambda *args: False)
    path = write_video(tmp_path / "b.avi", num_frames=40, **CODECS["mpeg4_bframes_avi"][2])
    yielded = decoded_slots
    with VideoReader(path) as reader:
        yielded.clear()  # what indexing decoded
        assert reader.seek_mode == "packet"
        assert read_code(reader.get_frames([37])[0].numpy()) == 37
        assert min(yielded) > 20 and len(yielded) <= GOP + 2
    yielded.clear()
    with VideoReader(path) as reader:
        wanted = [36, 13, 14, 25, 39]
        assert [read_code(f) for f in reader.get_frames(wanted).numpy()] == wanted
        assert yielded.count(36) == 1 and min(yielded) >= 10


@pytest.mark.parametrize("by_packet", [False, True])
def test_first_packet_from_is_the_first_packet_of_a_frame_or_a_later_one(
    tmp_path: Path, monkeypatch, by_packet: bool
) -> None:
    """Skipping stops at the reference picture before a wanted B-picture, not at the B-picture's
    own packet, whether pictures are named by pts or by packet."""
    index_module.clear_index_cache()
    if by_packet:
        monkeypatch.setattr(index_module, "identify_by_pts", lambda *args: False)
    path = write_video(tmp_path / "b.avi", num_frames=40, **CODECS["mpeg4_bframes_avi"][2])
    with VideoReader(path) as reader:
        index = reader._index
        assert reader.seek_mode == ("packet" if by_packet else "pts")
    if by_packet:
        slots = [int(slot) for slot in index.pos_slot]
    else:
        slots = [index.frame_slot.get(int(ts), -1) for ts in index.packet_ts]
    first = index.first_packet_from
    assert len(first) == index.num_frames + 1 and first[-1] == len(index.packet_ts)
    for frame in range(index.num_frames):
        assert first[frame] == min(p for p, slot in enumerate(slots) if slot >= frame)
    before_own_packet = [f for f in range(index.num_frames) if first[f] < slots.index(f)]
    assert len(before_own_packet) >= index.num_frames // 3  # the B-pictures
