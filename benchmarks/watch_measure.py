"""``benchmarks/watch.py``'s measurements: one point (a variant at N cameras) to one row.

``measure_watcher`` runs the watcher in a spawned process (``watch_point``, so its CPU is its
own) with a hook on each camera's ``decide`` for raw capture-to-decision latencies;
``measure_baseline`` runs one ``resaction stream`` process per camera and reads their events.
``summarise`` turns the cameras' counts and latencies into the row the tables show.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from watch_readers import cpu_seconds, machine_busy_seconds
from watch_setup import DROPPED_LIMIT_PCT, FPS, P95_LIMIT_MS, Cameras, Variant, resaction_command

# ---------------------------------------------------------------- the watcher


def cameras_yaml(urls: list[str], window: float | None) -> str:
    defaults: dict[str, Any] = {"classes": ["fight"], "pre": 1, "post": 1}
    if window is not None:
        defaults["window"] = window
    cameras = [{"name": f"cam{index:02d}", "url": url} for index, url in enumerate(urls)]
    return json.dumps({"defaults": defaults, "cameras": cameras, "sinks": ["jsonl"]})


def watch_point(pipe: Connection, model_path: str, urls: list[str], settings: dict) -> None:
    """Child process: the watcher on ``urls``, measured; the result goes back on ``pipe``."""
    try:
        pipe.send(watch_and_measure(model_path, urls, settings))
    except Exception as error:
        pipe.send({"skip": f"failed: {type(error).__name__}: {error}"})


def watch_and_measure(model_path: str, urls: list[str], settings: dict) -> dict[str, Any]:
    import torch

    from resaction.monitor.config import load_watch_config
    from resaction.monitor.watcher import Watcher, WatchOptions
    from resaction.runtime.loading import load_model

    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    work = Path(settings["work"])
    config_path = work / "cameras.yaml"
    config_path.write_text(cameras_yaml(urls, settings["window"]))
    options = WatchOptions(
        out=work / "out",
        max_batch=settings["max_batch"],
        rate=settings["rate"],
        incremental=settings["incremental"],
    )
    watcher = Watcher(load_watch_config(config_path), load_model(model_path), options)
    if settings["incremental"] and not watcher.scorer.incremental:
        return {"skip": f"skipped: load_model({Path(model_path).name}) runs whole windows"}
    latencies, accepted = hook(watcher)
    watcher.start()
    started = time.monotonic()
    limit = settings["ready_timeout"]
    while not all(latencies.values()) and time.monotonic() - started < limit:
        time.sleep(0.2)
    ready_s = time.monotonic() - started
    time.sleep(settings["warmup"])
    before = snapshot(watcher, accepted, settings["sender_pid"])
    time.sleep(settings["seconds"])
    after = snapshot(watcher, accepted, settings["sender_pid"])
    batches = watcher.metrics.batch_size.collect()[0].samples
    watcher.stop(delivery_timeout=1.0)
    windows = {
        name: [lat for at, lat in values if before["at"] <= at <= after["at"]]
        for name, values in latencies.items()
    }
    batch_sum = next((s.value for s in batches if s.name.endswith("_sum")), 0.0)
    batch_count = next((s.value for s in batches if s.name.endswith("_count")), 0.0)
    return {
        "before": before,
        "after": after,
        "latencies": windows,
        "ready_s": round(ready_s, 1),
        "mean_batch": round(batch_sum / batch_count, 2) if batch_count else None,
        "threads": torch.get_num_threads(),
    }


def hook(watcher: Any) -> tuple[dict[str, list[tuple[float, float]]], dict[str, int]]:
    """Hooks on ``watcher``: each camera's decisions as ``(when, latency)`` and the frames the
    scorer accepted from it, both filled in as the watcher runs."""
    latencies: dict[str, list[tuple[float, float]]] = {c.name: [] for c in watcher.cameras}
    accepted = dict.fromkeys(latencies, 0)
    for camera in watcher.cameras:
        decide = camera.decide

        def hooked(score: Any, log: Any, decide: Any = decide, name: str = camera.name) -> Any:
            now = time.monotonic()
            latencies[name].append((now, now - score.captured))
            return decide(score, log)

        camera.decide = hooked
    add = watcher.scorer.add

    def counted(track: Any, *args: Any) -> bool:
        kept = add(track, *args)
        if kept:
            accepted[track.camera] += 1
        return kept

    watcher.scorer.add = counted
    return latencies, accepted


def snapshot(watcher: Any, accepted: dict[str, int], sender_pid: int) -> dict[str, Any]:
    """The watcher's cameras' counters, this process's, the sender's and the machine's CPU."""
    cameras = {}
    for camera in watcher.cameras:
        track = camera.track
        cameras[camera.name] = {
            "frames": camera.reader.frames_read,
            "evicted": camera.reader.frames.dropped,
            "dropped_units": track.dropped_units if track else 0,
            "units": accepted[camera.name] // (track.unit_len if track else 1),
            "step": track.step if track else None,
        }
    return {
        "at": time.monotonic(),
        "cpu": cpu_seconds([os.getpid()]),
        "sender_cpu": cpu_seconds([sender_pid]),
        "busy": machine_busy_seconds(),
        "cameras": cameras,
    }


def measure_watcher(
    variant: Variant, model_path: Path, cameras: Cameras, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    settings = {
        "work": str(work),
        "window": args.window,
        "max_batch": args.max_batch,
        "rate": args.rate,
        "incremental": variant.mode == "incremental",
        "threads": args.threads,
        "warmup": args.warmup,
        "seconds": args.seconds,
        "ready_timeout": 30 + 2 * len(cameras.urls),
        "sender_pid": cameras.pid,
    }
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=watch_point, args=(child, str(model_path), cameras.urls, settings), daemon=True
    )
    process.start()
    limit = settings["ready_timeout"] + args.warmup + args.seconds + 120
    got = parent.poll(limit)
    result = parent.recv() if got else {"skip": "failed: the watcher process gave no result"}
    process.join(30)
    if process.is_alive():
        process.kill()
        process.join()
    if "skip" in result:
        return result
    before, after = result["before"], result["after"]
    cams = []
    for name, start in before["cameras"].items():
        end = after["cameras"][name]
        cams.append(
            {
                "frames": end["frames"] - start["frames"],
                "evicted": end["evicted"] - start["evicted"],
                "dropped_units": end["dropped_units"] - start["dropped_units"],
                "units": end["units"] - start["units"],
                "step": end["step"],
                "latencies": result["latencies"][name],
            }
        )
    row = summarise(
        cams,
        seconds=after["at"] - before["at"],
        cpu=after["cpu"] - before["cpu"],
        sender_cpu=after["sender_cpu"] - before["sender_cpu"],
        busy=after["busy"] - before["busy"],
    )
    row.update(ready_s=result["ready_s"], mean_batch=result["mean_batch"])
    row["torch_threads"] = result["threads"]
    return row


# ---------------------------------------------------------------- the baseline


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            events.append(json.loads(line))
    return events


def start_streams(
    model_path: Path, urls: list[str], work: Path, rate: float
) -> tuple[list[subprocess.Popen], list[Path]]:
    """One ``resaction stream`` process per camera, each with its events file."""
    processes = []
    files = []
    for index, url in enumerate(urls):
        events = work / f"cam{index:02d}.jsonl"
        errors = (work / f"cam{index:02d}.err").open("w")
        command = resaction_command(
            "stream", url, "-c", str(model_path), "--rate", str(rate), "--stats-every", "1"
        )
        command += ["--events", str(events), "--log-windows", "--duration", "86400"]
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors))
        files.append(events)
        errors.close()
    return processes, files


def wait_for_windows(processes: list[subprocess.Popen], files: list[Path]) -> float:
    """Seconds until every stream logged a window (or one ended, or the limit passed)."""
    started = time.monotonic()
    limit = 30 + 4 * len(processes)
    waiting = list(files)
    while waiting and time.monotonic() - started < limit:
        if any(process.poll() is not None for process in processes):
            break
        waiting = [
            f for f in waiting if not any(e.get("event") == "window" for e in read_events(f))
        ]
        time.sleep(0.5)
    return time.monotonic() - started


def stop_streams(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stream_camera(events: Path, wall0: float, wall1: float) -> dict[str, Any]:
    """One stream process's counts and latencies between wall-clock ``wall0`` and ``wall1``."""
    records = read_events(events)
    stats = [e for e in records if e.get("event") == "stats"]
    first = [e for e in stats if e["wall"] <= wall0]
    last = [e for e in stats if e["wall"] <= wall1]
    start = first[-1] if first else {"wall": wall0, "frames_read": 0, "dropped_frames": 0}
    end = last[-1] if last else start
    span = max(end["wall"] - start["wall"], 1e-9)
    scale = (wall1 - wall0) / span  # stats come every second: scale to the whole window
    latencies = [
        e["latency_ms"] / 1000.0
        for e in records
        if e.get("event") == "window" and wall0 <= e["wall"] <= wall1
    ]
    return {
        "frames": round((end["frames_read"] - start["frames_read"]) * scale),
        "evicted": round((end["dropped_frames"] - start["dropped_frames"]) * scale),
        "dropped_units": 0,
        "units": 0,
        "step": 1,
        "latencies": latencies,
    }


def measure_baseline(
    model_path: Path, cameras: Cameras, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    processes, files = start_streams(model_path, cameras.urls, work, args.rate)
    try:
        ready_s = wait_for_windows(processes, files)
        time.sleep(args.warmup)
        pids = [process.pid for process in processes if process.poll() is None]
        wall0, mono0 = time.time(), time.monotonic()
        cpu0, sender0, busy0 = cpu_seconds(pids), cpu_seconds([cameras.pid]), machine_busy_seconds()
        time.sleep(args.seconds)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        cpu1, sender1, busy1 = (
            cpu_seconds(alive),
            cpu_seconds([cameras.pid]),
            machine_busy_seconds(),
        )
        wall1, mono1 = time.time(), time.monotonic()
    finally:
        stop_streams(processes)
    cams = [stream_camera(events, wall0, wall1) for events in files]
    lost = len(processes) - len(alive)
    row = summarise(
        cams,
        seconds=mono1 - mono0,
        cpu=cpu1 - cpu0,
        sender_cpu=sender1 - sender0,
        busy=busy1 - busy0,
    )
    row.update(ready_s=round(ready_s, 1), mean_batch=None, torch_threads=1)
    if lost:
        row["note"] = f"{lost} stream process(es) ended early (see their .err)"
    return row


# ---------------------------------------------------------------- one row


def summarise(
    cams: list[dict[str, Any]], seconds: float, cpu: float, sender_cpu: float, busy: float
) -> dict[str, Any]:
    sent = FPS * seconds
    dropped, evicted_pct, unit_pct, fps_in, p95s = [], [], [], [], []
    for cam in cams:
        missing = max(0.0, sent - cam["frames"])
        frame_share = (missing + cam["evicted"]) / sent
        offered = cam["units"]
        unit_share = cam["dropped_units"] / offered if offered else 0.0
        dropped.append(min(1.0, frame_share + unit_share))
        evicted_pct.append(frame_share)
        unit_pct.append(unit_share)
        fps_in.append(cam["frames"] / seconds)
        p95s.append(np.percentile(cam["latencies"], 95) if cam["latencies"] else np.inf)
    every = np.concatenate([np.asarray(cam["latencies"], float) for cam in cams])
    silent = sum(1 for cam in cams if not cam["latencies"])
    p50 = float(np.percentile(every, 50)) * 1000 if len(every) else None
    p95 = float(np.percentile(every, 95)) * 1000 if len(every) else None
    worst_dropped = 100 * max(dropped)
    held = p95 is not None and p95 <= P95_LIMIT_MS and worst_dropped <= DROPPED_LIMIT_PCT
    held = held and not silent
    units = sum(cam["units"] - cam["dropped_units"] for cam in cams)
    return {
        "held": bool(held),
        "latency_p50_ms": None if p50 is None else round(p50, 1),
        "latency_p95_ms": None if p95 is None else round(p95, 1),
        "worst_camera_p95_ms": round(1000 * max(p95s), 1) if np.isfinite(max(p95s)) else None,
        "cameras_without_windows": silent,
        "dropped_pct_max": round(worst_dropped, 2),
        "frames_lost_pct_max": round(100 * max(evicted_pct), 2),
        "units_dropped_pct_max": round(100 * max(unit_pct), 2),
        "fps_in_min": round(min(fps_in), 2),
        "windows_per_s": round(len(every) / seconds, 2),
        "windows_per_s_per_camera": round(len(every) / seconds / len(cams), 2),
        "units_per_s": round(units / seconds, 2) if units else None,
        "lattice_step": cams[0]["step"],
        "cpu_pct": round(100 * cpu / seconds, 1),
        "sender_cpu_pct": round(100 * sender_cpu / seconds, 1),
        "others_cpu_pct": round(max(0.0, 100 * (busy - cpu - sender_cpu) / seconds), 1),
        "seconds": round(seconds, 2),
    }
