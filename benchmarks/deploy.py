"""Deployment speed: PyTorch eager vs compiled vs ONNX Runtime fp32 and int8 vs 30% pruned.

Runs ``resaction bench`` (``resaction.deploy.bench``) on R3D-18, R(2+1)D-18 and TSM-R18 at their
default input on 2 threads, one fresh process per backend. Speeds are ratios to eager PyTorch
measured in the same run; the machine's fp32 matmul peak is measured in the same run too. With
``--data`` and trained checkpoints (``--models runs/x/best.pt,...``) int8 is calibrated on some
videos and every backend is scored on the others.

    python benchmarks/deploy.py [--quick] [--models r3d_18,...] [--data DIR] [--backends ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from resaction.deploy.bench import BACKENDS, bench
from resaction.deploy.bench_report import bench_table, write_bench_report

MODELS = ("r3d_18", "r2plus1d_18", "tsm_resnet18")
QUICK_INPUT = {"clip_len": 4, "resize": 72, "crop": 64}
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="r3d_18 only, small input, 3 runs")
    parser.add_argument("--models", default=",".join(MODELS), help="names or checkpoints")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--data", default=None, help="labelled videos for accuracy")
    parser.add_argument("--calibrate", default=None, help="videos for int8 calibration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--calib-videos", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS / "deploy")
    args = parser.parse_args(argv)

    models = [m for m in args.models.split(",") if m]
    backends = [b for b in args.backends.split(",") if b]
    if args.quick:
        models, backends = models[:1], [b for b in backends if b != "compiled"]
    report = bench(
        models,
        args.out,
        backends=backends,
        data=args.data,
        calibrate=args.calibrate,
        threads=args.threads,
        iterations=3 if args.quick else args.iterations,
        warmup=1 if args.quick else 3,
        calib_videos=args.calib_videos,
        input_override=QUICK_INPUT if args.quick else None,
    )
    Console(width=200).print(bench_table(report))
    files = write_bench_report(report, args.out)
    summary = RESULTS / "deploy.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {summary}, {files['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
