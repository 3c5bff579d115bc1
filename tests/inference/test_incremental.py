"""Incremental scores (live windows, timelines) equal the from-scratch computation of the same
frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resaction.data.spec import ClipSpec
from resaction.inference.incremental import LiveScorer, supports_incremental
from resaction.inference.predictor import Predictor
from resaction.inference.timeline import TimelineConfig, run_timeline, window_sampler
from resaction.inference.window_run import window_cache
from resaction.io.live import CapturedFrame
from resaction.models import create_model
from resaction.runtime.backends import TorchBackend
from resaction.runtime.scores import softmax

SIZE = 48
SPEC = ClipSpec(resize=SIZE, crop=SIZE, mean=[0.45] * 3, std=[0.225] * 3)


def frames(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


def scorer_for(name: str, clip_len: int, segment_len: int = 1, **options) -> LiveScorer:
    torch.manual_seed(0)
    if "diff" in name:
        options["segment_len"] = segment_len
    model = create_model(name, num_classes=5, **options).eval()
    return LiveScorer(
        TorchBackend(model),
        model,
        SPEC.transform(train=False),
        clip_len=clip_len,
        segment_len=segment_len,
        max_batch=3,
    )


def run_cameras(scorer: LiveScorer, videos: list[np.ndarray], step: int = 1):
    """Feed every camera's frames a few at a time, interleaved, as the watcher does."""
    tracks = [scorer.track(f"cam{i}", step) for i in range(len(videos))]
    scores = []
    for start in range(0, len(videos[0]), 3):
        for track, video in zip(tracks, videos, strict=True):
            for seq in range(start, min(start + 3, len(video))):
                scorer.add(track, CapturedFrame(seq, seq / 25, 0.0, video[seq]))
        scores.extend(scorer.score(tracks))
    return scores


def reference_probs(scorer: LiveScorer, window: np.ndarray) -> np.ndarray:
    clip = scorer.transform(torch.from_numpy(window)).unsqueeze(0)
    with torch.inference_mode():
        return softmax(scorer.module(clip).numpy())[0]


@pytest.mark.parametrize(
    ("name", "clip_len", "segment_len"),
    [("tsn_resnet18", 4, 1), ("tsn_diff_resnet18", 6, 3), ("lrcn_resnet18", 4, 1)],
)
def test_incremental_windows_equal_from_scratch(name: str, clip_len: int, segment_len: int) -> None:
    options = {"num_segments": clip_len // segment_len} if name.startswith("tsn") else {}
    scorer = scorer_for(name, clip_len, segment_len, **options)
    assert scorer.incremental
    videos = [frames(20, seed) for seed in range(3)]
    step = 4 if segment_len > 1 else 2
    scores = run_cameras(scorer, videos, step=step)
    # A unit: segment_len consecutive frames, one starting every `step` frames.
    units = [list(range(s, s + segment_len)) for s in range(0, 20 - segment_len + 1, step)]
    units_per_window = clip_len // segment_len
    assert len(scores) == 3 * (len(units) - units_per_window + 1)
    for score in scores:
        video = videos[int(score.camera[3:])]
        end = [unit[-1] for unit in units].index(score.seq)
        picks = [f for unit in units[end - units_per_window + 1 : end + 1] for f in unit]
        np.testing.assert_allclose(
            score.probabilities, reference_probs(scorer, video[picks]), atol=1e-4
        )


def test_online_tsm_equals_the_past_shift_model_over_the_whole_stream() -> None:
    scorer = scorer_for("tsm_online_resnet18", 4)
    assert scorer.incremental and scorer.stateful
    videos = [frames(12, seed) for seed in range(2)]
    scores = run_cameras(scorer, videos)
    assert len(scores) == 2 * (12 - 4 + 1)
    torch.manual_seed(0)
    past = create_model("tsm_online_resnet18", num_classes=5).eval()
    for index, video in enumerate(videos):
        clip = scorer.transform(torch.from_numpy(video)).unsqueeze(0)
        with torch.inference_mode():
            per_frame = past.forward_frames(clip)[0]
        mine = [s for s in scores if s.camera == f"cam{index}"]
        for score in mine:
            window = per_frame[score.seq - 3 : score.seq + 1].unsqueeze(0)
            expected = softmax(past.pool_frames(window).numpy())[0]
            np.testing.assert_allclose(score.probabilities, expected, atol=1e-4)


def test_models_without_a_causal_trunk_recompute_windows_at_a_stride() -> None:
    torch.manual_seed(0)
    model = create_model("r3d_10", num_classes=5).eval()
    assert not supports_incremental(model)
    assert not supports_incremental(create_model("tsm_resnet18", num_classes=5))
    scorer = LiveScorer(
        TorchBackend(model), model, SPEC.transform(train=False), clip_len=4, stride=2
    )
    videos = [frames(12, 7)]
    scores = run_cameras(scorer, videos)
    assert [s.seq for s in scores] == [3, 5, 7, 9, 11]
    for score in scores:
        window = videos[0][score.seq - 3 : score.seq + 1]
        np.testing.assert_allclose(score.probabilities, reference_probs(scorer, window), atol=1e-4)


def test_dropped_frames_restart_the_lattice_at_the_next_frame() -> None:
    scorer = scorer_for("tsn_resnet18", 2, num_segments=2)
    track = scorer.track("cam", step=2)
    image = frames(1, 0)[0]
    kept = [
        seq
        for seq in (0, 1, 2, 5, 6, 7, 9)
        if scorer.add(track, CapturedFrame(seq, 0.0, 0.0, image))
    ]
    assert kept == [0, 2, 5, 7, 9]
    pairs = scorer_for("tsn_diff_resnet18", 4, 2, num_segments=2)
    track = pairs.track("cam", step=5)
    kept = [
        s
        for s in (0, 1, 2, 5, 7, 8, 9, 10, 11)
        if pairs.add(track, CapturedFrame(s, 0.0, 0.0, image))
    ]
    # 5 starts a unit whose second frame (6) never came: it is dropped, 7 starts the next.
    assert kept == [0, 1, 5, 7, 8] and len(track.pending) == 2
    assert [u.seq for u in track.pending] == [1, 8]


@pytest.mark.parametrize(
    ("name", "clip_len", "segment_len"), [("tsn_resnet18", 8, 1), ("tsn_diff_resnet18", 8, 2)]
)
def test_timeline_shares_frames_between_windows_and_gives_the_same_scores(
    videos_dir, name: str, clip_len: int, segment_len: int
) -> None:

    torch.manual_seed(0)
    options = {"num_segments": clip_len // segment_len}
    if segment_len > 1:
        options["segment_len"] = segment_len
    model = create_model(name, num_classes=5, **options).eval()
    spec = SPEC.updated(
        {"clip_len": clip_len, "segment_len": segment_len, "resize": 40, "crop": 32}
    )
    predictor = Predictor(TorchBackend(model), [f"c{i}" for i in range(5)], spec)
    video = videos_dir / "kth_samples/boxing/boxing_sample.avi"
    config = {"stride": 4, "batch_size": 4}

    def windows(stride: int):
        return window_sampler(predictor.preprocess, TimelineConfig(stride=stride), 25.0)

    assert window_cache(predictor, windows(4)) is not None
    assert (window_cache(predictor, windows(3)) is None) == (segment_len == 2)
    fast = run_timeline(predictor, video, TimelineConfig(**config))
    slow = run_timeline(predictor, video, TimelineConfig(**config, incremental=False))
    assert len(fast.logits) == len(slow.logits) > 10
    np.testing.assert_allclose(fast.logits, slow.logits, atol=1e-4, rtol=1e-4)


def test_stateful_and_3d_models_keep_recomputing_timeline_windows() -> None:
    for name in ("tsm_online_resnet18", "r3d_10"):
        predictor = Predictor(TorchBackend(create_model(name, num_classes=2)), ["a", "b"], SPEC)
        windows = window_sampler(predictor.preprocess, TimelineConfig(stride=1), 25.0)
        assert window_cache(predictor, windows) is None


@pytest.mark.parametrize("name", ["tsn_resnet18", "lrcn_resnet18"])
def test_stream_scores_each_frame_once_with_the_same_windows(
    tmp_path, steps_video, name: str
) -> None:
    from resaction.inference.stream import StreamConfig, run_stream

    from .conftest import make_checkpoint

    predictor = Predictor.from_checkpoint(make_checkpoint(tmp_path / "m.pt", name))
    runs = {}
    for incremental in (True, False):
        events: list[dict] = []
        config = StreamConfig(rate=5, smooth=1, stats_every=0, incremental=incremental)
        summary = run_stream(predictor, steps_video, config, on_event=events.append)
        runs[incremental] = ([e for e in events if e["event"] == "window"], summary)
    (fast, fast_summary), (slow, _) = runs[True], runs[False]
    assert fast_summary["windows"] == len(range(3, 100, 5)) == len(fast) == len(slow)
    for mine, theirs in zip(fast, slow, strict=True):
        assert (mine["time"], mine["label"]) == (theirs["time"], theirs["label"])
        assert mine["confidence"] == pytest.approx(theirs["confidence"], abs=1e-4)


def test_only_frames_on_the_lattice_are_converted() -> None:
    scorer = scorer_for("tsn_resnet18", 2, num_segments=2)
    track = scorer.track("cam", step=3)
    image = frames(1, 0)[0]
    converted: list[int] = []

    def convert(picture: int) -> np.ndarray:
        converted.append(picture)
        return image

    taken = [CapturedFrame(seq, seq / 25, 0.0, picture=seq, convert=convert) for seq in range(8)]
    kept = [frame.seq for frame in taken if scorer.add(track, frame)]
    assert kept == converted == [0, 3, 6]
    assert taken[6].image is image and converted == [0, 3, 6]  # converted once
    taken[7].release()
    with pytest.raises(RuntimeError, match="frame 7 was released"):
        taken[7].image  # noqa: B018
    with pytest.raises(ValueError, match="needs an image"):
        CapturedFrame(0, 0.0, 0.0, picture=1)
