"""End-to-end inference speed on the CPU: ``timeline`` real-time factor and ``stream`` latency.

For each model family, on a generated 320x240 25 fps video (10 minutes, or 1 with ``--quick``;
cached under benchmarks/results/cache):

- the real-time factor of ``run_timeline`` (seconds of video per second of wall time: decoding,
  preprocessing and the model, windows ``--stride`` frames apart), and as the baseline the same
  pipeline with a backend that returns zeros, measured in the same process just before: the
  ratio says how much of the time the network itself takes;
- the peak resident memory during the timeline, and how much it grew from the start of it
  (bounded memory: it must not depend on the video's length);
- ``run_stream`` on the same file played at its own 25 fps for ``--stream-seconds``: latency
  from frame capture to label (p50, p95), windows per second and dropped frames.

Every model runs in its own process, so each peak is its own. Random weights: speed does not
depend on them.

    python benchmarks/inference.py [--quick] [--models tsn_resnet18,r3d_18] [--stride 8]
                                   [--threads N] [--out benchmarks/results/inference.json]

Writes benchmarks/results/inference.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
CACHE = RESULTS / "cache"
FAMILIES = (
    "tsn_resnet18",
    "lrcn_resnet18",
    "tsm_resnet18",
    "r3d_18",
    "r2plus1d_18",
    "i3d_resnet18",
)
FPS = 25
SIZE = (240, 320)


def synthetic_video(seconds: int) -> Path:
    """A cached H.264 video of a few shapes moving over a textured background."""
    import cv2

    from resaction.io.writer import VideoWriter

    path = CACHE / f"moving_shapes_{seconds}s_{SIZE[1]}x{SIZE[0]}_{FPS}fps.mp4"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    height, width = SIZE
    background = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), np.uint8), (0, 0), 6)
    with VideoWriter(path, fps=FPS, size=SIZE, preset="ultrafast") as writer:
        for index in range(seconds * FPS):
            t = index / FPS
            frame = background.copy()
            x = int(width / 2 + width / 3 * np.sin(t * 0.9))
            y = int(height / 2 + height / 4 * np.sin(t * 1.7))
            cv2.circle(frame, (x, y), 22, (230, 60, 40), -1)
            arm = int(40 * np.sin(t * 4.0))
            cv2.line(frame, (x, y), (x + 40, y + arm), (40, 220, 60), 6)
            cv2.rectangle(
                frame, (int(t * 37) % width, 20), (int(t * 37) % width + 30, 60), (30, 60, 230), -1
            )
            writer.write(frame)
    return path


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class ZeroBackend:
    """The baseline: the whole pipeline without the network."""

    name = "zero"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    def __call__(self, batch: Any) -> np.ndarray:
        return np.zeros((len(batch), self.num_classes), dtype=np.float32)


def worker(
    name: str, video: Path, stride: int, stream_seconds: float, threads: int | None
) -> dict[str, Any]:
    """Measure one model in this process; the parent reads the JSON it prints last."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    from resaction.inference import Predictor, TorchBackend
    from resaction.inference.stream import StreamConfig, run_stream
    from resaction.inference.timeline import TimelineConfig, run_timeline
    from resaction.models import create_model, default_preprocess

    model = create_model(name).eval()
    classes = [f"class_{i}" for i in range(model.get_classifier().out_features)]
    preprocess = default_preprocess(name)
    config = TimelineConfig(stride=stride)
    baseline = Predictor(ZeroBackend(len(classes)), classes, preprocess)
    pipeline = run_timeline(baseline, video, config)
    predictor = Predictor(TorchBackend(model), classes, preprocess, model_name=name)
    resettable = _reset_peak_rss()
    rss_start = _status_kib("VmRSS")
    timeline = run_timeline(predictor, video, config)
    peak = _status_kib("VmHWM") if resettable else None
    stream = run_stream(
        predictor,
        video,
        StreamConfig(rate=4.0, smooth=5, realtime=True, duration=stream_seconds, stats_every=0),
    )
    return {
        "model": name,
        "threads": torch.get_num_threads(),
        "preprocess": preprocess,
        "video_seconds": timeline.duration,
        "windows": len(timeline.starts),
        "timeline_seconds": timeline.seconds,
        "realtime_factor": timeline.realtime_factor,
        "baseline_seconds": pipeline.seconds,
        "baseline_realtime_factor": pipeline.realtime_factor,
        "model_share": 1.0 - pipeline.seconds / timeline.seconds,
        "peak_buffered_frames": timeline.peak_buffered_frames,
        "peak_rss_mb": peak / 1024 if peak else None,
        "rss_growth_mb": (peak - rss_start) / 1024 if peak and rss_start else None,
        "stream": stream,
    }


def run_worker(
    name: str, video: Path, stride: int, stream_seconds: float, threads: int | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--video",
        str(video),
        "--stride",
        str(stride),
        "--stream-seconds",
        str(stream_seconds),
        *(["--threads", str(threads)] if threads else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": name, "error": last[:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(
    rows: list[dict[str, Any]], video_seconds: float, stride: int, threads: int | None
) -> Table:
    out = Table(
        title=f"timeline on {video_seconds / 60:.0f} min of 320x240 {FPS} fps video, stride "
        f"{stride}; stream at {FPS} fps, 4 windows/s; {threads} torch threads"
    )
    columns = (
        "model",
        "windows",
        "x real time",
        "baseline x",
        "model share",
        "ring frames",
        "peak RSS MB",
        "RSS growth MB",
        "stream p50 ms",
        "stream p95 ms",
        "windows/s",
        "dropped",
    )
    for column in columns:
        out.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        if "error" in row:
            out.add_row(row["model"], *["-"] * (len(columns) - 2), f"error: {row['error']}")
            continue
        stream = row["stream"]
        out.add_row(
            row["model"],
            str(row["windows"]),
            f"{row['realtime_factor']:.2f}",
            f"{row['baseline_realtime_factor']:.1f}",
            f"{row['model_share']:.0%}",
            str(row["peak_buffered_frames"]),
            f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] else "?",
            f"{row['rss_growth_mb']:.0f}" if row["rss_growth_mb"] is not None else "?",
            f"{stream['latency_p50_ms']}",
            f"{stream['latency_p95_ms']}",
            f"{stream['windows_per_s']:.2f}",
            str(stream["dropped_frames"]),
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 1-minute video, 10 s of stream")
    parser.add_argument("--models", default=",".join(FAMILIES), help="comma-separated names")
    parser.add_argument("--stride", type=int, default=8, help="source frames between windows")
    parser.add_argument("--stream-seconds", type=float, default=None)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "inference.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.video, args.stride, args.stream_seconds, args.threads)
        print(json.dumps(result))
        return 0

    console = Console() if sys.stdout.isatty() else Console(width=160)
    seconds = 60 if args.quick else 600
    stream_seconds = args.stream_seconds or (10.0 if args.quick else 30.0)
    with console.status(f"generating a {seconds} s video (cached)"):
        video = synthetic_video(seconds)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    load_before = os.getloadavg()[0]
    rows = []
    started = time.perf_counter()
    for position, name in enumerate(names, 1):
        console.print(f"[{position}/{len(names)}] {name} ...", highlight=False)
        rows.append(run_worker(name, video, args.stride, stream_seconds, args.threads))
    console.print(table(rows, seconds, args.stride, rows[0].get("threads")))
    console.print(
        "x real time: seconds of video per second of wall time (decode + preprocess + model); "
        "baseline x: the same without the model (zero logits), measured in the same process; "
        "model share: fraction of the timeline's time spent in the model; ring frames: most "
        "frames the timeline held at once. "
        f"Load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after."
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        },
        "quick": args.quick,
        "video": {"path": str(video), "seconds": seconds, "fps": FPS, "size": list(SIZE)},
        "stride": args.stride,
        "threads": args.threads,
        "stream_seconds": stream_seconds,
        "wall_seconds": time.perf_counter() - started,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
