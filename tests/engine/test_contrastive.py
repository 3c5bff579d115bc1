"""Contrastive pretraining: the colour jitter, the pairs, the loss, and a run that learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from resaction.cli import run_app
from resaction.data.colour_jitter import ClipColourJitter
from resaction.data.entries import VideoEntry
from resaction.data.spec import ClipSpec
from resaction.engine.config import TrainConfig
from resaction.engine.contrastive import contrastive_loss, embedding_classes, pair_dataset
from resaction.engine.pretrain import UnlabelledVideos, pretrain, pretrain_config
from resaction.errors import CheckpointError, ConfigError
from resaction.models import create_model
from resaction.models.checkpoint import read_checkpoint


def test_colour_jitter_changes_a_clip_s_colours_alike_on_every_frame() -> None:
    rng = np.random.default_rng(3)
    frame = torch.from_numpy((rng.random((3, 16, 16)) * 200 + 20).astype(np.uint8))
    clip = frame.expand(1, 6, 3, 16, 16).clone()  # (views, T, C, H, W), one frame six times
    jitter = ClipColourJitter(1.0, p=1.0, grey=0.0)
    out = jitter(clip, np.random.default_rng(0))
    assert out.dtype == torch.uint8 and out.shape == clip.shape
    assert not torch.equal(out, clip)
    assert all(torch.equal(out[0, t], out[0, 0]) for t in range(6))  # temporally consistent
    grey = ClipColourJitter(1.0, p=0.0, grey=1.0)(clip, np.random.default_rng(0))
    assert torch.equal(grey[:, :, 0], grey[:, :, 1]) and torch.equal(grey[:, :, 1], grey[:, :, 2])
    untouched = ClipColourJitter(1.0, p=0.0, grey=0.0)(clip, np.random.default_rng(0))
    assert untouched is clip


def test_pairs_are_two_different_clips_of_one_video(scenes: Path) -> None:
    spec = ClipSpec.from_dict({"clip_len": 4, "resize": 32, "crop": 28})
    video = sorted(scenes.rglob("*.mp4"))[0]
    dataset = pair_dataset(spec, [VideoEntry(video, 0)], seed=1)
    clips, label, index = dataset[(0, 0)]
    assert clips.shape == (2, 3, 4, 28, 28) and label == 0 and index == 0
    assert not torch.equal(clips[0], clips[1])
    again, _, _ = dataset[(0, 0)]
    assert torch.equal(clips, again)


def test_the_loss_is_low_when_partners_match_and_counts_them() -> None:
    pairs = torch.eye(4).repeat_interleave(2, dim=0).view(4, 2, 4)  # video i: two copies of e_i

    def same(clips: torch.Tensor) -> torch.Tensor:
        return clips

    matched, found = contrastive_loss(same, pairs, torch.zeros(4), None)
    assert found == 4 and float(matched) < 0.01
    swapped = pairs.clone()
    swapped[0, 1], swapped[1, 1] = pairs[1, 1], pairs[0, 1]  # two videos' second clips swapped
    mixed, found = contrastive_loss(same, swapped, torch.zeros(4), None)
    assert found == 2 and float(mixed) > 1.0
    alone, found = contrastive_loss(same, pairs[:1], torch.zeros(1), None)
    assert found == 0 and float(alone) == 0.0, "one video is a free hit, not a lesson"


def test_a_batch_of_one_video_is_refused_for_contrastive_pretraining() -> None:
    config = TrainConfig(data="unused", model="tsn_resnet18", batch_size=1)
    with pytest.raises(ConfigError, match="at least 2 videos a batch"):
        pretrain_config(config, "contrastive")


@pytest.mark.slow
def test_contrastive_pretraining_learns_an_rgb_model_that_train_starts_from(
    scenes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The speed task refuses TSN on RGB (it sees one frame a segment); the contrastive one
    learns it: which two of the batch's 16 clips show one scene. Colour jitter is off here: at
    the default strength 16 steps are too few to learn the scenes' patterns without colour."""
    config = TrainConfig(
        data=str(scenes),
        model="tsn_resnet18",
        out=str(tmp_path / "pretrain"),
        epochs=8,
        batch_size=8,
        optimizer="adamw",
        lr=0.003,
        num_workers=0,
        preprocess={"clip_len": 4, "resize": 32, "crop": 28, "colour_jitter": 0},
        progress=False,
    )
    result = pretrain(config, "contrastive")
    losses = [row["train_loss"] for row in result.history]
    assert np.mean(losses[-2:]) < np.log(15) - 0.5, losses  # ln 15: guessing among 15 clips
    assert np.mean([row["train_top1"] for row in result.history[-2:]]) > 0.3  # chance 1/15
    saved = read_checkpoint(result.last_checkpoint)
    assert saved["classes"] == embedding_classes()
    model = create_model("tsn_resnet18", num_classes=3, weights=str(result.last_checkpoint))
    assert torch.equal(model.state_dict()["conv1.weight"], saved["state_dict"]["conv1.weight"])
    with pytest.raises(CheckpointError, match="not a speed pretraining run"):
        UnlabelledVideos("speed").data(config, saved["classes"], result.last_checkpoint)
    argv = ["pretrain", "--data", str(scenes), "--model", "tsn_resnet18", "--method",
            "contrastive", "--out", str(tmp_path / "cli"), "--epochs", "1", "--batch-size", "4",
            "--max-steps-per-epoch", "1", "--workers", "0", "-p", "clip_len=4", "-p",
            "resize=32", "-p", "crop=28", "--no-progress"]  # fmt: skip
    assert run_app(argv) == 0
    printed = capsys.readouterr().out
    assert "(contrastive)" in printed and "chance 14%" in printed
