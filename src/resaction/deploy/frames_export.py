"""Export a 2D-trunk model as a frames file: its per-frame half and its pooling half, for live
scoring that runs each frame through the network once (``runtime/onnx_frames.py`` describes
the file and runs it).

TSN (RGB or difference), LRCN and a TSM that shifts only from the past can be split so; a
past-shift TSM is exported "online", as in the TSM paper's streaming demo: every shift's cached
last frame is an extra input and output of the per-frame graph. The file is checked before it
is written: two streams run unit by unit (caches chained) through ONNX Runtime and PyTorch must
give the same per-frame outputs and window logits.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resaction.deploy.export import (
    DEFAULT_OPSET,
    ExportResult,
    check_agreement,
    crop_size,
    decision_metadata,
    export_metadata,
    load_for_export,
    model_facts,
    require,
    trace_onnx,
    write_export,
)
from resaction.errors import DeployError
from resaction.inference.incremental import TorchFrames, supports_incremental
from resaction.runtime.onnx_frames import (
    LOGITS,
    POOL_PREFIX,
    WINDOW,
    OnnxFrames,
    frame_names,
)

CHECK_STREAMS = 2


class _FrameHalf(nn.Module):
    """units (B, C, L, H, W) [+ shift caches] -> outputs (B, D) [+ next caches]."""

    def __init__(self, model: nn.Module, stateful: bool) -> None:
        super().__init__()
        self.model = model
        self.stateful = stateful

    def forward(self, units: torch.Tensor, *caches: torch.Tensor) -> Any:
        if self.stateful:
            self.model.set_online_state(list(caches))
        frames, _ = self.model.clip_frames(units)
        outputs = self.model.frame_outputs(frames)
        if not self.stateful:
            return outputs
        return (outputs, *self.model.online_state())


class _PoolHalf(nn.Module):
    """window (N, T, D) -> logits (N, K)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.model.pool_frames(window)


def export_frames_checkpoint(
    checkpoint: str | Path, out: str | Path, *, opset: int = DEFAULT_OPSET, check: bool = True
) -> ExportResult:
    """Export a resaction checkpoint of a 2D-trunk model as a frames file."""
    loaded = load_for_export(checkpoint)
    return export_frames(
        loaded.module,
        out,
        **model_facts(loaded),
        opset=opset,
        check=check,
        extra_metadata={"source": Path(checkpoint).name, **decision_metadata(loaded.extra)},
    )


def export_frames(
    model: nn.Module,
    out: str | Path,
    *,
    model_name: str,
    classes: list[str],
    preprocess: dict[str, Any],
    protocol: dict[str, Any],
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    extra_metadata: dict[str, Any] | None = None,
) -> ExportResult:
    """Write ``model``'s frames file (see the module doc); ``model`` itself is left unchanged."""
    started = time.perf_counter()
    require("onnx", "ONNX export")
    if not supports_incremental(model):
        raise DeployError(
            f"{model_name} does not pool per-frame outputs of a causal 2D trunk, so it has no "
            "frames model; export it whole (without --frames)"
        )
    runner = TorchFrames(copy.deepcopy(model).eval())
    unit = (3, max(1, int(getattr(runner.module, "segment_len", 1))), *crop_size(preprocess))
    window_units = max(1, int(preprocess.get("clip_len", 8)) // unit[1])
    shifts = _shift_shapes(runner, unit)
    metadata = export_metadata(model_name, classes, preprocess, protocol, opset)
    metadata.update(
        {
            "frames": True,
            "unit_len": unit[1],
            "window_units": window_units,
            "shifts": [list(shape) for shape in shifts],
            **(extra_metadata or {}),
        }
    )

    def write(path: Path) -> None:
        _export_halves(runner, unit, shifts, window_units, path, opset, model_name)

    def compare(path: Path) -> float:
        return _check(model, path, unit, window_units, model_name, Path(out))

    return write_export(
        Path(out), metadata, ("N", *unit), started, write, compare if check else None
    )


def _shift_shapes(runner: TorchFrames, unit: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Each shift cache's shape without the batch, (1, fold, h, w), read off one unit's run."""
    if not runner.stateful:
        return []
    _, states = runner.frames(torch.zeros((1, *unit)))
    runner.module.reset()
    return [tuple(cache.shape[1:]) for cache in states[0]]


def _export_halves(
    runner: TorchFrames,
    unit: tuple[int, ...],
    shifts: list[tuple[int, ...]],
    window_units: int,
    path: Path,
    opset: int,
    model_name: str,
) -> None:
    """Both halves into one file: two unconnected graphs, the pooling half's names prefixed."""
    import onnx
    from onnx.compose import add_prefix

    model = runner.module
    inputs, outputs = frame_names(len(shifts))
    caches = tuple(torch.zeros((1, *shape)) for shape in shifts)
    window = torch.zeros((1, window_units, _output_width(runner, unit)))
    with tempfile.TemporaryDirectory(prefix="resaction-frames-") as work:
        frames_path, pool_path = Path(work) / "frames.onnx", Path(work) / "pool.onnx"
        subject = f"{model_name}'s frames model"
        trace_onnx(
            _FrameHalf(model, runner.stateful),
            (torch.zeros((1, *unit)), *caches),
            frames_path,
            inputs,
            outputs,
            {name: {0: "batch"} for name in inputs + outputs},
            opset,
            subject,
        )
        if runner.stateful:
            model.reset()
        names = [WINDOW.removeprefix(POOL_PREFIX), LOGITS.removeprefix(POOL_PREFIX)]
        axes = {names[0]: {0: "batch", 1: "time"}, names[1]: {0: "batch"}}
        pool_half = _PoolHalf(model)
        trace_onnx(pool_half, (window,), pool_path, names[:1], names[1:], axes, opset, subject)
        frames, pool = onnx.load(str(frames_path)), onnx.load(str(pool_path))
    onnx.save(merge_halves(frames, add_prefix(pool, POOL_PREFIX)), str(path))


def merge_halves(frames: Any, pool: Any) -> Any:
    """One ``onnx.ModelProto`` holding both halves, unconnected; the pooling half takes the
    per-frame half's IR version and opsets (a quantised half may add a domain)."""
    from onnx.compose import merge_models

    pool.ir_version = frames.ir_version
    del pool.opset_import[:]
    pool.opset_import.extend(frames.opset_import)
    merged = merge_models(frames, pool, io_map=[])
    unique = {entry.domain: entry for entry in merged.opset_import}  # merging repeats them
    del merged.opset_import[:]
    merged.opset_import.extend(unique.values())
    return merged


def _output_width(runner: TorchFrames, unit: tuple[int, ...]) -> int:
    outputs, _ = runner.frames(torch.zeros((1, *unit)))
    if runner.stateful:
        runner.module.reset()
    return int(outputs.shape[-1])


def _check(
    model: nn.Module,
    path: Path,
    unit: tuple[int, ...],
    window_units: int,
    model_name: str,
    out: Path,
) -> float:
    """Largest difference from PyTorch over two streams' units and their window's logits."""
    generator = torch.Generator().manual_seed(0)
    torch_runner, onnx_runner = TorchFrames(copy.deepcopy(model).eval()), OnnxFrames(path)
    torch_states = onnx_states = None
    torch_outputs, onnx_outputs = [], []
    for _ in range(window_units):
        units = torch.randn((CHECK_STREAMS, *unit), generator=generator)
        expected, torch_states = torch_runner.frames(units, torch_states)
        got, onnx_states = onnx_runner.frames(units, onnx_states)
        torch_outputs.append(expected)
        onnx_outputs.append(got)
    expected_logits = torch_runner.pool(torch.stack(torch_outputs, dim=1))
    logits = onnx_runner.pool(torch.stack(onnx_outputs, dim=1))
    outputs_diff = float((torch.stack(torch_outputs) - torch.stack(onnx_outputs)).abs().max())
    diff = max(outputs_diff, float(np.abs(logits - expected_logits).max()))
    scale = float(np.abs(expected_logits).max())
    return check_agreement(diff, scale, f"frames model of {model_name}", out)
