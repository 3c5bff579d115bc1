from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from resaction.cli import run_app


def cli(args: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_app([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_export_prints_the_checked_difference(
    r3d_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.onnx"
    code, stdout, stderr = cli(["export", r3d_checkpoint, "--out", out], capsys)
    assert code == 0, stderr
    assert out.is_file()
    assert "max abs difference from PyTorch" in stdout and "opset 17" in stdout


def test_quantize_refuses_a_file_that_is_not_onnx(
    gt_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("hello")
    code, _, stderr = cli(["quantize", fake, "--calibrate", gt_videos], capsys)
    assert code == 1
    assert "is not a usable ONNX model" in one_line(stderr)


def test_quantize_refuses_onnx_without_our_metadata(
    gt_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval(),
            (torch.zeros(1, 3, 1, 2, 2),),
            str(path),
            dynamo=False,
        )
    with pytest.warns(UserWarning, match="no resaction metadata"):
        code, _, stderr = cli(["quantize", path, "--calibrate", gt_videos], capsys)
    assert code == 1
    assert "has no resaction metadata" in one_line(stderr)


def test_quantize_with_too_little_data(
    r3d_onnx: Path, videos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["quantize", r3d_onnx, "--calibrate", videos_dir / "kinetics400_samples"]
    code, _, stderr = cli([*args, "--no-progress"], capsys)
    assert code == 1
    assert "too little calibration data" in one_line(stderr)


@pytest.mark.parametrize("ratio", ["1.5", "0", "-0.2"])
def test_prune_ratio_out_of_range(
    r3d_checkpoint: Path, tmp_path: Path, ratio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pruned.pt"
    code, _, stderr = cli(["prune", r3d_checkpoint, "--ratio", ratio, "--out", out], capsys)
    assert code == 1
    assert "out of range" in one_line(stderr)
    assert not out.exists()


def test_bench_unknown_backend(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, stderr = cli(["bench", "r3d_18", "--backends", "gpu", "--out", tmp_path], capsys)
    assert code == 1
    assert "unknown backend 'gpu'" in one_line(stderr)


def test_a_quick_bench_of_a_difference_model_reads_whole_segments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--quick's 4-frame clip is 6 frames for a model that reads runs of 3 (it used to fail
    with "not a whole number of segments"); a table in a log keeps its cells whole."""
    args = ["bench", "tsn_diff_resnet18", "--quick", "--backends", "eager", "--out", tmp_path]
    code, stdout, stderr = cli([*args, "--no-progress"], capsys)
    assert code == 0, stderr
    (row,) = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert row["backend"] == "eager" and row["ms_p50"] > 0
    assert "tsn_diff_resnet18 │ eager" in stdout and "ms/clip p50" in stdout


@pytest.mark.slow
def test_quantize_and_bench_commands(
    r3d_onnx: Path, gt_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    int8 = tmp_path / "int8.onnx"
    args = ["quantize", r3d_onnx, "--calibrate", gt_videos, "--out", int8]
    code, stdout, stderr = cli(
        [
            *args,
            "--calib-videos",
            8,
            "--eval",
            gt_videos,
            "--eval-videos",
            3,
            "--workers",
            0,
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "fp32 vs int8 on 3 held-out videos" in stdout and "as fast" in stdout

    out = tmp_path / "bench"
    args = ["bench", int8, "--backends", "onnx,int8", "--iterations", 2, "--out", out]
    code, stdout, stderr = cli([*args, "--no-progress"], capsys)
    assert code == 0, stderr
    rows = json.loads((out / "bench.json").read_text())["rows"]
    assert [(row["backend"], bool(row["ms_p50"])) for row in rows] == [
        ("onnx", False),  # an int8 file has no float model to run
        ("int8", True),
    ]
    assert rows[1]["model"] == "r3d_10 (int8.onnx)" and (out / "bench.png").is_file()


def test_evaluate_takes_an_onnx_file_and_agrees_with_the_checkpoint(
    r3d_checkpoint: Path, r3d_onnx: Path, gt_videos: Path, tmp_path: Path, capsys
) -> None:
    results = {}
    for name, model in (("pt", r3d_checkpoint), ("onnx", r3d_onnx)):
        out = tmp_path / name
        args = ["evaluate", "--checkpoint", model, "--data", gt_videos, "--out", out]
        code, _, stderr = cli([*args, "--no-progress"], capsys)
        assert code == 0, stderr
        results[name] = json.loads((out / "results.json").read_text())
    assert results["onnx"]["metrics"]["video"]["num_samples"] == 27
    assert results["onnx"]["metrics"]["video"] == results["pt"]["metrics"]["video"]
    pairs = zip(results["onnx"]["predictions"], results["pt"]["predictions"], strict=True)
    for onnx, torch_row in pairs:
        assert onnx["path"] == torch_row["path"] and onnx["predicted"] == torch_row["predicted"]
        assert onnx["confidence"] == pytest.approx(torch_row["confidence"], abs=1e-4)
    assert len({row["confidence"] for row in results["pt"]["predictions"]}) > 20  # not constant
    assert results["onnx"]["protocol"]["checkpoint"].endswith("r3d_10.onnx")


def test_model_writers_refuse_their_input_a_folder_and_the_wrong_kind_of_name(
    r3d_checkpoint: Path, gt_videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = r3d_checkpoint.read_bytes()
    code, _, stderr = cli(["prune", r3d_checkpoint, "--out", r3d_checkpoint], capsys)
    assert code == 1 and "is an input model" in one_line(stderr)
    assert r3d_checkpoint.read_bytes() == before
    model = tmp_path / "m.onnx"
    model.write_bytes(b"kept")
    code, _, stderr = cli(["quantize", model, "--calibrate", gt_videos, "--out", model], capsys)
    assert code == 1 and "is an input model" in one_line(stderr)
    assert model.read_bytes() == b"kept"
    folder = tmp_path / "folder"
    folder.mkdir()
    refused = {
        ("export", r3d_checkpoint, "--out", folder): "is a folder: give a file name ending .onnx",
        ("export", r3d_checkpoint, "--out", tmp_path / "m.pt"): "writes an ONNX model",
        ("prune", r3d_checkpoint, "--out", tmp_path / "p.onnx"): "writes a checkpoint",
        ("fuse", r3d_checkpoint, r3d_checkpoint, "--val-data", gt_videos, "--out", model): (
            "writes a checkpoint, give a name ending .pt"
        ),
    }
    for argv, message in refused.items():
        code, _, stderr = cli(list(argv), capsys)
        assert code == 1 and message in one_line(stderr), (argv, stderr)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder", "m.onnx"]
    assert not any(folder.iterdir())


def test_held_out_or_fine_tuning_videos_of_other_classes_are_refused_before_writing(
    r3d_checkpoint: Path,
    r3d_onnx: Path,
    gt_videos: Path,
    videos_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The mistake used to surface after minutes of calibration or pruning, with the output
    already written."""
    other = videos_dir / "kth_samples"
    int8, pruned = tmp_path / "m.int8.onnx", tmp_path / "m.pruned.pt"
    quantize = ["quantize", r3d_onnx, "--calibrate", gt_videos, "--eval", other, "--out", int8]
    code, _, stderr = cli(quantize, capsys)
    assert code == 1 and "which the model does not know" in one_line(stderr)
    prune = ["prune", r3d_checkpoint, "--finetune-epochs", 1, "--data", other, "--out", pruned]
    code, _, stderr = cli(prune, capsys)
    assert code == 1 and "needs the classes it was trained on" in one_line(stderr)
    assert not list(tmp_path.iterdir())
