from __future__ import annotations

import numpy as np
import pytest

from resaction.data.sampling import (
    RandomClipSampler,
    SegmentSampler,
    SlidingWindowSampler,
    UniformClipSampler,
    build_sampler,
)
from resaction.errors import ConfigError, FrameIndexError


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_random_clip_is_consecutive_and_reaches_both_ends() -> None:
    sampler = RandomClipSampler(8, frame_interval=2)
    starts = set()
    for seed in range(300):
        (clip,) = sampler(40, 25.0, _rng(seed))
        assert clip.dtype == np.int64 and len(clip) == 8
        assert np.all(np.diff(clip) == 2)
        assert clip[0] >= 0 and clip[-1] <= 39
        starts.add(int(clip[0]))
    assert starts == set(range(0, 40 - 15 + 1))


def test_same_rng_seed_gives_the_same_clip() -> None:
    sampler = RandomClipSampler(4)
    assert np.array_equal(sampler(100, 30.0, _rng(5))[0], sampler(100, 30.0, _rng(5))[0])


@pytest.mark.parametrize("fps", [30.0, 29.97, 25.0, 60.0, 10.0])
def test_target_fps_resamples_in_time(fps: float) -> None:
    sampler = RandomClipSampler(16, target_fps=15)
    (clip,) = sampler(1000, fps, _rng())
    times = (clip - clip[0]) / fps
    expected = np.arange(16) / 15
    assert np.all(np.abs(times - expected) <= 0.5 / fps + 1e-9)
    assert np.all(np.diff(clip) >= 0)
    assert sampler.span(fps) == clip[-1] - clip[0] + 1


def test_target_fps_of_30fps_video_takes_every_other_frame() -> None:
    (clip,) = UniformClipSampler(5, num_clips=1, target_fps=15)(9, 30.0)
    assert clip.tolist() == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("fps", [None, 0.0, float("nan")])
def test_unknown_fps_falls_back_to_frame_interval(fps: float | None) -> None:
    (clip,) = RandomClipSampler(4, frame_interval=3, target_fps=15)(50, fps, _rng())
    assert np.all(np.diff(clip) == 3)


def test_uniform_clips_span_the_video_evenly() -> None:
    sampler = UniformClipSampler(10, num_clips=5)
    clips = sampler(110, 25.0, _rng())
    starts = [int(clip[0]) for clip in clips]
    assert starts[0] == 0 and clips[-1][-1] == 109
    assert np.ptp(np.diff(starts)) <= 1
    assert all(
        np.array_equal(a, b) for a, b in zip(clips, sampler(110, 25.0, _rng(9)), strict=True)
    )


def test_single_uniform_clip_is_centred() -> None:
    (clip,) = UniformClipSampler(10, num_clips=1)(50, 25.0)
    assert clip[0] == 20 and clip[-1] == 29


@pytest.mark.parametrize("num_frames", [1, 3, 7, 15])
def test_short_video_loops(num_frames: int) -> None:
    for sampler in (RandomClipSampler(16, short_video="loop"), UniformClipSampler(16)):
        for clip in sampler(num_frames, 25.0, _rng()):
            assert clip.tolist() == [i % num_frames for i in range(16)]


@pytest.mark.parametrize("num_frames", [1, 3, 15])
def test_short_video_pads_with_its_last_frame(num_frames: int) -> None:
    sampler = UniformClipSampler(16, num_clips=3, short_video="pad")
    for clip in sampler(num_frames, 25.0):
        assert clip.tolist() == [min(i, num_frames - 1) for i in range(16)]


def test_video_without_frames_is_a_video_error() -> None:
    with pytest.raises(FrameIndexError):
        RandomClipSampler(4)(0, 25.0, _rng())


def test_training_segments_take_one_random_frame_per_segment() -> None:
    sampler = SegmentSampler(4, train=True)
    seen = set()
    for seed in range(100):
        (clip,) = sampler(40, 25.0, _rng(seed))
        assert [int(i) // 10 for i in clip] == [0, 1, 2, 3]
        seen.add(int(clip[0]))
    assert seen == set(range(10))


def test_test_segments_take_centres_and_shift_for_more_clips() -> None:
    (centre,) = SegmentSampler(4)(40, 25.0, _rng())
    assert centre.tolist() == [5, 15, 25, 35]
    clips = SegmentSampler(4, num_clips=2)(40, 25.0, _rng())
    assert [c.tolist() for c in clips] == [[2, 12, 22, 32], [7, 17, 27, 37]]


def test_segments_of_a_video_shorter_than_the_segments() -> None:
    (clip,) = SegmentSampler(8)(3, 25.0, _rng())
    assert len(clip) == 8 and set(clip.tolist()) == {0, 1, 2}
    assert np.all(np.diff(clip) >= 0)


def test_segments_of_several_frames_are_runs_of_consecutive_frames() -> None:
    sampler = SegmentSampler(12, train=True, segment_len=3, frame_interval=2)
    assert sampler.num_segments == 4
    starts = set()
    for seed in range(100):
        (clip,) = sampler(44, 25.0, _rng(seed))
        runs = clip.reshape(4, 3)
        assert np.all(np.diff(runs, axis=1) == 2)
        assert [int(first) // 10 for first in runs[:, 0]] == [0, 1, 2, 3]
        assert clip.max() <= 43
        starts.add(int(runs[0, 0]))
    assert starts == set(range(10))
    (centre,) = SegmentSampler(4, segment_len=2)(41, 25.0, _rng())
    assert centre.tolist() == [10, 11, 30, 31]


def test_segments_of_several_frames_in_a_video_shorter_than_one_run() -> None:
    (clip,) = SegmentSampler(6, segment_len=3)(2, 25.0, _rng())
    assert clip.tolist() == [0, 1, 1, 0, 1, 1]


def test_sliding_windows_cover_the_video_with_times() -> None:
    timestamps = np.cumsum(np.r_[0.0, np.full(9, 0.1), np.full(10, 0.05)])
    sampler = SlidingWindowSampler(4, stride=5)
    windows = sampler.windows(20, timestamps)
    assert [int(w.indices[0]) for w in windows] == [0, 5, 10, 15, 16]
    assert windows[-1].indices[-1] == 19
    for window in windows:
        first, last = int(window.indices[0]), int(window.indices[-1])
        assert window.start == pytest.approx(timestamps[first])
        if last + 1 < 20:
            assert window.end == pytest.approx(timestamps[last + 1])
    assert windows[-1].end == pytest.approx(timestamps[-1] + 0.05)
    assert len(SlidingWindowSampler(4, stride=5, cover_end=False)(20, 20.0)) == 4


def test_sliding_window_over_a_short_video_is_one_padded_window() -> None:
    (window,) = SlidingWindowSampler(8, stride=4, short_video="pad").windows(3, [0.0, 0.5, 1.0])
    assert window.indices.tolist() == [0, 1, 2, 2, 2, 2, 2, 2]
    assert (window.start, window.end) == (0.0, pytest.approx(1.5))


def test_build_sampler_from_preprocess_and_protocol() -> None:
    preprocess = {"clip_len": 16, "sampling": "dense", "frame_interval": 2, "target_fps": None}
    train = build_sampler(preprocess, train=True)
    test = build_sampler(preprocess, {"num_clips": 5})
    assert isinstance(train, RandomClipSampler) and train.frame_interval == 2
    assert isinstance(test, UniformClipSampler) and len(test(200, 25.0, _rng())) == 5
    tsn = {"clip_len": 8, "sampling": "segments"}
    assert build_sampler(tsn, train=True) == SegmentSampler(8, train=True)
    assert build_sampler(tsn, {"num_clips": 2}) == SegmentSampler(8, num_clips=2)
    diff = {"clip_len": 16, "sampling": "segments", "segment_len": 2, "frame_interval": 3}
    assert build_sampler(diff) == SegmentSampler(16, segment_len=2, frame_interval=3)
    kinetics = build_sampler({"clip_len": 16, "target_fps": 15}, {"num_clips": 1})
    assert kinetics.step(30.0) == 2.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: build_sampler({"sampling": "optical_flow"}),
        lambda: RandomClipSampler(0),
        lambda: RandomClipSampler(4, short_video="mirror"),
        lambda: UniformClipSampler(4, num_clips=0),
        lambda: RandomClipSampler(4, target_fps=-1),
        lambda: SlidingWindowSampler(4, stride=0),
        lambda: SegmentSampler(8, segment_len=3),
        lambda: SegmentSampler(8, segment_len=2, frame_interval=0),
    ],
)
def test_bad_sampler_settings(make) -> None:
    with pytest.raises(ConfigError):
        make()
