from __future__ import annotations

import dataclasses
import re
import shutil
import statistics
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from resaction.data.spans import video_facts
from resaction.data.synthetic import generate_dataset
from resaction.engine import TrainConfig, load_config, train
from resaction.engine.logs import METRICS_CSV, TENSORBOARD_DIR
from resaction.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    ResactionError,
)
from resaction.models import create_model
from resaction.models.checkpoint import load_checkpoint, save_checkpoint

CLASSES = ["grow", "move_left", "shrink"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic classes, three 32x32 videos of 8 frames each (a class-folder tree)."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, 3, size=32, num_frames=8, classes=CLASSES, progress=False)
    return root


def tiny(data: Path, out: Path, **overrides) -> TrainConfig:
    values = {
        "data": str(data),
        "model": "tsn_resnet18",
        "out": str(out),
        "epochs": 1,
        "batch_size": 3,
        "val_split": 0.0,
        "preprocess": {"clip_len": 4, "resize": 32, "crop": 32},
        "protocol": {"num_clips": 1},
        "num_workers": 0,
        "progress": False,
        **overrides,
    }
    return load_config(None, **values)


def initial_weights(path: Path, model: str = "tsn_resnet18") -> Path:
    """A checkpoint of a fresh model, to start a run from known weights (--weights PATH)."""
    torch.manual_seed(0)
    network = create_model(model, num_classes=len(CLASSES))
    return save_checkpoint(path, network, model_name=model, classes=CLASSES)


def parameters(path: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(path, weights_only=True)["state_dict"])


def changed(before: dict, after: dict, prefix: str = "") -> set[str]:
    return {
        key
        for key, value in before.items()
        if key.startswith(prefix)
        and value.is_floating_point()
        and not torch.equal(value, after[key])
    }


@pytest.mark.slow
def test_a_run_writes_checkpoints_logs_and_its_resolved_config(
    dataset: Path, tmp_path: Path
) -> None:
    config = tiny(dataset, tmp_path / "run", epochs=2, val_split=0.34, max_steps_per_epoch=2)
    result = train(config)
    run = result.run_dir
    assert len(result.history) == 2
    assert result.classes == CLASSES
    assert (run / "classes.txt").read_text().split() == CLASSES
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["classes"] == CLASSES
    assert saved["preprocess"]["crop"] == 32 and saved["preprocess"]["sampling"] == "segments"
    assert load_config(run / "config.yaml").model == "tsn_resnet18"
    rows = (run / METRICS_CSV).read_text().splitlines()
    assert len(rows) == 3 and "val_top1" in rows[0] and "train_data_wait" in rows[0]
    assert (run / "curves.png").stat().st_size > 0
    assert any((run / TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    for row in result.history:
        assert 0.0 <= row["train_data_wait"] <= 1.0
        assert row["train_clips_per_s"] > 0
        assert 0.0 <= row["val_top1"] <= 1.0
    last = torch.load(result.last_checkpoint, weights_only=True)
    assert last["epoch"] == 2 and last["step"] == 4
    assert last["best_metric"] == result.best_metric
    best = torch.load(result.best_checkpoint, weights_only=True)
    assert best["epoch"] == last["best_epoch"]
    bundle = load_checkpoint(result.checkpoint)
    assert bundle.classes == CLASSES and bundle.preprocess["clip_len"] == 4
    with torch.no_grad():
        assert bundle.model(torch.zeros(1, 3, 4, 32, 32)).shape == (1, 3)


@pytest.mark.slow
def test_frozen_backbone_trains_the_head_then_everything(dataset: Path, tmp_path: Path) -> None:
    start = initial_weights(tmp_path / "init.pt")
    out = tmp_path / "run"
    common = {"weights": str(start), "freeze_backbone_epochs": 1, "max_steps_per_epoch": 1}
    train(tiny(dataset, out, **common))
    after_frozen = parameters(out / "last.pt")
    initial = parameters(start)
    moved = {key for key in changed(initial, after_frozen) if "running" not in key}
    assert moved == {"fc.weight", "fc.bias"}

    train(tiny(dataset, out, epochs=2, resume=True, **common))
    after_unfrozen = parameters(out / "last.pt")
    assert changed(after_frozen, after_unfrozen, "layer1.") and changed(
        after_frozen, after_unfrozen, "conv1."
    )


def test_frozen_batchnorm_keeps_statistics_and_learning_rates_follow_the_multiplier(
    dataset: Path, tmp_path: Path
) -> None:
    start = initial_weights(tmp_path / "init.pt")
    result = train(
        tiny(
            dataset,
            tmp_path / "run",
            weights=str(start),
            freeze_bn=True,
            balance="sampler",
            backbone_lr_mult=0.1,
            lr=0.02,
            warmup_epochs=0,
            epochs=2,
            max_steps_per_epoch=1,
        )
    )
    initial, final = parameters(start), parameters(result.last_checkpoint)
    assert not changed(initial, final, "bn1.") and not changed(initial, final, "layer1.0.bn1.")
    assert changed(initial, final, "layer1.0.conv1.")
    groups = torch.load(result.last_checkpoint, weights_only=True)["optimizer"]["param_groups"]
    rates = {group["name"]: group["initial_lr"] for group in groups}
    assert rates["backbone"] == pytest.approx(0.002)
    assert rates["head"] == pytest.approx(0.02)


@pytest.mark.slow
def test_accumulation_adamw_and_clipping_count_optimiser_steps(
    dataset: Path, tmp_path: Path
) -> None:
    result = train(
        tiny(
            dataset,
            tmp_path / "run",
            batch_size=2,
            accumulate=2,
            optimizer="adamw",
            grad_clip=1.0,
            balance="loss",
        )
    )
    state = torch.load(result.last_checkpoint, weights_only=True)
    assert state["step"] == 3  # 9 videos, batches of 2: 5 batches, 3 optimiser steps
    assert state["config"]["lr"] == pytest.approx(1e-3)
    assert result.history[0]["lr"] > 0


@pytest.mark.slow
def test_early_stopping_ends_a_run_that_stops_improving(dataset: Path, tmp_path: Path) -> None:
    result = train(
        tiny(
            dataset,
            tmp_path / "run",
            epochs=6,
            lr=1e-12,
            freeze_bn=True,
            val_data=str(dataset),
            early_stopping=1,
            max_steps_per_epoch=1,
        )
    )
    assert len(result.history) == 2
    assert result.best_metric == result.history[0]["val_top1"]


def test_compile_failure_falls_back_to_eager_with_a_warning(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_compile(module, *args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        result = train(tiny(dataset, tmp_path / "run", compile=True, max_steps_per_epoch=1))
    assert result.history[0]["train_loss"] > 0


def test_a_corrupt_video_is_skipped_and_listed(dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    (data / "groups.csv").unlink()
    broken = data / "grow" / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    result = train(tiny(data, tmp_path / "run"))
    assert [row["path"] for row in result.skipped] == [str(broken)]
    listed = (result.run_dir / "skipped.txt").read_text()
    assert str(broken) in listed


def test_a_segment_model_records_the_seconds_its_clips_covered(
    dataset: Path, tmp_path: Path
) -> None:
    result = train(tiny(dataset, tmp_path / "run", max_steps_per_epoch=1))
    durations = [video_facts(video).duration for video in sorted(dataset.rglob("*.mp4"))]
    recorded = load_checkpoint(result.last_checkpoint).preprocess["window_s"]
    assert recorded == pytest.approx(statistics.median(durations), abs=1e-3)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["preprocess"]["window_s"] == recorded
    with pytest.raises(DatasetError, match="needs segment annotations"):
        train(tiny(dataset, tmp_path / "background", background="idle"))


def test_output_folder_problems_are_found_before_any_work(dataset: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        train(tiny(tmp_path / "no-such-data", blocker / "run"))
    used = tmp_path / "used"
    used.mkdir()
    (used / "last.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny(dataset, used))


def test_resume_refuses_a_corrupt_or_foreign_checkpoint(dataset: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "last.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        train(tiny(dataset, corrupt, resume=True))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    initial_weights(foreign / "last.pt", model="r3d_10")
    with pytest.raises(CheckpointError, match="r3d_10"):
        train(tiny(dataset, foreign, resume=True))


def test_resume_refuses_a_checkpoint_of_other_classes(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(tiny(dataset, out, max_steps_per_epoch=1))
    fewer = tmp_path / "fewer"
    shutil.copytree(dataset, fewer)
    shutil.rmtree(fewer / "shrink")
    (fewer / "groups.csv").unlink()
    with pytest.raises(CheckpointError, match="classes"):
        train(tiny(fewer, out, resume=True, epochs=2))


def test_bad_datasets_give_one_line_errors(dataset: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "walk").mkdir(parents=True)
    (empty / "run").mkdir()
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label\nnowhere.mp4,walk\n")
    kept = tmp_path / "kept"
    kept.mkdir()
    for data in (empty, missing):
        with pytest.raises(DatasetError) as error:
            train(tiny(data, tmp_path / f"out-{data.name}" / "run"))
        assert "\n" not in str(error.value)
        assert not (tmp_path / f"out-{data.name}").exists(), "no empty --out left behind"
        with pytest.raises(DatasetError):
            train(tiny(data, kept / "run"))
        assert kept.is_dir() and not (kept / "run").exists(), "a folder the user made stays"


def test_a_run_that_reads_no_clip_or_has_one_class_stops_without_a_checkpoint(
    dataset: Path, tmp_path: Path
) -> None:
    """Without a validation set nothing else would notice: an epoch of undecodable videos, or a
    single class, must not end in a saved "trained" model."""
    fake = tmp_path / "fake"
    for label in CLASSES[:2]:
        (fake / label).mkdir(parents=True)
        (fake / label / "clip.mp4").write_text("not a video")
    with pytest.raises(DatasetError, match=r"epoch 1 read no training clip: none of the 2 "):
        train(tiny(fake, tmp_path / "fake-run"))
    assert not (tmp_path / "fake-run" / "best.pt").exists()
    one = tmp_path / "one"
    shutil.copytree(dataset / CLASSES[0], one / CLASSES[0])
    with pytest.raises(DatasetError, match=rf"has one class \('{CLASSES[0]}'\)"):
        train(tiny(one, tmp_path / "one-run"))
    with pytest.raises(DatasetError, match=r"^validation: none of the 2 videos"):
        train(tiny(dataset, tmp_path / "val-run", val_data=str(fake), max_steps_per_epoch=1))


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"crop": "foo"}, "crop='foo'"),
        ({"resize": -5}, "resize=-5"),
        ({"clip_len": 5, "segment_len": 2}, "clip_len=5"),
        ({"mean": [0.5, 0.5]}, "mean=[0.5, 0.5]"),
        ({"sampling": "random"}, "sampling='random'"),
    ],
)
def test_a_bad_preprocessing_value_is_refused_before_training(
    dataset: Path, tmp_path: Path, override: dict, named: str
) -> None:
    config = tiny(dataset, tmp_path / "run")
    config = dataclasses.replace(config, preprocess={**config.preprocess, **override})
    with pytest.raises(ConfigError, match=re.escape(f"preprocess {named}")):
        train(config)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_weights_of_another_model_are_refused(dataset: Path, tmp_path: Path) -> None:
    other = initial_weights(tmp_path / "r3d.pt", model="r3d_10")
    with pytest.raises(ResactionError):
        train(tiny(dataset, tmp_path / "run", weights=str(other)))


def test_cli_trains_and_reports_bad_input_in_one_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from resaction.cli.app import run_app

    args = ["train", "--data", str(dataset), "--out", str(tmp_path / "run"), "--model"]
    tiny_flags = ["-p", "clip_len=4", "-p", "resize=32", "-p", "crop=32", "--no-progress"]
    flags = [*tiny_flags, "--val-split", "0", "--workers", "0", "--max-steps-per-epoch", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_app([*args, "tsn_resnet18", "--epochs", "1", *flags]) == 0
    assert "checkpoint:" in capsys.readouterr().out
    assert run_app([*args, "tsn_resnet18", "--epochs", "1", "--optimizer", "lion"]) == 1
    error = capsys.readouterr().err.strip()
    assert "optimizer" in error and len(error.splitlines()) == 1
    assert run_app(["train", "--out", str(tmp_path / "run"), "--resume", *flags]) == 0
    segments = ["--background", "idle", "--skip-bad-rows", "--out", str(tmp_path / "bg")]
    assert run_app(["train", "--data", str(dataset), *segments, *flags]) == 1
    assert "background class 'idle' needs segment annotations" in capsys.readouterr().err


def test_a_difference_model_trains_on_runs_of_frames_and_refuses_a_mismatch(
    dataset: Path, tmp_path: Path
) -> None:
    config = tiny(
        dataset,
        tmp_path / "diff",
        model="tsn_diff_resnet18",
        model_kwargs={"segment_len": 2},
        preprocess={"clip_len": 4, "resize": 32, "crop": 32},
    )
    result = train(config)
    bundle = load_checkpoint(result.checkpoint)
    assert bundle.preprocess["segment_len"] == bundle.model.segment_len == 2
    assert bundle.preprocess["sampling"] == "segments"

    mismatch = tiny(
        dataset,
        tmp_path / "mismatch",
        model="tsn_diff_resnet18",
        preprocess={"clip_len": 4, "segment_len": 2, "resize": 32, "crop": 32},
    )
    with pytest.raises(ConfigError, match="segments of 3 frames but the preprocessing samples 2"):
        train(mismatch)


def test_cli_output_that_is_not_a_terminal_is_one_line_per_epoch(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Written to a log or CI (captured here, so not a terminal): no bar redraws, no carriage
    returns, one line per epoch with the epoch's numbers."""
    from resaction.cli.app import run_app

    argv = ["train", "--data", str(dataset), "--out", str(tmp_path / "run"), "--epochs", "2"]
    tiny_flags = ["-p", "clip_len=4", "-p", "resize=32", "-p", "crop=32", "--workers", "0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_app([*argv, *tiny_flags, "--val-split", "0", "--model", "tsn_resnet18"]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    epochs = [line for line in captured.err.splitlines() if line.startswith("epoch ")]
    # (an epoch longer than 30 s would add a progress line; these take well under a second)
    assert [line.split("  ")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss " in line and "clips/s" in line for line in epochs)
    notes = [line for line in captured.out.splitlines() if line.startswith("note: tsn_resnet18")]
    assert len(notes) == 1 and "--model tsn_diff_resnet18" in notes[0]
