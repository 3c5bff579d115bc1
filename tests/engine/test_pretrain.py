from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from resaction.cli import run_app
from resaction.cli.options import key_values
from resaction.data.entries import VideoEntry
from resaction.data.sampling import SegmentSampler
from resaction.data.spec import ClipSpec
from resaction.engine.config import TrainConfig
from resaction.engine.pretext import PretextDataset, WarpedSampler, pretext_classes
from resaction.engine.pretrain import pretrain, pretrain_config
from resaction.engine.train_setup import build_model
from resaction.errors import ConfigError, DatasetError
from resaction.models import create_model
from resaction.models.checkpoint import read_checkpoint
from resaction.runtime.loading import resolve_spec


class FixedClip:
    """A sampler that always picks the same frames."""

    num_clips = 1

    def __init__(self, frames: list[int]) -> None:
        self.frames = np.asarray(frames, dtype=np.int64)

    def __call__(self, num_frames: int, fps: float | None, rng) -> list[np.ndarray]:
        return [self.frames.copy()]


def warped(frames: list[int], unit: int, speed: int, backward: bool, num_frames: int) -> list:
    sampler = WarpedSampler(FixedClip(frames), unit, speed, backward)
    (clip,) = sampler(num_frames, 25.0, np.random.default_rng(0))
    return clip.tolist()


def test_a_dense_clip_is_played_faster_or_backwards_inside_the_video() -> None:
    assert warped([10, 11, 12, 13], 4, 1, False, 100) == [10, 11, 12, 13]
    assert warped([10, 11, 12, 13], 4, 4, False, 100) == [10, 14, 18, 22]
    assert warped([10, 11, 12, 13], 4, 2, True, 100) == [16, 14, 12, 10]
    assert warped([10, 11, 12, 13], 4, 4, False, 20) == [7, 11, 15, 19]  # moved back to fit
    assert warped([0, 1, 2, 3], 4, 4, False, 8) == [0, 4, 0, 4]  # too short: looped


def test_segments_are_spread_within_each_segment_only() -> None:
    segments = [10, 11, 12, 50, 51, 52, 90, 91, 92]
    assert warped(segments, 3, 2, False, 300) == [10, 12, 14, 50, 52, 54, 90, 92, 94]
    assert warped(segments, 3, 2, False, 93) == [10, 12, 14, 50, 52, 54, 88, 90, 92]
    assert warped(segments, 3, 2, True, 300) == [94, 92, 90, 54, 52, 50, 14, 12, 10]
    real = SegmentSampler(9, train=True, segment_len=3)
    (clip,) = WarpedSampler(real, 3, 2, False)(300, 25.0, np.random.default_rng(1))
    assert np.all(np.diff(clip.reshape(3, 3), axis=1) == 2)


def test_pretext_items_carry_the_label_their_clip_was_read_with(footage: Path) -> None:
    spec = ClipSpec.from_dict({"clip_len": 4, "resize": 32, "crop": 32, "flip": 0})
    videos = sorted(footage.rglob("*.mp4"))
    entries = [VideoEntry(videos[0], 0)]
    dataset = PretextDataset(spec, entries, seed=5)
    labels = {dataset[(0, key)][1] for key in range(60)}
    assert labels == set(range(len(pretext_classes())))
    clip, label, _ = dataset[(0, 11)]
    again, label_again, _ = dataset[(0, 11)]
    assert label == label_again and torch.equal(clip, again)


def test_pretraining_refuses_what_it_cannot_learn_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one frame per segment"):
        pretrain_config(TrainConfig(data="x", model="tsn_resnet18"))
    with pytest.raises(ConfigError, match="arrow of time"):
        pretrain_config(TrainConfig(data="x", model="r3d_18", preprocess={"direction_blind": True}))
    config = TrainConfig(data=str(tmp_path / "none"), model="r3d_18", out=str(tmp_path / "o"))
    with pytest.raises(DatasetError, match="not found"):
        pretrain(config)


@pytest.mark.slow
def test_pretraining_lowers_its_loss_and_train_starts_from_it(
    footage: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        data=str(footage),
        model="tsn_diff_resnet18",
        out=str(tmp_path / "pretrain"),
        epochs=16,
        batch_size=8,
        optimizer="adamw",
        lr=0.003,
        num_workers=0,
        preprocess={"clip_len": 12, "resize": 32, "crop": 28},
        progress=False,
    )
    result = pretrain(config)
    losses = [row["train_loss"] for row in result.history]
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.3, losses
    assert np.mean([row["train_top1"] for row in result.history[-4:]]) > 1 / 6  # chance
    assert result.checkpoint == result.last_checkpoint and result.checkpoint.is_file()
    saved = read_checkpoint(result.checkpoint)
    assert saved["classes"] == pretext_classes()
    model = create_model("tsn_diff_resnet18", num_classes=2, weights=str(result.checkpoint))
    trunk = {k: v for k, v in saved["state_dict"].items() if "fc" not in k}
    mine = model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in trunk.items())
    assert mine[next(k for k in mine if k.endswith("fc.weight"))].shape[0] == 2
    said: list[str] = []
    six = TrainConfig(data="x", model="tsn_diff_resnet18", weights=str(result.checkpoint))
    fresh, _ = build_model(six, 6, {"segment_len": 3}, None, said.append)
    head = next(k for k in saved["state_dict"] if k.endswith("fc.weight"))
    assert not torch.equal(fresh.state_dict()[head], saved["state_dict"][head])  # six classes too
    assert torch.equal(fresh.state_dict()["conv1.weight"], saved["state_dict"]["conv1.weight"])
    assert any("pretext task's is not kept" in line for line in said)


def test_the_command_pretrains_resumes_and_says_how_to_fine_tune(footage: Path, tmp_path, capsys):
    out = tmp_path / "cli"

    def command(epochs: int) -> list[str]:
        return ["pretrain", "--data", str(footage), "--model", "tsn_diff_resnet18",
                "--out", str(out), "--epochs", str(epochs), "--batch-size", "4",
                "--max-steps-per-epoch", "1", "--workers", "0", "-p", "clip_len=12",
                "-p", "resize=32", "-p", "crop=28", "--no-progress"]  # fmt: skip

    assert run_app(command(1)) == 0
    printed = capsys.readouterr().out
    assert "pretext loss" in printed and "chance 17%" in printed
    assert f"--weights {out / 'last.pt'} -p clip_len=12 -p resize=32 -p crop=28" in printed
    assert run_app([*command(2), "--resume"]) == 0
    assert read_checkpoint(out / "last.pt")["epoch"] == 2
    # Resumed, every resolved key is printed (null, lists): the line must paste into a shell.
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("fine-tune it:"))
    words = shlex.split(line.removeprefix("fine-tune it:"))
    given = key_values([words[i + 1] for i, word in enumerate(words) if word == "-p"], "-p")
    assert given["clip_len"] == 12 and len(given) > 3
    resolve_spec("tsn_diff_resnet18", given)  # train would accept every value
    assert run_app(["pretrain", "--data", str(footage), "--model", "tsn_resnet18"]) == 1
    assert "cannot see speed or direction" in capsys.readouterr().err
