"""Per-frame cost of a 2D trunk in live scoring: PyTorch fp32 against ONNX Runtime fp32 and int8.

The live watcher runs each camera's new frame through the per-frame half of a 2D-trunk model
once (``inference/incremental.py``), batched across cameras; this measures that call, the
``FrameRunner.frames`` of each backend, at the registered input size (160 px for TSN/TSM-R18),
for batches of 1, 8 and 16 cameras. A past-shift TSM carries its shift caches between calls, as
live. The ONNX files are the frames files ``resaction export --frames`` writes and ``resaction
quantize`` turns to int8 (calibrated on 8 real videos). Random weights: speed only. Backends
alternate within each round, the fastest call counts; ratios are against torch fp32 in the same run.
``cameras@4`` is how many cameras one process keeps at 4 scored frames a second (the watcher's
default rate) from the per-frame time at that batch, trunk only.

    python benchmarks/frames.py [--threads 2] [--iterations 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from resaction.deploy.frames_export import export_frames
from resaction.deploy.quantize import quantize_onnx
from resaction.inference.incremental import TorchFrames
from resaction.models import create_model, default_preprocess
from resaction.paths import shared_videos_dir
from resaction.runtime.onnx_frames import OnnxFrames

RESULTS = Path(__file__).parent / "results"
MODELS = ("tsn_resnet18", "tsm_online_resnet18")
BATCHES = (1, 8, 16)
RATE = 4.0


def runners(name: str, work: Path, threads: int) -> dict[str, Any]:
    """torch fp32, ORT fp32 and ORT int8 frame runners of one random-weight model."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=400).eval()
    preprocess = default_preprocess(name)
    fp32 = export_frames(
        model,
        work / f"{name}.frames.onnx",
        model_name=name,
        classes=[f"c{i}" for i in range(400)],
        preprocess=preprocess,
        protocol={},
    ).path
    calibrate = shared_videos_dir() / "gt_cs4495_ps7"
    int8 = quantize_onnx(
        fp32, calibrate, work / f"{name}.int8.onnx", calib_videos=8, num_workers=0, progress=False
    ).path
    return {
        "torch fp32": TorchFrames(model),
        "ort fp32": OnnxFrames(fp32, threads=threads),
        "ort int8": OnnxFrames(int8, threads=threads),
    }


def measure(runner: Any, batch: torch.Tensor, iterations: int) -> float:
    """Fastest seconds of one ``frames`` call, shift caches carried from call to call (the
    fastest, not the median: other jobs share these cores, and only slow a call down)."""
    _, states = runner.frames(batch)
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        _, states = runner.frames(batch, states)
        times.append(time.perf_counter() - started)
    return float(np.min(times))


def bench(name: str, work: Path, threads: int, iterations: int, rounds: int) -> list[dict]:
    backends = runners(name, work, threads)
    crop = default_preprocess(name)["crop"]
    rows = []
    for size in BATCHES:
        batch = torch.randn((size, 3, 1, crop, crop), generator=torch.Generator().manual_seed(0))
        best = {label: float("inf") for label in backends}
        for _ in range(rounds):
            for label, runner in backends.items():
                best[label] = min(best[label], measure(runner, batch, iterations))
        for label, seconds in best.items():
            per_frame = 1000 * seconds / size
            rows.append(
                {
                    "model": name,
                    "backend": label,
                    "batch": size,
                    "ms_per_call": round(1000 * seconds, 2),
                    "ms_per_frame": round(per_frame, 2),
                    "vs_torch_fp32": round(best["torch fp32"] / seconds, 2),
                    "cameras_at_4": int(1000 / (per_frame * RATE)),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="resaction-bench-frames-") as work:
        for name in MODELS:
            rows += bench(name, Path(work), args.threads, args.iterations, args.rounds)
    load_after = os.getloadavg()
    table = Table(title=f"per-frame trunk, {args.threads} threads (ratio: torch fp32 / this)")
    columns = ("model", "backend", "batch", "ms_per_call", "ms_per_frame", "vs_torch_fp32")
    for column in (*columns, "cameras_at_4"):
        table.add_column(
            column.replace("_", " "), justify="left" if column in columns[:2] else "right"
        )
    for row in rows:
        table.add_row(*(str(row[column]) for column in (*columns, "cameras_at_4")))
    console = Console(width=110)
    console.print(table)
    console.print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
    RESULTS.mkdir(exist_ok=True)
    record = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
        "threads": args.threads,
        "load_before": load_before,
        "load_after": load_after,
        "rows": rows,
    }
    (RESULTS / "frames.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
