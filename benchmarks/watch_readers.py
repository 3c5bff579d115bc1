"""Camera readers on 2 cores: threads against processes, for decoding many live streams.

Each camera is a ``CameraReader`` on a looped real surveillance clip played at its own frame
rate (alternately 640x360 at 30 fps and 704x480 at 20 fps, H.264), decoded and converted to a
160-px short side. A consumer takes every camera's new frames, as the watcher would. Three ways:

- ``threads`` (the baseline): all readers in this process, one thread each;
- ``proc/camera``: one process per camera; frames come back through a pipe into the same
  ``LatestFrames`` sinks;
- ``2 procs``: the cameras split between two processes (one per core), threads inside.

For N cameras: frames delivered per camera per second (and as a share of the clips' own rate),
and the CPU used by this process and its children over the measured window (200% = both
cores); "others" is what the rest of the machine used meanwhile (a row with much of it was
measured on a busy machine). Ratios are against the threads baseline measured in the same run.

    python benchmarks/watch_readers.py [--seconds 6] [--cameras 1 4 8 16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
from rich.console import Console
from rich.table import Table

from resaction.io.camera_reader import CameraReader
from resaction.io.live import CapturedFrame, LatestFrames
from resaction.paths import shared_videos_dir

RESULTS = Path(__file__).parent / "results"
SHORT_SIDE = 160
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def pick_clips() -> list[tuple[Path, float]]:
    """One 640x360 30 fps clip and one 704x480 20 fps clip (path, frame rate)."""
    wanted = {(640, 360, 30.0), (704, 480, 20.0)}
    found: dict[tuple[int, int, float], Path] = {}
    for path in sorted((shared_videos_dir() / "surveillance_camera_fight").rglob("*.mp4")):
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            key = (video.width, video.height, round(float(video.average_rate), 2))
        if key in wanted and key not in found:
            found[key] = path
    return [(found[key], key[2]) for key in sorted(wanted, key=lambda k: k[1])]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (so others' use can be told apart)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def camera_reader(index: int, clips: list[tuple[Path, float]]) -> CameraReader:
    path = clips[index % len(clips)][0]
    return CameraReader(f"cam{index}", path, short_side=SHORT_SIDE, loop=True, capacity=32)


def forward(cameras: list[int], clips: list[tuple[Path, float]], pipe: Connection) -> None:
    """A reader process: its cameras' frames go back through ``pipe`` as they come."""
    readers = {index: camera_reader(index, clips).start() for index in cameras}
    try:
        while not pipe.poll():
            sent = False
            for index, reader in readers.items():
                for frame in reader.frames.take_new():
                    image = frame.image
                    head = (index, frame.seq, frame.time, frame.captured, image.shape)
                    pipe.send(head)
                    pipe.send_bytes(image.tobytes())
                    sent = True
            if not sent:
                time.sleep(0.005)
    finally:
        for reader in readers.values():
            reader.stop()


def receive(pipe: Connection, sinks: dict[int, LatestFrames], stop: threading.Event) -> None:
    import numpy as np

    while not stop.is_set():
        if not pipe.poll(0.1):
            continue
        try:
            index, seq, stamp, captured, shape = pipe.recv()
            image = np.frombuffer(pipe.recv_bytes(), np.uint8).reshape(shape)
        except (EOFError, OSError):
            return
        sinks[index].put(CapturedFrame(seq, stamp, captured, image))


def consume(sinks: dict[int, LatestFrames], counts: dict[int, int], stop: threading.Event) -> None:
    while not stop.is_set():
        got = False
        for index, sink in sinks.items():
            new = sink.take_new()
            counts[index] += len(new)
            got = got or bool(new)
        if not got:
            stop.wait(0.005)


def warm_up(counts: dict[int, int], limit: float = 60.0) -> None:
    """Until every camera has delivered (children import and open first), then one second."""
    deadline = time.monotonic() + limit
    while min(counts.values()) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)


def run(way: str, cameras: int, clips: list[tuple[Path, float]], seconds: float) -> dict[str, Any]:
    readers: list[CameraReader] = []
    processes: list[Any] = []
    pipes: list[Connection] = []
    stop = threading.Event()
    if way == "threads":
        readers = [camera_reader(index, clips).start() for index in range(cameras)]
        sinks = {index: reader.frames for index, reader in enumerate(readers)}
    else:
        groups = (
            [[i] for i in range(cameras)]
            if way == "proc/camera"
            else [list(range(cameras))[k::2] for k in range(min(2, cameras))]
        )
        sinks = {index: LatestFrames(32) for index in range(cameras)}
        context = mp.get_context("spawn")
        for group in groups:
            parent, child = context.Pipe()
            process = context.Process(target=forward, args=(group, clips, child), daemon=True)
            process.start()
            processes.append(process)
            pipes.append(parent)
            threading.Thread(target=receive, args=(parent, sinks, stop), daemon=True).start()
    counts = {index: 0 for index in range(cameras)}
    consumer = threading.Thread(target=consume, args=(sinks, counts, stop), daemon=True)
    consumer.start()
    warm_up(counts)
    pids = [os.getpid()] + [process.pid for process in processes]
    before, cpu_before, started = dict(counts), cpu_seconds(pids), time.monotonic()
    busy_before = machine_busy_seconds()
    time.sleep(seconds)
    elapsed, cpu = time.monotonic() - started, cpu_seconds(pids) - cpu_before
    others = machine_busy_seconds() - busy_before - cpu
    delivered = [(counts[i] - before[i]) / elapsed for i in range(cameras)]
    expected = [clips[i % len(clips)][1] for i in range(cameras)]
    stop.set()
    for reader in readers:
        reader.stop()
    for pipe in pipes:
        with contextlib.suppress(OSError):
            pipe.send("stop")
    for process in processes:
        process.join(10)
    consumer.join(2)
    return {
        "way": way,
        "cameras": cameras,
        "fps_per_camera": round(sum(delivered) / cameras, 2),
        "real_time_pct": round(100 * sum(delivered) / sum(expected), 1),
        "slowest_camera_pct": round(
            min(d / e for d, e in zip(delivered, expected, strict=True)) * 100, 1
        ),
        "cpu_pct": round(100 * cpu / elapsed, 1),
        "others_cpu_pct": round(max(0.0, 100 * others / elapsed), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--out", type=Path, default=RESULTS / "watch_readers.json")
    args = parser.parse_args()
    clips = pick_clips()
    rows = []
    load = os.getloadavg()
    for cameras in args.cameras:
        base = None
        for way in ("threads", "proc/camera", "2 procs"):
            row = run(way, cameras, clips, args.seconds)
            base = base or row
            row["fps_ratio"] = round(row["fps_per_camera"] / base["fps_per_camera"], 2)
            row["cpu_ratio"] = round(row["cpu_pct"] / max(base["cpu_pct"], 1e-9), 2)
            rows.append(row)
            print(row, flush=True)
    show(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "watch_readers",
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "load_average_before": [round(value, 2) for value in load],
        "clips": [{"path": str(path.name), "fps": fps} for path, fps in clips],
        "short_side": SHORT_SIDE,
        "seconds": args.seconds,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def show(rows: list[dict[str, Any]]) -> None:
    table = Table(title="Camera readers: threads vs processes (ratios against threads)")
    columns = ("cameras", "way", "fps/camera", "real time", "slowest", "CPU", "fps x", "CPU x")
    for column in (*columns, "others"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            str(row["cameras"]),
            row["way"],
            f"{row['fps_per_camera']:.1f}",
            f"{row['real_time_pct']:.0f}%",
            f"{row['slowest_camera_pct']:.0f}%",
            f"{row['cpu_pct']:.0f}%",
            f"{row['fps_ratio']:.2f}",
            f"{row['cpu_ratio']:.2f}",
            f"{row['others_cpu_pct']:.0f}%",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
