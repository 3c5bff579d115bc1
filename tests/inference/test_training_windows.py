"""Windows that match training, on real footage: a difference model trained on whole PS7 clips
(two persons) labels the third person's clips joined into one video about as well as it labels
the clips one by one, because the timeline spreads its frames over the span its training clips
covered (``window_s``, recorded by ``train``) instead of reading ``clip_len`` consecutive ones."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from resaction.detection.event_metrics import Span, frame_accuracy
from resaction.engine.config import TrainConfig
from resaction.engine.trainer import train
from resaction.inference import Predictor
from resaction.inference.event_eval import frame_labels
from resaction.inference.timeline import TimelineConfig, run_timeline
from resaction.io import VideoReader
from resaction.io.writer import VideoWriter

pytestmark = pytest.mark.usefixtures("one_torch_thread")
HELD_OUT = "P2"


def small_copies(source: Path, out: Path) -> list[Path]:
    """The 27 clips at a 64-pixel short side (decoding 640x480 would dominate the test)."""
    copies = []
    for clip in sorted(source.rglob("*.avi")):
        copy = out / clip.parent.name / f"{clip.stem}.mp4"
        copy.parent.mkdir(parents=True, exist_ok=True)
        with VideoReader(clip, short_side=64) as reader, VideoWriter(copy, reader.fps) as writer:
            for _, _, frame in reader.iter_frames():
                writer.write(frame)
        copies.append(copy)
    return copies


def joined(clips: list[Path], path: Path, fps: float) -> list[Span]:
    """The clips one after another in one video; each clip's span labelled with its class."""
    truth, count = [], 0
    with VideoWriter(path, fps) as writer:
        for clip in clips:
            start = count / fps
            with VideoReader(clip) as reader:
                for _, _, frame in reader.iter_frames():
                    writer.write(frame)
                    count += 1
            truth.append(Span(clip.parent.name, start, count / fps))
    return truth


def agreement(predictor: Predictor, video: Path, truth: list[Span], config: TimelineConfig):
    """Frame-level accuracy of the timeline, every frame labelled by its nearest window."""
    timeline = run_timeline(predictor, video, config)
    return frame_accuracy(truth, frame_labels(timeline))["accuracy"], timeline


@pytest.mark.slow
def test_a_joined_video_is_labelled_about_as_well_as_its_clips(
    videos_dir: Path, tmp_path: Path
) -> None:
    clips = small_copies(videos_dir / "gt_cs4495_ps7", tmp_path / "small")
    trained_on = [clip for clip in clips if HELD_OUT not in clip.stem]
    manifest = tmp_path / "train.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows([clip, clip.parent.name] for clip in trained_on * 3)
    config = TrainConfig(
        data=str(manifest),
        val_split=0.0,
        model="tsn_diff_resnet18",
        weights="none",
        model_kwargs={"num_segments": 8},
        preprocess={"clip_len": 24, "sampling": "segments", "resize": 64, "crop": 56},
        out=str(tmp_path / "run"),
        epochs=12,
        batch_size=8,
        lr=0.01,
        seed=0,
        progress=False,
    )
    predictor = Predictor.from_checkpoint(train(config).checkpoint)
    durations = []
    for clip in trained_on:
        with VideoReader(clip) as reader:
            durations.append(reader.duration)
    assert predictor.preprocess["window_s"] == pytest.approx(np.median(durations), abs=0.05)

    held_out = [clip for clip in clips if HELD_OUT in clip.stem]
    clip_accuracy = np.mean([predictor.predict(c).label == c.parent.name for c in held_out])
    assert clip_accuracy >= 0.75  # the model learned the actions
    configs = {
        "spread": TimelineConfig(),
        "spread_raw": TimelineConfig(smooth="none"),
        "dense_raw": TimelineConfig(window=24, smooth="none"),
    }
    scores: dict[str, list[float]] = {name: [] for name in configs}
    for seed in range(3):  # three orders of joining: one order's few boundaries are noisy
        order = np.random.default_rng(seed).permutation(len(held_out))
        video = tmp_path / f"joined_{seed}.mp4"
        truth = joined([held_out[i] for i in order], video, fps=29.97)
        for name, config in configs.items():
            score, timeline = agreement(predictor, video, truth, config)
            scores[name].append(score)
        assert timeline.extra["window_s"] is None  # --window (frames) turns the spread off
    spread = float(np.mean(scores["spread"]))
    assert spread >= clip_accuracy - 0.15
    # Window by window, before smoothing, the training span reads the actions far better.
    assert np.mean(scores["spread_raw"]) > np.mean(scores["dense_raw"]) + 0.05
