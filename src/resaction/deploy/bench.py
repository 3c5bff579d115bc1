"""Benchmark models across backends: PyTorch eager, compiled, ONNX Runtime fp32 and int8, pruned.

Every backend is measured in a fresh process (so peak memory is its own, and one backend's
threads or caches cannot help another) on the same clip, with the same thread count. The
machine's fp32 matrix-multiply peak is measured in the same run, so "achieved GFLOP/s" can be
read against it, and speed-ups are ratios to eager PyTorch measured in the same run.

With ``data``, every backend is scored on its videos from one decoded copy of their clips, so all
backends see the same input; int8 models are calibrated on ``calibrate`` (default: some of
``data``'s videos, which are then left out of the scoring). Models given by registry name have
random weights: they get speed, not accuracy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resaction.deploy.bench_measure import (
    machine_facts,
    measure_backend,
    measure_in_subprocess,
    measure_matmul_peak,
)
from resaction.deploy.bench_prepare import ModelSpec, Prepared, prepare_model, resolve_model
from resaction.deploy.export import clip_shape
from resaction.deploy.prune import check_ratio
from resaction.errors import ConfigError, describe_error
from resaction.progress import progress_bar

BACKENDS = ("eager", "compiled", "onnx", "int8", "pruned")
EXTRA_BACKENDS = ("pruned-onnx", "pruned-int8")


@dataclass
class BenchRow:
    """One model on one backend."""

    model: str
    backend: str
    ms_p50: float | None = None
    ms_p95: float | None = None
    clips_per_s: float | None = None
    peak_rss_mb: float | None = None
    file_mb: float | None = None
    params: int | None = None
    gflops: float | None = None
    gflops_per_s: float | None = None
    peak_fraction: float | None = None
    top1: float | None = None
    speedup: float | None = None
    setup_s: float | None = None
    note: str = ""


@dataclass
class BenchReport:
    rows: list[BenchRow]
    peak_gflops: float
    threads: int
    batch_size: int
    iterations: int
    data: str | None
    eval_videos: dict[str, int] = field(default_factory=dict)
    calibration: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_backends(text: str | Sequence[str]) -> list[str]:
    names = [b.strip() for b in text.split(",")] if isinstance(text, str) else list(text)
    names = [name for name in names if name]
    unknown = [name for name in names if name not in BACKENDS + EXTRA_BACKENDS]
    if unknown or not names:
        raise ConfigError(
            f"unknown backend {unknown[0] if unknown else '(none)'!r}; "
            f"choose from {','.join(BACKENDS + EXTRA_BACKENDS)}"
        )
    return names


def bench(
    models: Sequence[str | Path],
    out_dir: str | Path,
    *,
    backends: Sequence[str] = BACKENDS,
    data: str | Path | None = None,
    calibrate: str | Path | None = None,
    threads: int = 2,
    batch_size: int = 1,
    iterations: int = 20,
    warmup: int = 3,
    prune_ratio: float = 0.3,
    calib_videos: int = 16,
    eval_videos: int | None = None,
    input_override: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> BenchReport:
    """Measure every model on every backend; artefacts go to ``out_dir/artifacts``.

    ``input_override`` replaces preprocessing keys (e.g. a smaller ``clip_len``/``crop`` for a
    quick run) of the PyTorch models (an ONNX file keeps its fixed input); accuracy is only
    measured at a model's own input.
    """
    if not models:
        raise ConfigError("give at least one model (a registry name, a checkpoint or an .onnx)")
    if threads < 1 or batch_size < 1 or iterations < 2:
        raise ConfigError("threads and batch size must be at least 1, iterations at least 2")
    backends = parse_backends(backends)
    if any(backend.startswith("pruned") for backend in backends):
        check_ratio(prune_ratio)
    out_dir = Path(out_dir)
    load_before = os.getloadavg()
    peak = measure_in_subprocess(measure_matmul_peak, {"threads": threads})["gflops"]
    report = BenchReport(
        rows=[],
        peak_gflops=peak,
        threads=threads,
        batch_size=batch_size,
        iterations=iterations,
        data=str(data) if data is not None else None,
    )
    for spec_text in models:
        spec = resolve_model(spec_text)
        overridden = bool(input_override) and spec.onnx_path is None
        if overridden:
            spec.preprocess = overridden_input(spec.preprocess, input_override or {})
        work = out_dir / "artifacts" / _slug(spec.label)
        work.mkdir(parents=True, exist_ok=True)
        prepared = prepare_model(
            spec,
            work,
            backends,
            data,
            calibrate,
            prune_ratio,
            calib_videos,
            eval_videos,
            seed,
            progress,
            score=not overridden,
        )
        report.eval_videos[spec.label] = prepared.eval_count
        report.calibration[spec.label] = prepared.calibration
        timing = (threads, batch_size, iterations, warmup)
        bar = progress_bar(backends, desc=spec.label, unit="backend", disable=not progress)
        rows = [_run_backend(spec, backend, prepared, *timing) for backend in bar]
        report.rows += _with_ratios(rows, peak)
    report.machine = machine_facts(load_before)
    return report


def _with_ratios(rows: list[BenchRow], peak: float) -> list[BenchRow]:
    """Speed-ups against eager PyTorch and the share of the machine's matmul peak."""
    eager = next((r for r in rows if r.backend == "eager" and r.ms_p50), None)
    for row in rows:
        if eager is not None and row.ms_p50:
            row.speedup = eager.ms_p50 / row.ms_p50
        if row.gflops and row.ms_p50:
            row.gflops_per_s = row.gflops / (row.ms_p50 / 1000.0)
            row.peak_fraction = row.gflops_per_s / peak if peak else None
    return rows


def _run_backend(
    spec: ModelSpec,
    backend: str,
    prepared: Prepared,
    threads: int,
    batch_size: int,
    iterations: int,
    warmup: int,
) -> BenchRow:
    source = {
        "eager": "fp32.pt",
        "compiled": "fp32.pt",
        "onnx": "fp32.onnx",
        "int8": "int8.onnx",
        "pruned": "pruned.pt",
        "pruned-onnx": "pruned.onnx",
        "pruned-int8": "pruned.int8.onnx",
    }[backend]
    row = BenchRow(model=spec.label, backend=backend, note=prepared.notes.get(backend, ""))
    path = prepared.files.get(source)
    if path is None:
        row.note = "not applicable to this model"
        return row
    if "all" in prepared.notes:
        row.note = "; ".join(n for n in (row.note, prepared.notes["all"]) if n)
    task = {
        "backend": backend,
        "path": str(path),
        "threads": threads,
        "shape": [batch_size, *clip_shape(spec.preprocess)],
        "iterations": iterations,
        "warmup": warmup,
        "eval_cache": str(prepared.eval_cache) if prepared.eval_cache else None,
    }
    try:
        measured = measure_in_subprocess(measure_backend, task)
    except Exception as error:  # a backend that fails is reported in its row, not fatal
        row.note = f"failed: {describe_error(error)}"
        return row
    times = np.asarray(measured["seconds"]) * 1000.0 / batch_size
    row.ms_p50 = float(np.percentile(times, 50))
    row.ms_p95 = float(np.percentile(times, 95))
    row.clips_per_s = 1000.0 / row.ms_p50
    row.peak_rss_mb = measured["peak_rss_mb"]
    row.file_mb = path.stat().st_size / 1e6
    kind = "pruned" if backend.startswith("pruned") else "fp32"
    row.gflops = prepared.gflops.get(kind)
    row.params = prepared.params.get(kind)
    row.top1 = measured.get("top1")
    row.setup_s = measured.get("setup_s")
    if measured.get("note"):
        row.note = "; ".join(n for n in (row.note, measured["note"]) if n)
    return row


def overridden_input(preprocess: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``preprocess`` with ``override``'s keys, its ``clip_len`` rounded up to whole segments
    for models that read runs of frames (a 4-frame quick clip is 6 frames for segments of 3)."""
    merged = {**preprocess, **override}
    segment = int(merged.get("segment_len", 1))
    merged["clip_len"] = -(-int(merged["clip_len"]) // segment) * segment
    return merged


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")
