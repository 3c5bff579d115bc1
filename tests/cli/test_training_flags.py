"""A command's flags as its options: ``training_config`` (none dropped) and ``flags_as``."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from resaction.cli.options import flags_as, training_config
from resaction.cli.train import train
from resaction.errors import ConfigError
from resaction.inference.timeline import TimelineConfig


def test_each_flag_sets_its_field_and_the_converted_ones_are_parsed(tmp_path: Path) -> None:
    flags = {
        "config": None,
        "data": "videos/",
        "out": str(tmp_path / "run"),
        "workers": 3,
        "compile_model": True,
        "clips": 4,
        "crops": None,
        "preprocess": ["crop=64", "resize=[72, 96]"],
        "model_kwarg": ["dropout=0.3"],
        "resume": False,
        "skip_bad_rows": False,
        "amp": False,
    }

    config = training_config(flags)

    assert config.data == "videos/" and config.out == str(tmp_path / "run")
    assert config.num_workers == 3 and config.compile is True
    assert config.protocol["num_clips"] == 4
    assert config.preprocess == {"crop": 64, "resize": [72, 96]}
    assert config.model_kwargs == {"dropout": 0.3}
    assert config.resume is False and config.skip_bad_rows is False
    assert config.amp is False, "an explicit --no-amp is passed, not taken as 'not given'"


def test_resuming_reads_the_run_folder_s_config_under_the_flags(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data: videos/\nepochs: 7\nlr: 0.02\n")

    config = training_config(
        {"config": None, "out": str(run), "resume": True, "epochs": None, "lr": 0.05}
    )

    assert config.epochs == 7 and config.lr == 0.05 and config.resume is True


def test_resuming_where_there_is_no_run_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"no run to resume in .*nothere \(no config.yaml\)"):
        training_config({"config": None, "out": str(tmp_path / "nothere"), "resume": True})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no run to resume in runs/default"):
        training_config({"config": None, "out": None, "resume": True})
    (tmp_path / "runs" / "default").mkdir(parents=True)
    (tmp_path / "runs" / "default" / "config.yaml").write_text("data: videos/\nepochs: 7\n")
    assert training_config({"config": None, "out": None, "resume": True}).epochs == 7


def test_fixed_values_win_and_left_flags_are_not_the_config_s() -> None:
    config = training_config(
        {"data": "videos/", "folds": 5, "val_split": 0.3}, leave=("folds",), val_split=0.0
    )

    assert config.val_split == 0.0


def test_a_flag_no_field_takes_is_an_error_not_dropped() -> None:
    with pytest.raises(TypeError, match="'folds' is no TrainConfig field"):
        training_config({"data": "videos/", "folds": 5})


def test_every_train_flag_reaches_the_config() -> None:
    flags = {name: None for name in inspect.signature(train).parameters}
    flags |= {"data": "videos/", "resume": False, "skip_bad_rows": False}

    config = training_config(flags)

    assert config.data == "videos/"


def test_an_options_dataclass_takes_the_flags_of_its_fields_names() -> None:
    flags = {"video": "v.mp4", "stride": 4, "threshold": 0.7, "window_seconds": 2.0}

    config = flags_as(TimelineConfig, flags, window_s=flags["window_seconds"])

    assert (config.stride, config.threshold, config.window_s) == (4, 0.7, 2.0)
    assert config.min_duration == TimelineConfig().min_duration, "a field no flag names: default"
