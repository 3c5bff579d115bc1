"""Static int8 quantisation of a frames file (``export --frames``): its per-frame half.

The same machinery as a whole model (``quantize.py``: QDQ, per-channel int8 weights, uint8
activations, min/max ranges, the first convolution kept float), calibrated on the same clips of
the user's videos, but fed as the per-frame graph sees them in a live stream: each clip's units
in order, with a past-shift TSM's caches chained from zeros by the float model. Besides the first
convolution, the classifier (the per-frame graph's last Gemm, a few thousand multiply-adds per
frame) stays float: its outputs are what windows average, and keeping them exact raised the
top-class agreement with fp32 in the tests. The pooling half (a consensus, or LRCN's small RNN
head) stays float too; both halves go back into one file.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from resaction.deploy.export import write_metadata
from resaction.deploy.frames_export import merge_halves
from resaction.deploy.quantize import (
    ClipCalibrationReader,
    QuantizeResult,
    _quantization_record,
    calibration_set,
    check_calib_videos,
    compare_on_unseen,
    first_conv_name,
    quantize_qdq,
    quantized_result,
)
from resaction.deploy.quantize_accuracy import check_eval_classes
from resaction.errors import DeployError
from resaction.runtime.onnx_frames import OnnxFrames, split_frames_model


def quantize_frames(
    model: str | Path,
    calibrate: str | Path,
    out: str | Path,
    *,
    calib_videos: int,
    eval_data: str | Path | None = None,
    eval_videos: int | None = None,
    exclude_first_conv: bool = True,
    per_channel: bool = True,
    num_workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> QuantizeResult:
    """``quantize_onnx`` for a frames file (``resaction quantize`` picks it); see the module doc."""
    import onnx

    started = time.perf_counter()
    model, out = Path(model), Path(out)
    check_calib_videos(calib_videos)
    runner = OnnxFrames(model)
    if runner.metadata.get("quantization"):
        raise DeployError(f"{model} is already quantised; quantise the float model")
    check_eval_classes(eval_data, runner.metadata["classes"])
    entries, calibration = calibration_set(
        calibrate, calib_videos, seed, runner.metadata["preprocess"], num_workers, progress
    )
    feeds = unit_feeds(runner, calibration.clips)
    frames, pool = split_frames_model(onnx.load(str(model)), len(runner.shift_shapes))
    with tempfile.TemporaryDirectory(prefix="resaction-frames-quant-") as work:
        source, quantized = Path(work) / "frames.onnx", Path(work) / "frames.int8.onnx"
        onnx.save(frames, str(source))
        excluded = [name for name in [first_conv_name(source)] if name and exclude_first_conv]
        excluded += [node.name for node in frames.graph.node if node.op_type == "Gemm"]
        quantize_qdq(
            source,
            quantized,
            ClipCalibrationReader.from_feeds(feeds),
            nodes_to_exclude=excluded,
            per_channel=per_channel,
        )
        int8 = onnx.load(str(quantized))
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(merge_halves(int8, pool), str(out))
    record = _quantization_record(per_channel, excluded, calibrate, calibration)
    record["calibration"]["units"] = len(feeds)
    write_metadata(out, {**runner.metadata, "quantization": record})
    result = quantized_result(model, out, calibration, excluded, started)
    result.comparison = compare_on_unseen(
        model, out, eval_data, entries, eval_videos, num_workers, seed, progress
    )
    return result


def unit_feeds(runner: OnnxFrames, clips: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The per-frame graph's inputs for every unit of ``clips`` (1, C, T, H, W), as a live
    stream gives them: a clip's units in order, shift caches carried by the float model."""
    feeds = []
    length = runner.unit_len
    for clip in clips:
        states = None
        for start in range(0, clip.shape[2], length):
            units = clip[:, :, start : start + length]
            feeds.append(runner.feed(units, states))
            if runner.stateful:
                _, states = runner.frames(units, states)
    return feeds
