from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import matplotlib.image
import numpy as np
import pytest
import torch

from resaction.data.sampling import build_sampler
from resaction.engine.evaluate import entries_from_paths, evaluate
from resaction.inference import Predictor
from resaction.inference.annotate import annotate_timeline, draw_label
from resaction.inference.timeline import (
    TimelineConfig,
    run_timeline,
    window_sampler,
    write_timeline,
)
from resaction.inference.window_run import FrameRing
from tests.io.videogen import replace_packet

from .conftest import CLASSES, brightness_predictor, make_checkpoint, write_video

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    ("sampling", "offsets"),
    [({"frame_interval": 2}, [0, 2, 4, 6]), ({"target_fps": 10}, [0, 3, 5, 8])],
)
def test_window_logits_equal_evaluate_clip_logits(
    tmp_path: Path, sampling: dict[str, float], offsets: list[int]
) -> None:
    video = write_video(tmp_path / "ramp.mp4", np.linspace(10, 240, 30).astype(int))
    predictor = Predictor.from_checkpoint(make_checkpoint(tmp_path / "ckpt.pt", **sampling))
    result = run_timeline(predictor, video, TimelineConfig(stride=1, smooth="none"))
    assert (result.frame_indices - result.frame_indices[:, :1] == offsets).all()
    evaluated = evaluate(
        predictor.backend.model,
        entries_from_paths([video]),
        CLASSES,
        preprocess=predictor.preprocess,
        protocol={"num_clips": 5, "num_crops": 1},
        batch_size=5,
        num_workers=0,
        progress=False,
    )
    clips = build_sampler(predictor.preprocess, {"num_clips": 5})(result.num_frames, result.fps)
    row_of_start = {int(start): row for row, start in enumerate(result.frame_indices[:, 0])}
    for clip, logits in zip(clips, evaluated.clip_logits, strict=True):
        row = row_of_start[int(clip[0])]
        np.testing.assert_array_equal(result.frame_indices[row], clip)
        np.testing.assert_allclose(result.logits[row], logits, atol=1e-5)


def test_ring_holds_one_window_however_long_the_video(tmp_path: Path) -> None:
    long_video = write_video(tmp_path / "long.mp4", [100] * 600)
    predictor = brightness_predictor(frame_interval=2)
    config = TimelineConfig(stride=8)
    span = int(window_sampler(predictor.preprocess, config, 25.0).span(25.0))
    result = run_timeline(predictor, long_video, config)
    assert len(result.starts) == len(window_sampler(predictor.preprocess, config, 25.0)(600, 25.0))
    assert 0 < result.peak_buffered_frames <= span == 7


def test_frame_ring_transforms_on_demand_and_releases_what_no_window_needs() -> None:
    calls: list[int] = []

    def transform(clip: torch.Tensor) -> torch.Tensor:
        calls.append(len(clip))
        return clip.permute(3, 0, 1, 2).float()

    ring = FrameRing(transform)
    for index in range(10):
        ring.add(index, np.full((2, 2, 3), index, np.uint8))
    clip = ring.clip(np.array([2, 4, 6]))
    assert calls == [10]
    assert clip.shape == (3, 3, 2, 2) and clip[0, :, 0, 0].tolist() == [2, 4, 6]
    ring.release_before(6)
    assert len(ring) == 4 and ring.peak == 10
    ring.add(10, np.full((2, 2, 3), 10, np.uint8))
    assert ring.clip(np.array([8, 10]))[1, :, 1, 1].tolist() == [8, 10]
    assert calls == [10, 1]


def test_segments_follow_what_happens_in_the_video(steps_video: Path) -> None:
    config = TimelineConfig(
        stride=2, smooth="mean", smooth_window=3, min_duration=0.3, merge_gap=0.2
    )
    result = run_timeline(brightness_predictor(), steps_video, config)
    labels = [segment.label for segment in result.segments]
    assert labels == ["dark", "bright", "dark"]
    first, middle, last = result.segments
    assert first.start == 0.0 and last.end == pytest.approx(result.duration)
    assert middle.start == pytest.approx(1.6, abs=0.2)
    assert middle.end == pytest.approx(2.8, abs=0.2)
    assert all(segment.confidence > 0.5 for segment in result.segments)
    assert result.probs.shape == (len(result.starts), 3)
    np.testing.assert_allclose(result.smoothed.sum(axis=1), 1.0)


def test_a_damaged_stretch_is_left_out_and_the_rest_is_scored(
    tmp_path: Path, steps_video: Path
) -> None:
    """Garbage in one packet of the first dark part: the windows that need a frame lost to it
    are left out (and counted) and the timeline goes on to the end; it used to stop there."""
    with av.open(str(steps_video)) as container:
        size = [p.size for p in container.demux(video=0) if p.size][12]
    damaged = replace_packet(
        steps_video, tmp_path / "damaged.mp4", 12, np.random.default_rng(0).bytes(size)
    )
    config = TimelineConfig(stride=2, smooth="mean", smooth_window=3, min_duration=0.3)
    whole = run_timeline(brightness_predictor(), steps_video, config)
    result = run_timeline(brightness_predictor(), damaged, config)
    assert 0 < result.extra["windows_skipped"] == len(whole.starts) - len(result.starts)
    assert whole.extra["windows_skipped"] == 0
    assert result.ends[-1] == pytest.approx(whole.ends[-1])
    assert [segment.label for segment in result.segments][-2:] == ["bright", "dark"]
    kept = np.isin(whole.starts, result.starts)
    np.testing.assert_allclose(result.probs, whole.probs[kept], atol=1e-6)


def test_outputs_agree_with_the_timeline(tmp_path: Path, steps_video: Path) -> None:
    config = TimelineConfig(stride=4, min_duration=0.3)
    result = run_timeline(brightness_predictor(), steps_video, config)
    files = write_timeline(result, tmp_path / "out")
    summary = json.loads(files["segments_json"].read_text())
    assert [s["label"] for s in summary["segments"]] == [s.label for s in result.segments]
    assert summary["config"]["stride"] == 4
    with files["segments_csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["start"]) for r in rows] == [round(s.start, 4) for s in result.segments]
    with files["windows_csv"].open() as handle:
        windows = list(csv.DictReader(handle))
    assert len(windows) == len(result.starts)
    assert {"dark", "mid", "bright"} <= set(windows[0])
    image = matplotlib.image.imread(files["plot"])
    assert image.ndim == 3 and image.shape[0] > 200


def test_annotated_video_has_every_frame_with_a_banner(tmp_path: Path, steps_video: Path) -> None:
    result = run_timeline(brightness_predictor(), steps_video, TimelineConfig(stride=4))
    out = annotate_timeline(result, steps_video, tmp_path / "annotated.mp4")
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == result.num_frames
    bright = frames[55]
    assert bright[:4, :20].mean() < 120
    assert bright[-10:, -20:].mean() > 200


def test_a_long_label_on_a_portrait_frame_is_drawn_whole() -> None:
    """The text scaled with the height only, so a 406x720 frame cut the label and its %."""
    frame = np.full((720, 406, 3), 200, np.uint8)
    drawn = draw_label(frame, "A1_arms_up_sideways", 0.87)
    banner = np.all(drawn[:4] == 0, axis=(0, 2))  # the black banner's top rows, per column
    assert banner[0] and not banner[-1], "the banner (and the text in it) fits the frame"


def test_windows_spread_over_the_span_training_clips_covered(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.mp4", [100] * 150)
    predictor = brightness_predictor(clip_len=8, sampling="segments", window_s=2.0)
    result = run_timeline(predictor, video, TimelineConfig())
    # 2 s at 25 fps over 8 units: a frame every 6, windows one unit apart.
    assert np.all(np.diff(result.frame_indices, axis=1) == 6)
    assert np.all(np.diff(result.frame_indices[:-1, 0]) == 6)  # the last one ends the video
    assert result.ends[0] - result.starts[0] == pytest.approx(43 / 25)
    assert result.extra["window_s"] == 2.0
    # --window (frames) keeps the old dense windows; --rate sets the stride.
    dense = run_timeline(predictor, video, TimelineConfig(window=8, stride=4))
    assert np.all(np.diff(dense.frame_indices, axis=1) == 1)
    sparse = run_timeline(predictor, video, TimelineConfig(rate=2.0))
    assert np.all(np.diff(sparse.frame_indices[:-1, 0]) == 12)
