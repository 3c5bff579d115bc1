from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from resaction.deploy.quantize import (
    MIN_CALIBRATION_VIDEOS,
    ClipCalibrationReader,
    calibration_entries,
    first_conv_name,
    load_calibration_clips,
    quantize_onnx,
)
from resaction.errors import ConfigError, DeployError
from resaction.runtime.onnx_backend import OnnxBackend, read_metadata


@pytest.fixture(scope="module")
def quantized(r3d_onnx: Path, gt_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "r3d_10.int8.onnx"
    result = quantize_onnx(r3d_onnx, gt_videos, out, calib_videos=8, num_workers=0, progress=False)
    assert result.calibration_videos == 8 and result.calibration_clips == 16
    return result.path


def test_int8_model_is_qdq_with_float_first_conv(r3d_onnx: Path, quantized: Path) -> None:
    graph = onnx.load(str(quantized)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") > 5 and ops.count("DequantizeLinear") > 10
    producers = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    on_pixels = [node for node in convs if node.input[0] == graph.input[0].name]
    assert len(on_pixels) == 1 and on_pixels[0].name == first_conv_name(r3d_onnx)
    data, weight = on_pixels[0].input[:2]
    assert producers.get(data) != "DequantizeLinear", "the first convolution sees float pixels"
    assert producers.get(weight) != "DequantizeLinear", "and keeps float weights"
    others = [node for node in convs if node is not on_pixels[0]]
    assert all(producers.get(node.input[1]) == "DequantizeLinear" for node in others)
    assert quantized.stat().st_size < 0.35 * r3d_onnx.stat().st_size
    metadata = read_metadata(quantized)
    assert metadata["classes"] == read_metadata(r3d_onnx)["classes"]
    assert metadata["quantization"]["calibration"]["videos"] == 8
    assert OnnxBackend(quantized).name == "onnx-int8"


def test_int8_follows_fp32_on_real_clips(r3d_onnx: Path, quantized: Path, gt_videos: Path) -> None:
    fp32, int8 = OnnxBackend(r3d_onnx), OnnxBackend(quantized)
    entries = calibration_entries(gt_videos, 24, seed=1)[-4:]
    clips = load_calibration_clips(entries, fp32.preprocess, num_workers=0, progress=False).clips
    batch = np.concatenate(clips)
    expected, got = fp32(batch), int8(batch)
    correlation = np.corrcoef(expected.ravel(), got.ravel())[0, 1]
    assert correlation > 0.98
    assert np.abs(got - expected).max() < 0.1 * np.abs(expected).max()


def test_too_little_calibration_data_is_one_line(
    r3d_onnx: Path, videos_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(DeployError, match=r"too little calibration data: .* has 2 videos") as error:
        quantize_onnx(r3d_onnx, videos_dir / "kth_samples", tmp_path / "q.onnx", progress=False)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "q.onnx").exists()
    with pytest.raises(ConfigError, match=f"at least {MIN_CALIBRATION_VIDEOS}"):
        quantize_onnx(r3d_onnx, videos_dir / "kth_samples", tmp_path / "q.onnx", calib_videos=2)


def test_quantize_needs_our_float_model(quantized: Path, gt_videos: Path, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="already quantised"):
        quantize_onnx(quantized, gt_videos, tmp_path / "twice.onnx", progress=False)


def test_calibration_takes_every_class_in_turn(gt_videos: Path) -> None:
    picked = calibration_entries(gt_videos, 9, seed=0)
    labels = [entry.label for entry in picked]
    assert sorted(labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len({entry.path for entry in picked}) == 9


def test_reader_serves_ranges_of_clips() -> None:
    clips = [np.full((1, 3, 2, 4, 4), i, np.float32) for i in range(6)]
    reader = ClipCalibrationReader(clips, "clips")
    assert len(reader) == 6 and reader.stride() == 3
    reader.set_range(3, 6)
    served = []
    while (item := reader.get_next()) is not None:
        served.append(int(item["clips"][0, 0, 0, 0, 0]))
    assert served == [3, 4, 5]


def test_accuracy_check_on_held_out_videos(
    r3d_onnx: Path, quantized: Path, gt_videos: Path
) -> None:
    from resaction.deploy.quantize_accuracy import compare_accuracy

    used = {str(entry.path.resolve()) for entry in calibration_entries(gt_videos, 8)}
    comparison = compare_accuracy(
        r3d_onnx, quantized, gt_videos, exclude=used, max_videos=6, num_workers=0, progress=False
    )
    assert comparison.num_videos == 6
    assert 0.0 <= comparison.fp32.top1 <= 1.0 and 0.0 <= comparison.int8.top1 <= 1.0
    assert comparison.fp32.ms_per_clip > 0 and comparison.int8.ms_per_clip > 0
    assert comparison.agreement >= 0.5
    assert comparison.int8.size_mb < comparison.fp32.size_mb


def test_a_drop_over_one_point_is_called_out() -> None:
    from resaction.deploy.quantize_accuracy import AccuracyComparison, ModelScore

    def comparison(fp32_top1: float, int8_top1: float, agreement: float) -> AccuracyComparison:
        scores = [
            ModelScore(name, Path(name), top1, 1.0, 1.0)
            for name, top1 in (("fp32", fp32_top1), ("int8", int8_top1))
        ]
        return AccuracyComparison(scores[0], scores[1], 60, agreement)

    assert comparison(0.70, 0.70, 1.0).warning() is None
    assert comparison(0.70, 0.695, 0.95).warning() is None
    warning = comparison(0.75, 0.70, 50 / 60).warning()
    assert warning is not None
    assert "5.0 points" in warning and "10 of 60 videos" in warning
    assert "\n" not in warning
