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

import copy
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from resaction.data.loader import make_loader
from resaction.data.spec import DEFAULT_VIEWS, ClipSpec, ViewProtocol
from resaction.deploy.bench_measure import (
    machine_facts,
    measure_backend,
    measure_in_subprocess,
    measure_matmul_peak,
)
from resaction.deploy.export import clip_shape, export_model, write_metadata
from resaction.deploy.prune import (
    check_ratio,
    count_gflops,
    count_params,
    example_input,
    prune_model,
)
from resaction.deploy.quantize import (
    ClipCalibrationReader,
    calibration_entries,
    first_conv_name,
    load_calibration_clips,
    quantize_qdq,
)
from resaction.deploy.quantize_accuracy import held_out_entries
from resaction.errors import ConfigError, DeployError, describe_error
from resaction.models.checkpoint import save_checkpoint
from resaction.models.registry import create_model, default_preprocess, list_models
from resaction.progress import progress_bar
from resaction.runtime.loading import load_model
from resaction.runtime.onnx_backend import OnnxBackend

BACKENDS = ("eager", "compiled", "onnx", "int8", "pruned")
EXTRA_BACKENDS = ("pruned-onnx", "pruned-int8")


@dataclass
class ModelSpec:
    """A model to benchmark, resolved to a module (or an ONNX file) and its pipeline."""

    label: str
    model_name: str
    classes: list[str]
    preprocess: dict[str, Any]
    protocol: dict[str, Any]
    model: nn.Module | None = None
    onnx_path: Path | None = None
    trained: bool = False
    pruned: bool = False


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


def resolve_model(spec: str | Path) -> ModelSpec:
    """A registry name (random weights, default input), a checkpoint or an ONNX file."""
    text = str(spec)
    path = Path(text)
    if path.suffix.lower() in {".onnx", ".pt", ".pth", ".ckpt"} or path.is_file():
        loaded = load_model(path)
        return ModelSpec(
            label=f"{loaded.model_name} ({path.name})",
            model_name=loaded.model_name,
            classes=loaded.classes,
            preprocess=loaded.spec.to_dict(),
            protocol=loaded.views.to_dict(),
            model=loaded.module,
            onnx_path=path if loaded.is_onnx else None,
            trained=not loaded.is_onnx or bool(getattr(loaded.backend, "has_metadata", False)),
            pruned=bool(loaded.extra.get("pruned")),
        )
    if text not in list_models():
        create_model(text)  # raises the registry's one-line "unknown model" error
    model = create_model(text).eval()
    width = model.get_classifier().out_features
    return ModelSpec(
        label=text,
        model_name=text,
        classes=[f"class_{i}" for i in range(width)],
        preprocess=default_preprocess(text),
        protocol=DEFAULT_VIEWS.to_dict(),
        model=model,
    )


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
            spec.preprocess = {**spec.preprocess, **(input_override or {})}
        work = out_dir / "artifacts" / _slug(spec.label)
        work.mkdir(parents=True, exist_ok=True)
        prepared = _prepare_model(
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


@dataclass
class _Prepared:
    """Files to run per backend, GFLOPs and parameters, and the held-out clips."""

    files: dict[str, Path]
    notes: dict[str, str]
    gflops: dict[str, float]
    params: dict[str, int]
    eval_cache: Path | None
    eval_count: int
    calibration: str


def _prepare_model(
    spec: ModelSpec,
    work: Path,
    backends: Sequence[str],
    data: str | Path | None,
    calibrate: str | Path | None,
    prune_ratio: float,
    calib_videos: int,
    eval_videos: int | None,
    seed: int,
    progress: bool,
    *,
    score: bool = True,
) -> _Prepared:
    files: dict[str, Path] = {}
    notes: dict[str, str] = {}
    gflops: dict[str, float] = {}
    params: dict[str, int] = {}
    wanted = set(backends)
    if spec.model is not None:
        _write_model_files(spec, work, wanted, prune_ratio, (files, notes, gflops, params))
    elif spec.onnx_path is not None:
        quantized = bool(OnnxBackend(spec.onnx_path).metadata.get("quantization"))
        files["int8.onnx" if quantized else "fp32.onnx"] = spec.onnx_path
    calibration_source = calibrate if calibrate is not None else data
    calibration, calibration_entries_used = "none", []
    for backend, source, target in (
        ("int8", "fp32.onnx", "int8.onnx"),
        ("pruned-int8", "pruned.onnx", "pruned.int8.onnx"),
    ):
        if backend in wanted and target not in files and source in files:
            calibration, calibration_entries_used = _quantize_for_bench(
                files[source], work / target, calibration_source, calib_videos, seed, progress
            )
            files[target] = work / target
            if calibration_source is None:
                notes[backend] = "; ".join(
                    n for n in (notes.get(backend), "calibrated on random clips: speed only") if n
                )
    if calibrate is not None:
        calibration_entries_used = []
    eval_cache, eval_count = None, 0
    if data is not None and spec.trained and score:
        eval_cache, eval_count = _cache_eval_views(
            spec,
            data,
            calibration_entries_used,
            eval_videos,
            work,
            seed,
            progress,  # type: ignore[arg-type]
        )
    elif data is not None:
        notes["all"] = (
            "input changed: no accuracy" if spec.trained else "random weights: no accuracy"
        )
    return _Prepared(files, notes, gflops, params, eval_cache, eval_count, calibration)


def _write_model_files(
    spec: ModelSpec, work: Path, wanted: set[str], prune_ratio: float, found: tuple
) -> None:
    """The checkpoints and ONNX files the wanted backends run, fp32 and pruned, with their
    GFLOPs and parameter counts (``found``: files, notes, gflops, params, filled in)."""

    files, notes, gflops, params = found
    clip = example_input(spec.preprocess)
    save = {
        "model_name": spec.model_name,
        "classes": spec.classes,
        "preprocess": spec.preprocess,
        "protocol": spec.protocol,
    }
    base = spec.model.eval()
    gflops["fp32"], params["fp32"] = count_gflops(base, clip), count_params(base)
    if {"eager", "compiled"} & wanted:
        files["fp32.pt"] = save_checkpoint(work / "model.pt", base, pruned=spec.pruned, **save)
    if {"onnx", "int8"} & wanted:
        files["fp32.onnx"] = export_model(base, work / "model.onnx", **save).path
    if {"pruned", "pruned-onnx", "pruned-int8"} & wanted:
        pruned = prune_model(copy.deepcopy(base), prune_ratio, clip).model
        gflops["pruned"], params["pruned"] = count_gflops(pruned, clip), count_params(pruned)
        files["pruned.pt"] = save_checkpoint(work / "pruned.pt", pruned, pruned=True, **save)
        if {"pruned-onnx", "pruned-int8"} & wanted:
            files["pruned.onnx"] = export_model(pruned, work / "pruned.onnx", **save).path
        for backend in ("pruned", "pruned-onnx", "pruned-int8"):
            notes[backend] = f"{prune_ratio:.0%} channels, not fine-tuned"


def _quantize_for_bench(
    onnx_path: Path,
    out: Path,
    data: str | Path | None,
    calib_videos: int,
    seed: int,
    progress: bool,
) -> tuple[str, list[Any]]:
    """Quantise like ``quantize_onnx``, on ``data``'s clips or, without data, on random clips
    (enough for timing; the int8 model's accuracy is then meaningless)."""

    source = OnnxBackend(onnx_path)
    entries: list[Any] = []
    if data is not None:
        entries = calibration_entries(data, calib_videos, seed)
        clips = load_calibration_clips(entries, source.preprocess, progress=progress).clips
        calibration = f"{len(clips)} clips of {len(entries)} videos from {data}"
    else:
        rng = np.random.default_rng(seed)
        shape = (1, *source.input_shape[1:])
        clips = [rng.standard_normal(shape, dtype=np.float32) for _ in range(8)]
        calibration = "random clips (speed only)"
    quantize_qdq(
        onnx_path,
        out,
        ClipCalibrationReader(clips, source.input_name),
        nodes_to_exclude=[name for name in [first_conv_name(onnx_path)] if name],
    )
    write_metadata(out, {**source.metadata, "quantization": {"calibration": calibration}})
    return calibration, entries


def _cache_eval_views(
    spec: ModelSpec,
    data: str | Path,
    calibration_entries: Sequence[Any],
    max_videos: int | None,
    work: Path,
    seed: int,
    progress: bool,
) -> tuple[Path, int]:
    """Decode the held-out videos' views once; every backend then reads the same arrays."""

    used = {str(Path(entry.path).resolve()) for entry in calibration_entries}
    entries = held_out_entries(data, spec.classes, used, max_videos, seed)
    clip_spec = ClipSpec.from_dict(spec.preprocess)
    dataset = clip_spec.dataset(entries, train=False, views=ViewProtocol.from_dict(spec.protocol))
    views, owners, labels = [], [], []
    loader = make_loader(dataset, 1, train=False)
    for batch in progress_bar(loader, desc="held-out clips", unit="video", disable=not progress):
        if batch.clips is None:
            continue
        flat = batch.clips.flatten(0, 1).numpy()
        views.append(flat)
        owners += [len(labels)] * len(flat)
        labels.append(int(batch.labels[0]))
    if not views:
        raise DeployError(f"none of the held-out videos of {data} could be decoded")
    cache = work / "heldout"
    cache.mkdir(exist_ok=True)
    np.save(cache / "views.npy", np.concatenate(views))
    np.save(cache / "owners.npy", np.asarray(owners, dtype=np.int64))
    np.save(cache / "labels.npy", np.asarray(labels, dtype=np.int64))
    return cache, len(labels)


def _run_backend(
    spec: ModelSpec,
    backend: str,
    prepared: _Prepared,
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
        "shape": [batch_size, *_clip_shape(spec.preprocess)],
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


def _clip_shape(preprocess: dict[str, Any]) -> tuple[int, ...]:

    return clip_shape(preprocess)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")
