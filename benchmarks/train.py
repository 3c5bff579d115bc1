"""Training throughput: clips per second and the share of step time spent waiting for data.

Trains TSN, TSM, R3D and R(2+1)D (ResNet-18 trunks) at their default input on real videos, on the
CPU with 2 loader workers, for a few steps of two epochs, and reports the second epoch (workers
warm). Speeds are given as ratios to TSN, measured in the same run.

    python benchmarks/train.py [--quick] [--data DIR] [--models tsn_resnet18,r3d_18]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from resaction.engine import TrainConfig, train
from resaction.models import default_preprocess
from resaction.paths import shared_videos_dir

MODELS = ("tsn_resnet18", "tsm_resnet18", "r3d_18", "r2plus1d_18")
BASELINE = "tsn_resnet18"
RESULTS = Path(__file__).parent / "results" / "train.json"


def measure(model: str, data: str, out: Path, args: argparse.Namespace) -> dict:
    config = TrainConfig(
        data=data,
        model=model,
        out=str(out / model),
        epochs=2,
        batch_size=args.batch_size,
        val_split=0.0,
        max_steps_per_epoch=args.steps,
        num_workers=args.workers,
        warmup_epochs=0,
        device="cpu",
        progress=False,
    )
    started = time.perf_counter()
    result = train(config)
    warm = result.history[-1]
    return {
        "model": model,
        "clip_len": default_preprocess(model)["clip_len"],
        "input_size": default_preprocess(model)["crop"],
        "clips_per_s": warm["train_clips_per_s"],
        "data_wait": warm["train_data_wait"],
        "step_s": warm["train_seconds"] / args.steps,
        "wall_s": time.perf_counter() - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller steps")
    parser.add_argument("--data", default=str(shared_videos_dir() / "ucf101_subset"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    args.batch_size = args.batch_size or (2 if args.quick else 4)
    args.steps = args.steps or (2 if args.quick else 6)
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    if BASELINE not in models:
        models.insert(0, BASELINE)
    torch.set_num_threads(2)
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory(prefix="resaction-bench-train-") as tmp:
        for model in models:
            console.print(f"training {model} ({args.steps} steps x 2 epochs)...")
            rows.append(measure(model, args.data, Path(tmp), args))
    base = next(row for row in rows if row["model"] == BASELINE)["clips_per_s"]
    table = Table(
        title=f"Training on CPU: batch {args.batch_size}, {args.workers} workers, {args.data}"
    )
    for column in ("model", "clips/s", "vs TSN", "s/step", "data wait"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        row["ratio_vs_tsn"] = row["clips_per_s"] / base
        table.add_row(
            row["model"],
            f"{row['clips_per_s']:.2f}",
            f"{row['ratio_vs_tsn']:.2f}x",
            f"{row['step_s']:.2f}",
            f"{100 * row['data_wait']:.0f}%",
        )
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "train",
        "quick": args.quick,
        "data": args.data,
        "batch_size": args.batch_size,
        "steps_per_epoch": args.steps,
        "workers": args.workers,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "baseline": BASELINE,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
