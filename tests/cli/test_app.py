"""How the `resaction` command reports mistakes: one line, no traceback, non-zero exit."""

from __future__ import annotations

import pytest

from resaction.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    captured = capsys.readouterr()
    return int(done.value.code), captured.out + captured.err


def test_a_flag_out_of_range_is_a_usage_error_not_an_internal_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, output = run(capsys, "timeline", "video.mp4", "-c", "model.pt", "--stride", "0")
    assert code == 2
    assert "--stride" in output
    assert "internal error" not in output and "Traceback" not in output


def test_a_user_error_is_one_line_naming_the_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, "probe", "/nonexistent/videos")
    assert code == 1
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "/nonexistent/videos" in lines[0]


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(capsys, "no-such-command")
    assert code == 2
    assert "Traceback" not in output


def test_square_brackets_in_a_message_are_printed_as_they_are(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    missing = tmp_path / "clip[1].mp4"
    code, output = run(capsys, "probe", str(missing))
    assert code == 1
    assert "clip[1].mp4" in output
