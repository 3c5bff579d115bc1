"""Static int8 quantisation of an exported model with ONNX Runtime, calibrated on real clips.

Why this path: ONNX Runtime's dynamic quantisation makes 3D convolutions several times slower
on CPU (it quantises activations at run time and has no fast int8 3D kernel for that form), and
``torch.ao`` quantisation is deprecated. Static quantisation in QDQ form with per-channel int8
weights runs the convolutions as int8 kernels after ONNX Runtime fuses the Q/DQ pairs.

Activations are unsigned (QUInt8) and weights signed (QInt8): on x86 with VNNI this is the
u8 x s8 form the int8 GEMM kernels take directly, and measured about twice as fast here as
signed activations. Only Conv, MatMul and Gemm are quantised, and by default the first
convolution stays float: it sees the normalised pixels, and keeping it exact costs little time.

Calibration feeds clips of the user's own videos through the model's own preprocessing (the
dataset pipeline with the sampler and transform the ONNX metadata describes); the activation
ranges are the min/max over them. ``compare_accuracy`` then scores the float and the int8 model
on held-out videos, with the same evaluator as ``resaction evaluate``.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resaction.data.loader import make_loader
from resaction.data.manifests import read_manifest
from resaction.data.spec import ClipSpec, ViewProtocol
from resaction.deploy.export import require, write_metadata
from resaction.deploy.quantize_accuracy import (
    AccuracyComparison,
    check_eval_classes,
    compare_accuracy,
)
from resaction.errors import ConfigError, DeployError
from resaction.progress import progress_bar
from resaction.runtime.onnx_backend import OnnxBackend

log = logging.getLogger(__name__)

MIN_CALIBRATION_VIDEOS = 8
DEFAULT_CALIBRATION_VIDEOS = 32
CLIPS_PER_VIDEO = 2
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


@dataclass
class QuantizeResult:
    """What ``quantize_onnx`` wrote and measured."""

    path: Path
    source: Path
    calibration_videos: int
    calibration_clips: int
    excluded_nodes: list[str]
    seconds: float
    skipped: list[str] = field(default_factory=list)
    comparison: AccuracyComparison | None = None


@dataclass
class CalibrationClips:
    """Clips decoded for calibration, one (1, C, T, H, W) float32 array each."""

    clips: list[np.ndarray]
    videos: int
    skipped: list[str]


def load_calibration_clips(
    entries: Sequence[Any],
    preprocess: dict[str, Any],
    *,
    clips_per_video: int = CLIPS_PER_VIDEO,
    num_workers: int | None = None,
    progress: bool = True,
) -> CalibrationClips:
    """Decode ``clips_per_video`` uniform clips of each video through the model's evaluation
    sampler and transform, so calibration sees exactly what inference will feed the model."""

    views = ViewProtocol(num_clips=clips_per_video)
    dataset = ClipSpec.from_dict(preprocess).dataset(list(entries), train=False, views=views)
    loader = make_loader(dataset, 1, train=False, num_workers=num_workers)
    clips: list[np.ndarray] = []
    videos = 0
    skipped: list[str] = []
    for batch in progress_bar(loader, desc="calibration clips", unit="video", disable=not progress):
        skipped += [f"{item.path}: {item.reason}" for item in batch.skipped]
        if batch.clips is None:
            continue
        videos += len(batch)
        clips += [view.numpy()[None] for view in batch.clips.flatten(0, 1)]
    return CalibrationClips(clips, videos, skipped)


class ClipCalibrationReader:
    """ONNX Runtime's ``CalibrationDataReader`` over decoded clips, one clip per ``get_next``
    (or over ready input feeds, ``from_feeds``: a frames model's units with their shift caches).

    It supports ``set_range`` so that ONNX Runtime collects activation ranges a few clips at a
    time ("CalibStridedMinMax") and merges them: collecting every clip's intermediate tensors at
    once would need gigabytes for a 3D ResNet.
    """

    def __init__(self, clips: Sequence[np.ndarray], input_name: str) -> None:
        self.feeds = [{input_name: clip} for clip in clips]
        self._next, self._end = 0, len(self.feeds)

    @classmethod
    def from_feeds(cls, feeds: Sequence[dict[str, np.ndarray]]) -> ClipCalibrationReader:
        """A reader that serves whole input feeds (every graph input by name)."""
        reader = cls([], "")
        reader.feeds = list(feeds)
        reader._end = len(reader.feeds)
        return reader

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self.feeds))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return self.feeds[self._next - 1]

    def stride(self, most: int = 4) -> int:
        """The largest chunk size up to ``most`` that divides the clip count (ORT requires it)."""
        return max(d for d in range(1, most + 1) if len(self.feeds) % d == 0)


def quantize_onnx(
    model: str | Path,
    calibrate: str | Path,
    out: str | Path,
    *,
    calib_videos: int = DEFAULT_CALIBRATION_VIDEOS,
    eval_data: str | Path | None = None,
    eval_videos: int | None = None,
    exclude_first_conv: bool = True,
    per_channel: bool = True,
    num_workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> QuantizeResult:
    """Quantise an exported ONNX model to int8, calibrated on ``calib_videos`` of ``calibrate``.

    With ``eval_data`` the float and int8 models are then scored on its videos that were not
    used for calibration (at most ``eval_videos`` of them).
    """

    require("onnxruntime", "int8 quantisation")
    started = time.perf_counter()
    model, out = Path(model), Path(out)
    check_calib_videos(calib_videos)
    source = _float_model(model)
    check_eval_classes(eval_data, source.classes)
    entries, calibration = calibration_set(
        calibrate, calib_videos, seed, source.preprocess, num_workers, progress
    )
    excluded = [name for name in [first_conv_name(model)] if name and exclude_first_conv]
    quantize_qdq(
        model,
        out,
        ClipCalibrationReader(calibration.clips, source.input_name),
        nodes_to_exclude=excluded,
        per_channel=per_channel,
    )
    quantization = _quantization_record(per_channel, excluded, calibrate, calibration)
    write_metadata(out, {**source.metadata, "quantization": quantization})
    result = quantized_result(model, out, calibration, excluded, started)
    result.comparison = compare_on_unseen(
        model, out, eval_data, entries, eval_videos, num_workers, seed, progress
    )
    return result


def check_calib_videos(calib_videos: int) -> None:
    """Refuse, before anything is decoded, a calibration set too small to trust."""
    if calib_videos < MIN_CALIBRATION_VIDEOS:
        raise ConfigError(
            f"--calib-videos {calib_videos} is too few: calibration needs at least "
            f"{MIN_CALIBRATION_VIDEOS} videos (the default {DEFAULT_CALIBRATION_VIDEOS} is better)"
        )


def calibration_set(
    calibrate: str | Path,
    calib_videos: int,
    seed: int,
    preprocess: dict[str, Any],
    num_workers: int | None,
    progress: bool,
) -> tuple[list[Any], CalibrationClips]:
    """The calibration videos picked from ``calibrate`` and their decoded clips, refused when
    too few of them decode."""
    entries = calibration_entries(calibrate, calib_videos, seed)
    calibration = load_calibration_clips(
        entries, preprocess, num_workers=num_workers, progress=progress
    )
    if calibration.videos < MIN_CALIBRATION_VIDEOS:
        raise _too_little(calibrate, calibration)
    return entries, calibration


def quantized_result(
    model: Path, out: Path, calibration: CalibrationClips, excluded: list[str], started: float
) -> QuantizeResult:
    return QuantizeResult(
        path=out,
        source=model,
        calibration_videos=calibration.videos,
        calibration_clips=len(calibration.clips),
        excluded_nodes=excluded,
        seconds=time.perf_counter() - started,
        skipped=calibration.skipped,
    )


def compare_on_unseen(
    model: Path,
    out: Path,
    eval_data: str | Path | None,
    calibrated_on: Sequence[Any],
    eval_videos: int | None,
    num_workers: int | None,
    seed: int,
    progress: bool,
) -> AccuracyComparison | None:
    """fp32 against int8 accuracy on ``eval_data``, leaving out the calibration videos (None
    without ``eval_data``)."""
    if eval_data is None:
        return None
    used = {str(Path(entry.path).resolve()) for entry in calibrated_on}
    return compare_accuracy(
        model,
        out,
        eval_data,
        exclude=used,
        max_videos=eval_videos,
        num_workers=num_workers,
        seed=seed,
        progress=progress,
    )


def _float_model(model: Path) -> OnnxBackend:
    """The float ONNX model to quantise, refused with one line if it cannot be."""
    source = OnnxBackend(model)
    if not source.has_metadata:
        raise DeployError(
            f"{model} has no resaction metadata, so its preprocessing is unknown; "
            "quantise a model written by `resaction export`"
        )
    if source.metadata.get("quantization"):
        raise DeployError(f"{model} is already quantised; quantise the float model")
    return source


def _quantization_record(
    per_channel: bool, excluded: list[str], calibrate: str | Path, calibration: CalibrationClips
) -> dict[str, Any]:
    """How the model was quantised, stored in its metadata."""
    return {
        "format": "QDQ",
        "activations": "uint8",
        "weights": "int8 per-channel" if per_channel else "int8",
        "ops": list(QUANTIZED_OPS),
        "excluded": excluded,
        "calibration": {
            "data": str(calibrate),
            "videos": calibration.videos,
            "clips": len(calibration.clips),
            "method": "minmax",
        },
    }


def quantize_qdq(
    model: Path,
    out: Path,
    reader: ClipCalibrationReader,
    *,
    nodes_to_exclude: Sequence[str] = (),
    per_channel: bool = True,
) -> Path:
    """ONNX Runtime's pre-processing, then static QDQ quantisation (see the module doc)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="resaction-quant-") as work:
        prepared = _prepare(model, Path(work) / "prepared.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_static(
                    prepared,
                    out,
                    reader,
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZED_OPS),
                    per_channel=per_channel,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=list(nodes_to_exclude),
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={
                        "ActivationSymmetric": False,
                        "WeightSymmetric": True,
                        "CalibStridedMinMax": reader.stride(),
                    },
                )
        except Exception as error:  # ORT raises plain exceptions for graphs it cannot handle
            text = str(error).strip().splitlines()
            reason = f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
            raise DeployError(f"cannot quantise {model}: {reason}") from None
    return out


def _too_little(calibrate: str | Path, calibration: CalibrationClips) -> DeployError:
    failed = len(calibration.skipped)
    reason = f" ({failed} could not be decoded)" if failed else ""
    return DeployError(
        f"too little calibration data: {calibration.videos} usable videos in {calibrate}{reason};"
        f" int8 calibration needs at least {MIN_CALIBRATION_VIDEOS} videos of the kind the model "
        "will see"
    )


def calibration_entries(source: str | Path, count: int, seed: int = 0) -> list[Any]:
    """Up to ``count`` videos of ``source``, taken in turn from each class (a seeded order)."""

    manifest = read_manifest(source)
    if len(manifest.entries) < MIN_CALIBRATION_VIDEOS:
        raise DeployError(
            f"too little calibration data: {source} has {len(manifest.entries)} videos; int8 "
            f"calibration needs at least {MIN_CALIBRATION_VIDEOS} videos of the kind the model "
            "will see"
        )
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[Any]] = {}
    for entry in manifest.entries:
        by_class.setdefault(entry.label, []).append(entry)
    queues = [list(rng.permutation(len(items))) for items in by_class.values()]
    groups = list(by_class.values())
    picked: list[Any] = []
    while len(picked) < count and any(queues):
        for items, queue in zip(groups, queues, strict=True):
            if queue and len(picked) < count:
                picked.append(items[queue.pop(0)])
    return picked


def first_conv_name(path: str | Path) -> str | None:
    """The name of the convolution that sees the pixels: the first with no convolution before it.

    (Node order in a file is only some topological order, so "first in the list" is not enough.)
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    after_conv: set[str] = set()
    first = None
    for node in graph.node:
        downstream = any(name in after_conv for name in node.input)
        if node.op_type == "Conv" and not downstream and first is None:
            first = node.name
        if node.op_type == "Conv" or downstream:
            after_conv.update(node.output)
    return first


def _prepare(model: Path, out: Path) -> Path:
    """ONNX Runtime's recommended pre-processing (shape inference, graph clean-up).

    Its symbolic shape inference fails on reshapes with a dynamic batch (TSM, LRCN fold time into
    the batch); ONNX's own shape inference is then used instead.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    for skip_symbolic in (False, True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(model), str(out), skip_symbolic_shape=skip_symbolic)
            return out
        except Exception as error:  # an optimisation: quantising without it still works
            log.info("quantisation pre-processing of %s failed: %s", model, error)
    return model
