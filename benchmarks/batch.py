"""Batch inference throughput: ``resaction batch`` on Ray with 1 and 2 model workers (and the
``--local`` process pool) against ``resaction predict``'s in-process path, over the same videos.

The videos are real ones from ``../shared/data/videos``, taken round-robin across its datasets.
The model is ``tsn_resnet18`` with random weights (speed does not depend on them) at 112 px,
8 frames, 2 clips per video (``--quick``: 32 px, 4 frames, fewer videos).

- baseline: ``Predictor.predict_many`` in this process, as ``resaction predict`` runs it (two
  decoding threads, batches of 8 views, torch's default threads), model already loaded;
- ``batch``: ``run_batch`` into a fresh results folder, on a local Ray instance started once
  beforehand (its start-up is reported apart, as a cluster would already be running). "wall"
  includes starting the model workers; "steady" is the rate between the first and the last
  committed video, which is what a long archive run sees.

Ratios are against the baseline measured in the same run. On a 2-core machine decoding and the
model compete for the same cores, so more workers cannot scale linearly here.

    python benchmarks/batch.py [--quick] [--videos N] [--out benchmarks/results/batch.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from resaction.inference import Predictor
from resaction.inference.batch import BatchOptions, run_batch, start_local_ray
from resaction.io.video_files import videos_under
from resaction.models import create_model, default_preprocess
from resaction.models.checkpoint import save_checkpoint
from resaction.paths import shared_videos_dir

RESULTS = Path(__file__).parent / "results"


def pick_videos(count: int) -> list[Path]:
    """``count`` real videos, one dataset after another in turn, so every kind is in the mix."""
    per_dataset = [
        videos_under(folder) for folder in sorted(shared_videos_dir().iterdir()) if folder.is_dir()
    ]
    mixed = [p for p in chain.from_iterable(zip_longest(*per_dataset)) if p is not None]
    return mixed[:count]


def make_checkpoint(folder: Path, quick: bool) -> Path:
    torch.manual_seed(0)
    size = {"clip_len": 4, "resize": 36, "crop": 32} if quick else {"clip_len": 8, "crop": 112}
    preprocess = {**default_preprocess("tsn_resnet18"), "resize": 128, **size}
    return save_checkpoint(
        folder / "tsn_resnet18.pt",
        create_model("tsn_resnet18", num_classes=10),
        model_name="tsn_resnet18",
        classes=[f"class_{i}" for i in range(10)],
        preprocess=preprocess,
        protocol={"num_clips": 2, "num_crops": 1},
    )


def baseline(checkpoint: Path, videos: list[Path]) -> dict[str, Any]:
    """``resaction predict``'s path: one process, decoding threads feeding one model."""
    predictor = Predictor.from_checkpoint(checkpoint)
    predictor.predict(videos[0])  # warm-up: first-call allocations
    started = time.perf_counter()
    outcomes = list(predictor.predict_many(videos, batch_size=8, num_workers=2))
    seconds = time.perf_counter() - started
    return {
        "engine": "predict (1 process)",
        "workers": 1,
        "videos": len(outcomes),
        "seconds": seconds,
        "videos_per_s": len(outcomes) / seconds,
        "steady_videos_per_s": len(outcomes) / seconds,
    }


def batch_run(
    checkpoint: Path, listing: Path, workers: int, *, local: bool, folder: Path
) -> dict[str, Any]:
    stamps: list[float] = []
    out = folder / f"{'local' if local else 'ray'}-{workers}"
    started = time.perf_counter()
    summary = run_batch(
        listing,
        checkpoint,
        out,
        BatchOptions(num_workers=workers, local=local, progress=False),
        on_commit=lambda row: stamps.append(time.perf_counter()),
    )
    seconds = time.perf_counter() - started
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return {
        "engine": "batch --local" if local else "batch (Ray)",
        "workers": workers,
        "videos": summary.scored + summary.failed,
        "seconds": seconds,
        "videos_per_s": (summary.scored + summary.failed) / seconds,
        "steady_videos_per_s": steady,
        "failed": summary.failed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 8 videos")
    parser.add_argument("--videos", type=int, default=None, help="how many videos (default 24)")
    parser.add_argument("--no-local", action="store_true", help="skip the --local runs")
    parser.add_argument("--out", type=Path, default=RESULTS / "batch.json")
    args = parser.parse_args()
    count = args.videos or (8 if args.quick else 24)
    console = Console()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="resaction-bench-batch-") as tmp:
        folder = Path(tmp)
        videos = pick_videos(count)
        listing = folder / "videos.txt"
        listing.write_text("".join(f"{video}\n" for video in videos))
        checkpoint = make_checkpoint(folder, args.quick)
        console.print(f"{len(videos)} videos, tsn_resnet18, {os.cpu_count()} CPUs")
        rows = [baseline(checkpoint, videos)]
        started = time.perf_counter()
        start_local_ray(num_cpus=os.cpu_count(), logging_level="ERROR", log_to_driver=False)
        ray_start = time.perf_counter() - started
        import ray

        try:
            rows += [batch_run(checkpoint, listing, n, local=False, folder=folder) for n in (1, 2)]
        finally:
            ray.shutdown()
        if not args.no_local:
            rows += [batch_run(checkpoint, listing, n, local=True, folder=folder) for n in (1, 2)]
    base = rows[0]["steady_videos_per_s"]
    for row in rows:
        row["vs_predict"] = row["steady_videos_per_s"] / base
    ray_rows = {row["workers"]: row for row in rows if row["engine"] == "batch (Ray)"}
    scaling = ray_rows[2]["steady_videos_per_s"] / ray_rows[1]["steady_videos_per_s"]

    table = Table(
        title=f"batch inference, {len(videos)} videos ({'quick' if args.quick else 'full'})"
    )
    for column in (
        "engine",
        "workers",
        "wall s",
        "videos/s (wall)",
        "videos/s (steady)",
        "steady vs predict",
    ):
        table.add_column(column, justify="left" if column == "engine" else "right")
    for row in rows:
        table.add_row(
            row["engine"],
            str(row["workers"]),
            f"{row['seconds']:.1f}",
            f"{row['videos_per_s']:.2f}",
            f"{row['steady_videos_per_s']:.2f}",
            f"{row['vs_predict']:.2f}x",
        )
    console.print(table)
    console.print(
        f"Ray start-up (once, not in the rows): {ray_start:.1f} s; "
        f"2 vs 1 Ray workers (steady): {scaling:.2f}x"
    )
    payload = {
        "benchmark": "batch",
        "quick": args.quick,
        "videos": [str(v) for v in videos],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "torch_threads": torch.get_num_threads(),
        "ray_start_seconds": ray_start,
        "rows": rows,
        "ray_scaling_2_vs_1": scaling,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
