"""What ``bench`` measures, made ready before any timing: the model resolved from its name or
file, and per model the files each backend runs (checkpoints, fp32, pruned and int8 ONNX files),
their GFLOPs and parameters, and the held-out clips every backend is scored on."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from resaction.data.loader import make_loader
from resaction.data.spec import DEFAULT_VIEWS, ClipSpec, ViewProtocol
from resaction.deploy.export import export_model, model_facts, write_metadata
from resaction.deploy.prune import count_gflops, count_params, example_input, prune_model
from resaction.deploy.quantize import (
    ClipCalibrationReader,
    calibration_entries,
    first_conv_name,
    load_calibration_clips,
    quantize_qdq,
)
from resaction.deploy.quantize_accuracy import held_out_entries
from resaction.errors import DeployError
from resaction.models import create_model, default_preprocess, list_models
from resaction.models.checkpoint import save_checkpoint
from resaction.progress import progress_bar
from resaction.runtime.loading import load_model
from resaction.runtime.onnx_backend import OnnxBackend


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


def resolve_model(spec: str | Path) -> ModelSpec:
    """A registry name (random weights, default input), a checkpoint or an ONNX file."""
    text = str(spec)
    path = Path(text)
    if path.suffix.lower() in {".onnx", ".pt", ".pth", ".ckpt"} or path.is_file():
        loaded = load_model(path)
        return ModelSpec(
            label=f"{loaded.model_name} ({path.name})",
            **model_facts(loaded),
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


@dataclass
class Prepared:
    """Files to run per backend, GFLOPs and parameters, and the held-out clips."""

    files: dict[str, Path]
    notes: dict[str, str]
    gflops: dict[str, float]
    params: dict[str, int]
    eval_cache: Path | None
    eval_count: int
    calibration: str


def prepare_model(
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
) -> Prepared:
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
    return Prepared(files, notes, gflops, params, eval_cache, eval_count, calibration)


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
    remedy = "calibrate on other videos with --calibrate, or on fewer with --calib-videos"
    entries = held_out_entries(data, spec.classes, used, max_videos, seed, remedy)
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
