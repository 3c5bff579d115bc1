from __future__ import annotations

import csv
from pathlib import Path

import pytest

from resaction.cli import run_app

SMALL = ["--size", "32", "--frames", "4", "--no-progress"]


def test_synth_writes_the_dataset_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth"
    argv = ["synth", "--out", str(out), "--videos-per-class", "2", "--clutter", "0.5"]
    code = run_app([*argv, "--classes", "move_left,move_right,still", *SMALL])

    assert code == 0
    with (out / "manifest.csv").open(newline="") as handle:
        labels = [row["label"] for row in csv.DictReader(handle)]
    assert sorted(labels) == ["move_left"] * 2 + ["move_right"] * 2 + ["still"] * 2
    printed = capsys.readouterr().out
    for text in ("move_left", "move_right", "still", "total", "6", str(out / "manifest.csv")):
        assert text in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--clutter", "1.5"], "--clutter must be between 0 and 1"),
        (["--videos-per-class", "0"], "--videos-per-class must be at least 1"),
        (["--classes", "move_left,fly"], "unknown synthetic class 'fly'"),
    ],
)
def test_bad_flags_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = run_app(["synth", "--out", str(tmp_path / "out"), *extra, *SMALL])
    error = capsys.readouterr().err.strip()
    assert code == 1
    assert message in error and "\n" not in error


def test_unwritable_out_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    code = run_app(["synth", "--out", str(blocker / "data"), *SMALL])
    error = capsys.readouterr().err.strip()
    assert code == 1
    assert error.startswith("error: cannot write to output folder")
    assert str(blocker / "data") in error and "\n" not in error


def test_existing_dataset_needs_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["synth", "--out", str(tmp_path), "-n", "1", "--classes", "bounce", *SMALL]
    assert run_app(argv) == 0
    assert run_app(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert run_app([*argv, "--overwrite"]) == 0
