"""Every command that writes into a folder refuses, before any work, one that is a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from resaction.cli import run_app
from resaction.paths import shared_videos_dir
from tests.monitor.tiny_model import save_tiny_tsn


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_tsn(tmp_path_factory.mktemp("outputs") / "tiny.pt")


def test_an_output_folder_that_is_a_file_is_one_line_before_any_work(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos = shared_videos_dir() / "kth_samples"
    video = next((videos / "boxing").iterdir())
    taken = tmp_path / "taken.txt"
    taken.write_text("a file the user keeps")
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(f"cameras:\n  - name: hall\n    url: {video}\n")
    commands = {
        "timeline --out": ["timeline", video, "-c", checkpoint, "--out", taken],
        "timeline --export-clips": ["timeline", video, "-c", checkpoint, "--export-clips", taken],
        "calibrate": ["calibrate", checkpoint, "-d", videos, "--precision", "0.5", "--out", taken],
        "evaluate-events": ["evaluate-events", "-d", videos, "-c", checkpoint, "--out", taken],
        "evaluate": ["evaluate", "-c", checkpoint, "-d", videos, "--out", taken],
        "bench": ["bench", checkpoint, "--quick", "--out", taken],
        "batch": ["batch", videos, "-m", checkpoint, "--out", taken],
        "watch": ["watch", cameras, "-c", checkpoint, "--out", taken],
        "serve": ["serve", "--model", checkpoint, "--insecure", "--state-dir", taken],
        "explain": ["explain", video, "-c", checkpoint, "--out", taken],
    }
    for name, argv in commands.items():
        assert run_app([str(arg) for arg in argv]) != 0, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (name, err)
        flag = (
            "--export-clips" if "clips" in name else "--state-dir" if name == "serve" else "--out"
        )
        assert f"{flag} {taken} is a file: give a folder" in err, (name, err)
    folder = tmp_path / "folder"
    folder.mkdir()
    for argv, message in (
        (["probe", video, "--json", folder], f"--json {folder} is a folder: give a file name"),
        (["probe", video, "--json", taken / "x.json"], "is a file"),
    ):
        assert run_app([str(arg) for arg in argv]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (argv, err)
    folder.rmdir()
    assert taken.read_text() == "a file the user keeps"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cameras.yaml", "taken.txt"]
