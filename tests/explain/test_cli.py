"""``resaction explain`` from the command line: the three files, ONNX by occlusion, one-line
refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resaction.cli import run_app

from ..inference.conftest import CLASSES, make_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("explain_ckpt") / "r3d_10.pt")


@pytest.fixture(scope="module")
def onnx_file(checkpoint: Path) -> Path:
    from resaction.deploy.export import export_checkpoint

    return export_checkpoint(checkpoint, checkpoint.with_suffix(".onnx")).path


def test_explain_writes_video_plot_and_json(
    checkpoint: Path, small_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "why"
    argv = ["explain", str(small_video), "-c", str(checkpoint), "--class", "mid"]
    flags = ["--method", "gradcam++", "--patch", "16", "--out", str(out), "--no-progress"]
    with pytest.warns(UserWarning, match="--patch applies to occlusion only: gradcam"):
        assert run_app([*argv, *flags]) == 0
    assert "gradcam++ for mid" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"explain.mp4", "temporal.png", "explain.json"}
    record = json.loads((out / "explain.json").read_text())
    assert record["method"] == "gradcam++" and record["target"]["label"] == "mid"
    assert record["model"] == "r3d_10" and len(record["importance"]) == 4
    assert record["files"] == {"video": "explain.mp4", "temporal": "temporal.png"}
    assert (out / "temporal.png").read_bytes().startswith(b"\x89PNG")
    from resaction.io import VideoReader

    with VideoReader(out / "explain.mp4") as reader:  # 4 frames, each held 0.3 s at 10 fps
        assert reader.num_frames == 12 and reader.frame_size == (48, 64)


def test_onnx_is_explained_by_occlusion_and_refused_for_gradcam(
    onnx_file: Path, small_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "onnx"
    argv = ["explain", str(small_video), "-c", str(onnx_file), "--out", str(out), "--no-progress"]
    assert run_app([*argv, "--method", "occlusion", "--patch", "16"]) == 0
    record = json.loads((out / "explain.json").read_text())
    assert record["method"] == "occlusion" and record["patch"] == {"pixels": 16, "frames": 2}
    assert record["saliency_grid"] == {"time": 2, "height": 2, "width": 2}
    capsys.readouterr()
    assert run_app(argv) == 1  # gradcam is the default method
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "use --method occlusion" in error


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--class", "jump"], f"pass one of its classes to --class: {', '.join(CLASSES)}"),
        (["--start", "0.5", "--end", "7"], "is outside small.mp4 (0 to 1.200 s)"),
        (["--start", "1", "--end", "0.5"], "give a --start smaller than --end"),
    ],
)
def test_bad_input_is_one_line(
    checkpoint: Path,
    small_video: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    expected: str,
) -> None:
    argv = ["explain", str(small_video), "-c", str(checkpoint), "--out", str(tmp_path / "x")]
    assert run_app([*argv, *flags]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and expected in error
    assert not (tmp_path / "x").exists()
