from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from resaction.engine.config import (
    FIELD_NAMES,
    TrainConfig,
    check_preprocess_keys,
    load_config,
    resolve_defaults,
    save_config,
)
from resaction.errors import ConfigError


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_flags_override_the_file_and_dicts_merge(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "c.yaml",
        {"data": "videos", "epochs": 5, "lr": 0.1, "preprocess": {"clip_len": 8, "crop": 64}},
    )
    config = load_config(path, epochs=2, preprocess={"crop": 32}, model=None)
    assert config.epochs == 2
    assert config.lr == 0.1
    assert config.preprocess == {"clip_len": 8, "crop": 32}
    assert config.model == "tsm_resnet18"


def test_types_are_checked_and_ints_count_as_floats(tmp_path: Path) -> None:
    assert load_config(None, data="d", lr=1, val_split=0).lr == 1.0
    with pytest.raises(ConfigError, match="'epochs'"):
        load_config(None, data="d", epochs="many")
    with pytest.raises(ConfigError, match="'freeze_bn'"):
        load_config(None, data="d", freeze_bn="yes")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"balance": "oversample"}, "balance"),
        ({"val_split": 1.0}, "val_split"),
        ({"batch_size": 0}, "batch_size"),
        ({"group_by": "P(\\d"}, "regex"),
        ({"device": "gpu"}, "device"),
        ({"val_split": 0.0, "early_stopping": 3}, "needs validation data"),
        ({"background": " "}, "'background'"),
        ({"skip_bad_rows": "yes"}, "'skip_bad_rows'"),
    ],
)
def test_bad_values_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, data="d", **overrides)


def test_unknown_keys_are_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"data": "d", "epoch": 3})
    with pytest.raises(ConfigError, match=r"'epoch'.*did you mean 'epochs'"):
        load_config(path)


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        load_config(broken)
    assert "\n" not in str(error.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listed)


def test_data_is_required() -> None:
    with pytest.raises(ConfigError, match="--data"):
        load_config(None)


def test_saved_config_is_a_valid_config_file(tmp_path: Path) -> None:
    config = resolve_defaults(
        load_config(None, data="d", optimizer="adamw", preprocess={"clip_len": 4})
    )
    assert config.lr == pytest.approx(1e-3) and config.weight_decay == pytest.approx(0.05)
    path = save_config(config, tmp_path / "config.yaml", classes=["a", "b"])
    assert yaml.safe_load(path.read_text())["classes"] == ["a", "b"]
    assert load_config(path) == config


def test_config_dict_loads_with_weights_only(tmp_path: Path) -> None:
    config = load_config(None, data="d", model_kwargs={"dropout": 0.3})
    torch.save({"config": config.to_dict()}, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)["config"]
    assert set(loaded) == set(FIELD_NAMES)
    assert TrainConfig(**loaded) == config


def test_segment_annotation_keys_come_from_the_file_or_flags(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "c.yaml", {"data": "a.csv", "background": "idle"})
    config = load_config(path, skip_bad_rows=True)
    assert (config.background, config.skip_bad_rows) == ("idle", True)
    assert load_config(None, data="d").skip_bad_rows is False


def test_preprocess_keys_are_checked_against_the_pipeline_and_the_model() -> None:
    check_preprocess_keys({"clip_len": 8, "flip": 0.0, "window_s": 4.5}, {"clip_len": 16})
    check_preprocess_keys({"new_key": 1}, {"new_key": 0})
    with pytest.raises(ConfigError, match="did you mean 'clip_len'"):
        check_preprocess_keys({"clip_length": 8}, {"clip_len": 16})
