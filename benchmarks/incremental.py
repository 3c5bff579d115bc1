"""Timeline and stream with each frame through the trunk once, against recomputing windows.

``resaction timeline`` and ``resaction stream`` score overlapping windows: a timeline window of
``clip_len`` frames every ``stride`` frames, a stream window every ``1 / rate`` seconds. For the
models whose clip output pools per-frame outputs (TSN, the difference models, LRCN), each frame
now goes through the trunk once and windows pool cached outputs (``inference/incremental.py``);
before, every window ran all its frames. Both ways run here on the same real video with the
same model (random weights: speed only; the scores are equal to 1e-4, tests/inference/
test_incremental.py), alternating, best of ``--repeats``. The ratio is recompute over
incremental seconds (above 1: incremental is faster).

    python benchmarks/incremental.py [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from resaction.inference.predictor import Predictor
from resaction.inference.stream import StreamConfig, run_stream
from resaction.inference.timeline import TimelineConfig, run_timeline
from resaction.paths import shared_videos_dir

RESULTS = Path(__file__).parent / "results"
VIDEO = "fixed_camera_negatives/no_incident/pedestrians.mp4"
# (model, timeline stride): TSN's 8 frames are consecutive, so its default stride 8 would not
# overlap; 2 is a dense timeline. The others span 24 (difference: strides of whole 3-frame
# segments share them) and 32 (LRCN) frames.
CASES = [("tsn_resnet18", 2), ("tsn_diff_resnet18", 6), ("lrcn_resnet18", 8)]


def timed(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure(name: str, stride: int, video: Path, repeats: int) -> list[dict[str, Any]]:
    predictor = Predictor.from_pretrained(name, weights="none")
    rows = []
    for command in ("timeline", "stream"):
        best: dict[bool, float] = {}
        windows = 0
        for _ in range(repeats):
            for incremental in (False, True):
                if command == "timeline":
                    config = TimelineConfig(stride=stride, incremental=incremental)
                    result: dict[str, Any] = {}

                    def run(config: TimelineConfig = config, result: dict = result) -> None:
                        result["t"] = run_timeline(predictor, video, config)

                    seconds = timed(run)
                    windows = len(result["t"].starts)
                else:
                    config = StreamConfig(rate=4, smooth=1, stats_every=0, incremental=incremental)
                    summary: dict[str, Any] = {}

                    def run(config: StreamConfig = config, summary: dict = summary) -> None:
                        summary.update(run_stream(predictor, video, config))

                    seconds = timed(run)
                    windows = summary["windows"]
                best[incremental] = min(best.get(incremental, float("inf")), seconds)
        rows.append(
            {
                "model": name,
                "command": command,
                "stride": stride if command == "timeline" else None,
                "windows": windows,
                "recompute_s": round(best[False], 3),
                "incremental_s": round(best[True], 3),
                "speedup": round(best[False] / best[True], 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "incremental.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    video = shared_videos_dir() / VIDEO
    rows = [row for name, stride in CASES for row in measure(name, stride, video, args.repeats)]
    table = Table(title=f"incremental vs recompute on {video.name} ({args.threads} threads)")
    for column in ("model", "command", "stride", "windows", "recompute s", "incremental s", "×"):
        table.add_column(column, justify="left" if column in ("model", "command") else "right")
    for row in rows:
        table.add_row(
            row["model"],
            row["command"],
            str(row["stride"] or "-"),
            str(row["windows"]),
            f"{row['recompute_s']:.2f}",
            f"{row['incremental_s']:.2f}",
            f"{row['speedup']:.2f}",
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    facts = {"video": VIDEO, "threads": args.threads, "machine": platform.processor() or "cpu"}
    args.out.write_text(json.dumps({**facts, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
