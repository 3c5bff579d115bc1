"""``--config FILE`` on any command: the file's options, overridden by flags on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from resaction.cli import app, run_app
from resaction.cli._config_file import expand_config
from resaction.errors import ConfigError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _expand(argv: list[str]) -> list[str]:
    return expand_config(typer.main.get_command(app), argv)


def test_file_options_become_flags_before_the_user_s(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "t.yaml",
        "stride: 4\nmin-duration: 0.5\n--threshold: 0.7\nprogress: false\nannotate: a.mp4\n",
    )
    argv = _expand(["timeline", "v.mp4", "--config", str(config), "--stride", "2"])

    assert argv[:1] == ["timeline"] and argv[-3:] == ["v.mp4", "--stride", "2"]
    flags = argv[1:-3]
    assert "--stride" not in flags, "a flag on the command line replaces the file's value"
    assert flags == [
        "--min-duration", "0.5", "--threshold", "0.7", "--no-progress", "--annotate", "a.mp4"
    ]  # fmt: skip


def test_commands_with_their_own_config_and_argv_without_one_are_untouched(tmp_path: Path) -> None:
    train = ["train", "--config", "run.yaml", "--epochs", "3"]
    assert _expand(train) == train
    plain = ["-v", "predict", "a.mp4", "--topk", "2"]
    assert _expand(plain) == plain


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strides: 4\n", "`resaction timeline` has no option 'strides'"),
        ("video: a.mp4\n", "'video' is a positional argument"),
        ("- 4\n", "must be a mapping"),
        ("stride: [4\n", "is not valid YAML"),
        ("stride: [4\nsmooth: ema\n", "line 2, column 7: expected ',' or ']', but got"),
        ("progress: maybe\n", "'progress' takes true or false"),
    ],
)
def test_bad_config_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    config = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError, match=message):
        _expand(["timeline", "v.mp4", "--config", str(config)])
    assert run_app(["timeline", "v.mp4", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["probe", str(tmp_path), "--config", str(tmp_path / "none.yaml")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_command_runs_with_its_config(
    videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "probe.json"
    config = _write(
        tmp_path / "probe.yaml", f"clips: 1\nclip_len: 2\njson: {out}\nprogress: false\n"
    )
    folder = videos_dir / "kth_samples"
    assert run_app(["probe", str(folder), "--config", str(config), "--clip-len", "3"]) == 0
    capsys.readouterr()
    saved = json.loads(out.read_text())
    assert saved["settings"]["clips"] == 1, "from the file"
    assert saved["settings"]["clip_len"] == 3, "the flag overrides the file"
    assert [len(video["clip_ms"]) for video in saved["videos"]] == [1, 1]


@pytest.mark.parametrize("name", ["predict", "timeline", "watch"])
def test_help_of_a_command_names_config(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app([name, "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "--config FILE.yaml reads this command's options" in shown


def test_help_of_a_command_with_its_own_config_lists_it_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_app(["train", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "reads this command's options" not in shown and "--config" in shown


def test_ctrl_c_in_a_command_says_interrupted_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Typer turns Ctrl-C into a returned 130 outside standalone mode: a script's `&&` and
    `set -e` must see it, not a 0 as if the run had finished."""

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("resaction.io.probe.find_videos", interrupted)
    assert run_app(["probe", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err
