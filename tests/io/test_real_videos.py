"""The reader on the real videos in ../shared/data/videos (MPEG-4 Part 2 AVI, H.264 MP4)."""

from __future__ import annotations

import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from resaction.io import VideoReader
from resaction.io.exactness import check_exactness, sequential_decode

CLIP = 16
CLIPS = 10


def random_clips(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """``CLIPS`` clips of ``CLIP`` consecutive frames (looped if the video is shorter)."""
    starts = rng.integers(0, max(num_frames - CLIP, 0) + 1, size=CLIPS)
    return (starts[:, None] + np.arange(CLIP)[None, :]) % num_frames


def header_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return container.streams.video[0].frames


def check_clips(path: Path, short_side: int) -> None:
    with VideoReader(path, short_side=short_side) as reader:
        meta = reader.metadata
        assert meta.num_frames == header_frame_count(path) > 0
        assert min(meta.width, meta.height) >= 100 and meta.fps > 5
        ts = reader.timestamps
        assert ts[0] == 0.0 and np.all(np.diff(ts) > 0)
        # the mean frame interval agrees with fps, and no frame sits far off its slot
        assert ts[-1] == pytest.approx((meta.num_frames - 1) / meta.fps, rel=0.02)
        assert np.abs(ts - np.arange(meta.num_frames) / meta.fps).max() < 0.5
        clips = random_clips(meta.num_frames, np.random.default_rng(len(path.name)))
        frames = reader.get_frames(clips.reshape(-1))
        height, width = reader.frame_size
        assert min(height, width) == short_side
        assert frames.shape == (CLIPS * CLIP, height, width, 3)
        assert frames.reshape(CLIPS, CLIP, -1).float().std(dim=2).min() > 0  # not blank


def one_per_dataset(videos: list[Path], root: Path) -> list[Path]:
    first: dict[str, Path] = {}
    for path in videos:
        first.setdefault(path.relative_to(root).parts[0], path)
    return sorted(first.values())


def test_one_video_per_dataset(all_shared_videos: list[Path], videos_dir: Path) -> None:
    chosen = one_per_dataset(all_shared_videos, videos_dir)
    assert len(chosen) >= 8
    for path in chosen:
        check_clips(path, short_side=32)


@pytest.mark.slow
def test_every_shared_video_reads_frame_exact(all_shared_videos: list[Path]) -> None:
    """Every real video: random, unsorted, repeated reads and runs across keyframes (two reads of
    several frames per video, 1,374 in all; more per video on fewer videos elsewhere), each from a
    fresh seek, and a full ``iter_frames``, equal PyAV's sequential decode."""
    assert len(all_shared_videos) >= 687
    not_exact = []
    # A video's check is one core's work (decoding is single-threaded here): spread them.
    workers = max(1, min(2, len(os.sched_getaffinity(0))))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        reports = list(
            pool.map(functools.partial(check_exactness, reads=2), all_shared_videos, chunksize=8)
        )
    for report in reports:
        path = report.path
        if not report.exact:
            not_exact.append(report.error or f"{path}: wrong frames {report.wrong[:10]}")
    assert not_exact == []


@pytest.mark.parametrize(
    "relative",
    [
        # MPEG-4 Part 2 AVI with DivX packed B-frames: FFmpeg's guessed pts are out of order
        "gt_cs4495_ps7/A2_one_hand_wave/PS7A2P1T1.avi",
        "ucf101_subset/Diving/v_Diving_g01_c01.avi",
        "hockey_fight/fight/fi1_xvid.avi",
        "kinetics400_samples/arm_wrestling/demo.mp4",
        "gmdcsa24/Fall/subject4_01.mp4",
    ],
)
def test_frames_equal_a_plain_full_decode(videos_dir: Path, relative: str) -> None:
    """Random clips are pixel-identical to the same frames of a decode from the start, in the
    decoder's output (presentation) order."""
    path = videos_dir / relative
    reference = sequential_decode(path, size=(48, 64)).frames
    with VideoReader(path, size=(48, 64), reduced_decoding=False) as reader:
        assert reader.num_frames == len(reference)
        rng = np.random.default_rng(7)
        for _ in range(4):
            start = int(rng.integers(0, len(reference) - 8))
            wanted = [*range(start + 7, start - 1, -1), int(rng.integers(0, len(reference)))]
            frames = reader.get_frames(wanted).numpy()
            for got, index in zip(frames, wanted, strict=True):
                np.testing.assert_array_equal(got, reference[index])


def test_reads_start_anywhere_in_a_run_of_packed_b_frames(
    videos_dir: Path, decoded_slots: list[int]
) -> None:
    """DivX packed B-frames (PS7: I B B P B B P ...): a read may start at any picture of a run
    of B-pictures, and the B-pictures before it, which nothing refers to, are not decoded."""
    path = videos_dir / "gt_cs4495_ps7/A2_one_hand_wave/PS7A2P1T1.avi"
    reference = sequential_decode(path, size=(24, 32)).frames
    with VideoReader(path, size=(24, 32), reduced_decoding=False) as reader:
        assert reader.seek_mode == "packet"
        for start in range(36, -1, -1):  # each read lies behind the last: a new seek
            decoded_slots.clear()
            frames = reader.get_frames([start, start + 1, start + 2]).numpy()
            np.testing.assert_array_equal(frames, reference[start : start + 3])
            before = [slot for slot in decoded_slots if slot < start]
            # the reference pictures, and the B-pictures decoded after the reference before them
            assert len(before) <= start // 3 + 2, (start, before)
