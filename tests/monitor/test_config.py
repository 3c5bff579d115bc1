"""The cameras file: defaults, per-camera settings, and one-line errors naming line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from resaction.detection.decisions import calibrated_settings
from resaction.errors import ConfigError
from resaction.monitor.config import load_watch_config

GOOD = """\
defaults:
  classes: [fight]
  threshold: 0.6
  min_duration: 1.0
  pre: 2
cameras:
  - name: gate
    url: rtsp://127.0.0.1:8554/gate
    roi: [0, 120, 640, 360]
    thresholds: {fight: 0.7}
  - name: hall
    url: udp://127.0.0.1:5000
    post: 5
    thresholds:
      fight: {threshold: 0.8, exit_threshold: 0.5, cooldown: 2}
sinks: [jsonl, stdout, {webhook: "http://127.0.0.1:9000/hook"}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


def test_a_good_file_resolves_defaults_under_each_camera(tmp_path: Path) -> None:
    config = load_watch_config(write(tmp_path, GOOD))
    gate, hall = config.cameras
    assert (gate.name, gate.roi, gate.classes, gate.pre, gate.post) == (
        "gate",
        (0, 120, 640, 360),
        ["fight"],
        2.0,
        3.0,
    )
    assert gate.thresholds_for("fight").enter == 0.7
    assert gate.thresholds_for("fight").min_duration == 1.0
    limits = hall.thresholds_for("fight")
    assert (limits.enter, limits.exit_level, limits.cooldown, hall.post) == (0.8, 0.5, 2, 5.0)
    assert config.sinks == ["jsonl", "stdout", "webhook:http://127.0.0.1:9000/hook"]
    config.check_classes(["fight", "noFight"])


def test_calibrated_thresholds_apply_where_the_file_gives_none(tmp_path: Path) -> None:
    text = "cameras:\n  - name: a\n    url: '0'\n"
    camera = load_watch_config(write(tmp_path, text)).cameras[0]
    extra = {"thresholds": {"fight": 0.42}, "calibration": {"decision": {"min_duration": 2.0}}}
    calibrated = calibrated_settings(extra)
    assert camera.thresholds_for("fight", calibrated).enter == 0.42
    assert camera.thresholds_for("fight", calibrated).min_duration == 2.0
    assert camera.thresholds_for("fight").enter == 0.5
    hall = load_watch_config(write(tmp_path, text + "    threshold: 0.9\n")).cameras[0]
    assert hall.thresholds_for("fight", calibrated).enter == 0.9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("pre: 2", "pre: soon"), r"line 5, defaults\.pre: expected a number"),
        (GOOD.replace("post: 5", "psot: 5"), r"line 13, cameras\.1\.psot: unknown key"),
        (GOOD.replace("roi: [0, 120, 640, 360]", "roi: [0, 120]"), r"line 9, cameras\.0\.roi"),
        (GOOD.replace("roi: [0, 120, 640, 360]", "roi: [0, 0, 4, 4]"), r"at least 32 pixels"),
        (GOOD.replace("fight: 0.7", "fight: 1.7"), r"line 10, cameras\.0\.thresholds\.fight"),
        (GOOD.replace("    url: udp://127.0.0.1:5000\n", ""), r"line 11, cameras\.1: .*no url"),
        (GOOD.replace("name: hall", "name: gate"), r"cameras\.1\.name: .*used twice"),
        (GOOD.replace("stdout", "email"), r"sinks\.1: a sink is"),
        ("cameras: [\n", r"is not valid YAML"),
        ("cameras:\n  - name: a\n   url: b\n", r"YAML: line 3, column 4: .*starts on line 2\)"),
    ],
)
def test_a_mistake_is_one_line_naming_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        load_watch_config(write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_an_alert_class_the_model_lacks_lists_the_model_classes(tmp_path: Path) -> None:
    config = load_watch_config(
        write(tmp_path, GOOD.replace("classes: [fight]", "classes: [fihgt]"))
    )
    with pytest.raises(
        ConfigError, match=r"line 7: camera 'gate' watches class 'fihgt'.*fight, noFight"
    ):
        config.check_classes(["fight", "noFight"])


def test_a_webhook_takes_headers_a_secret_and_a_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/monitor.md promised configured headers and an HMAC signature; the file refused them."""
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    hook = (
        '  - webhook: "https://alerts.example/hook"\n'
        "    headers: {Authorization: Bearer abc}\n"
        "    secret_env: HOOK_SECRET\n"
        "    timeout: 2.5\n"
    )
    text = GOOD.split("sinks:")[0] + "sinks:\n  - jsonl\n" + hook
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    config = load_watch_config(path)
    assert config.sinks == ["jsonl", "webhook:https://alerts.example/hook"]
    assert config.sink_options["webhook:https://alerts.example/hook"] == {
        "headers": {"Authorization": "Bearer abc"},
        "secret": "s3cret",
        "timeout": 2.5,
    }
    for wrong, expected in (
        ("timeout: 2.5", "timeout: expected seconds above 0, got 0"),
        ("secret_env: HOOK_SECRET", "secret_env: $NOT_SET_ANYWHERE is not set"),
        ("timeout: 2.5", "sinks.1.retries: unknown key; a webhook takes headers"),
        ('webhook: "https://alerts.example/hook"', "sinks.1.webhook: expected an http(s)://"),
    ):
        replacement = {
            "timeout: 2.5": "timeout: 0" if "above" in expected else "retries: 3",
            "secret_env: HOOK_SECRET": "secret_env: NOT_SET_ANYWHERE",
            'webhook: "https://alerts.example/hook"': 'webhook: "http://"',
        }[wrong]
        path.write_text(text.replace(wrong, replacement))
        with pytest.raises(ConfigError, match=re.escape(expected)):
            load_watch_config(path)
