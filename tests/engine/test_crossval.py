from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from resaction.cli import run_app
from resaction.data.manifests import read_manifest
from resaction.data.synthetic import generate_dataset
from resaction.engine import trainer
from resaction.engine.config import TrainConfig
from resaction.engine.crossval import run_crossval
from resaction.engine.crossval_report import (
    CrossValResult,
    FoldResult,
    crossval_table,
    write_crossval_files,
)
from resaction.engine.metrics import classification_metrics
from resaction.errors import ConfigError, DatasetError
from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint

CLASSES = ["grow", "shrink", "still"]
TINY = {"clip_len": 2, "resize": 28, "crop": 28}


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cv") / "data"
    return generate_dataset(out, 3, size=36, num_frames=8, classes=CLASSES, progress=False, seed=2)


def tiny_config(data: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        data=str(data),
        model="tsn_resnet18",
        out=str(out),
        epochs=1,
        batch_size=4,
        preprocess=TINY,
        protocol={"num_clips": 1, "num_crops": 1},
        num_workers=0,
        progress=False,
    )


def read_groups(path: Path) -> set[str]:
    with path.open() as handle:
        return {row["group"] for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_folds_test_every_video_once_keep_groups_whole_and_resume(
    manifest_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cv"
    result = run_crossval(tiny_config(manifest_path, out), 2, None, out)

    manifest = read_manifest(manifest_path)
    tested = sorted(path for fold in result.folds for path in fold.paths)
    assert tested == sorted(str(entry.path) for entry in manifest)
    for fold in result.folds:
        fold_dir = out / f"fold_{fold.fold}"
        assert not read_groups(fold_dir / "train.csv") & read_groups(fold_dir / "test.csv")
        assert fold.checkpoint.name == "last.pt"
        record = json.loads((fold_dir / "eval" / "results.json").read_text())
        assert record["protocol"]["checkpoint"].endswith("last.pt")
        assert record["metrics"]["video"]["num_samples"] == fold.test_videos

    saved = json.loads((out / "crossval.json").read_text())
    folds_top1 = [fold["top1"] for fold in saved["folds"]]
    assert saved["summary"]["top1"]["mean"] == pytest.approx(sum(folds_top1) / 2)
    assert saved["pooled"]["num_samples"] == len(manifest)
    assert saved["protocol"]["selection"].startswith("last epoch")
    assert saved["pooled"]["balanced_accuracy"] == saved["pooled"]["mean_class_accuracy"]
    assert len(saved["pooled"]["average_precision"]) == len(CLASSES)
    written = {"crossval.json", "folds.csv", "folds.png", "confusion.png", "pr_curves.png"}
    assert {path.name for path in result.files} >= written  # the CLI's "wrote" line
    assert all(path.is_file() for path in result.files)

    def no_training(config: TrainConfig) -> None:
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(trainer, "train", no_training)
    again = run_crossval(tiny_config(manifest_path, out), 2, None, out)
    assert again.summary["top1"] == result.summary["top1"]


@pytest.mark.slow
def test_a_finished_fold_is_read_back_however_its_weights_file_is_spelled(
    manifest_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = tmp_path / "start.pt"
    model = create_model("tsn_resnet18", num_classes=len(CLASSES))
    save_checkpoint(start, model, model_name="tsn_resnet18", classes=CLASSES)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cv"
    relative = dataclasses.replace(tiny_config(manifest_path, out), weights="start.pt")
    first = run_crossval(relative, 2, None, out, only_folds=[1])

    def no_training(config: TrainConfig) -> None:
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(trainer, "train", no_training)
    absolute = dataclasses.replace(relative, weights=str(start))
    again = run_crossval(absolute, 2, None, out, only_folds=[1])
    assert again.summary["top1"] == first.summary["top1"]
    console = Console(width=200, record=True)
    console.print(crossval_table(again))
    text = console.export_text()
    assert text.count("(one fold)") == 3 and "± 0.0" not in text
    other = tmp_path / "other.pt"
    save_checkpoint(other, model, model_name="tsn_resnet18", classes=CLASSES)
    changed = dataclasses.replace(relative, weights=str(other))
    with pytest.raises(ConfigError, match=r"holds folds made with weights=.*start\.pt"):
        run_crossval(changed, 2, None, out, only_folds=[1])  # another file: another run
    with pytest.raises(AssertionError, match="trained again"):
        run_crossval(changed, 2, None, out, only_folds=[1], resume=False)


@pytest.mark.slow
def test_a_fold_killed_during_training_continues_from_its_checkpoint(
    manifest_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cv"
    run_crossval(tiny_config(manifest_path, out), 2, None, out)
    fold_dir = out / "fold_2"
    (fold_dir / "fold.json").unlink()  # as if killed after the checkpoint, before the test
    last = (fold_dir / "train" / "last.pt").read_bytes()

    real_train = trainer.train
    resumed: list[bool] = []

    def recording_train(config: TrainConfig):
        resumed.append(bool(config.resume))
        return real_train(config)

    monkeypatch.setattr(trainer, "train", recording_train)
    again = run_crossval(tiny_config(manifest_path, out), 2, None, out)
    assert resumed == [True] and len(again.folds) == 2
    assert (fold_dir / "train" / "last.pt").read_bytes() == last  # finished run, nothing retrained

    (fold_dir / "fold.json").unlink()
    changed = tiny_config(manifest_path, out)
    changed.lr = 0.5
    with pytest.raises(ConfigError, match=r"holds folds made with lr=None, this run has lr=0\.5"):
        run_crossval(changed, 2, None, out, only_folds=[2])
    with pytest.raises(ConfigError, match="holds folds made with folds=2, this run has folds=3"):
        run_crossval(tiny_config(manifest_path, out), 3, None, out, only_folds=[2])
    resumed.clear()
    started_over = run_crossval(changed, 2, None, out, only_folds=[2], resume=False)
    assert resumed == [False] and started_over.folds[0].fold == 2
    saved = json.loads((fold_dir / "settings.json").read_text())
    assert saved["lr"] == 0.5


@pytest.mark.slow
def test_excluded_groups_are_left_out_and_one_fold_can_run(
    manifest_path: Path, tmp_path: Path
) -> None:
    manifest = read_manifest(manifest_path)
    excluded = manifest.entries[0].group
    out = tmp_path / "cv"
    result = run_crossval(
        tiny_config(manifest_path, out),
        2,
        None,
        out,
        exclude_groups=[excluded],
        only_folds=[2],
    )
    assert [fold.fold for fold in result.folds] == [2]
    used = read_groups(out / "fold_2" / "train.csv") | read_groups(out / "fold_2" / "test.csv")
    assert excluded not in used
    assert len(used) == len({entry.group for entry in manifest}) - 1


def test_pooled_two_class_files_have_roc_auc_and_curves(tmp_path: Path) -> None:
    """Without training: two folds' scores pooled, as crossval writes them."""
    positive = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    probs = np.stack([1 - positive, positive], axis=1)
    labels = np.array([1, 0, 1, 0, 0])
    folds = [
        FoldResult(
            fold=k + 1,
            train_videos=3,
            test_videos=len(rows),
            test_groups=[f"g{k}"],
            checkpoint=tmp_path / "last.pt",
            metrics=classification_metrics(probs[rows], labels[rows]),
            clip_top1=0.5,
            video_probs=probs[rows],
            labels=labels[rows],
            paths=[f"v{i}.mp4" for i in rows],
            skipped=[],
            train_seconds=0.0,
            eval_seconds=0.0,
        )
        for k, rows in enumerate([[0, 1, 2], [3, 4]])
    ]
    top1 = {"mean": 0.5, "std": 0.1, "folds": [0.4, 0.6]}
    write_crossval_files(
        CrossValResult(
            folds=folds,
            classes=["calm", "fight"],
            out=tmp_path,
            summary={"top1": top1},
            pooled=classification_metrics(probs, labels),
            protocol={"model": "tsn_resnet18"},
        )
    )
    saved = json.loads((tmp_path / "crossval.json").read_text())
    assert saved["pooled"]["roc_auc"] == pytest.approx(5 / 6)
    assert saved["pooled"]["roc_auc_positive"] == 1
    for name in ("confusion.png", "pr_curves.png", "roc.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_unknown_excluded_group_is_a_dataset_error(manifest_path: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="g99"):
        run_crossval(
            tiny_config(manifest_path, tmp_path), 2, None, tmp_path, exclude_groups=["g99"]
        )


def test_cli_group_regex_that_matches_nothing_is_one_line(
    manifest_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_app(
        [
            "crossval",
            "--data",
            str(manifest_path),
            "--model",
            "tsn_resnet18",
            "--out",
            str(tmp_path / "cv"),
            "--folds",
            "2",
            "--group-by",
            r"person(\d)",
        ]
    )
    captured = capsys.readouterr()
    err = captured.err
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "person" in err
    assert not (tmp_path / "cv").exists(), "an early mistake leaves no empty --out behind"
    # before any fold, one line says what an RGB model from random weights reached on real data
    assert captured.out.count("note: tsn_resnet18 from random weights") == 1


def test_cli_more_folds_than_groups_is_one_line(
    manifest_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_app(
        ["crossval", "-d", str(manifest_path), "-o", str(tmp_path / "cv"), "--folds", "50"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "lower k" in err
