"""Cameras one box watches on 2 cores: the watcher against one ``resaction stream`` per camera.

N live cameras, each a loop of real surveillance clips as 640x480 H.264 at 25 fps, sent as
MPEG-TS over UDP on loopback. No clip in ``surveillance_camera_fight`` is 640x480 at 25 fps, so
its four 854x480 25 fps clips are cropped to their central 640x480 and encoded once with libx264
(CRF 23, a keyframe every 2 s, no B-frames, as cameras stream; cached in
``benchmarks/results/cache/watch_clips``); camera i plays the four in turn from clip i mod 4.
The sender (``tests/monitor/streams.py``: remuxed, not re-encoded, paced at real time) runs in a
process of its own; its CPU is shown apart ("sender") and not counted as the watcher's.

Variants (``--variants``), ``MODEL:PRECISION:MODE``:

- ``tsn:fp32:incremental``: ``resaction watch``'s way (``monitor.watcher.Watcher`` in one
  process: a reader thread per camera, one batching worker, each frame through the trunk once);
- ``tsn:fp32:recompute``: the same watcher recomputing whole windows (``--recompute``);
- ``tsm_online``: ``tsm_online_resnet18`` (the past-shift TSM the incremental path runs online);
  ``tsm``: ``tsm_resnet18`` (bidirectional shift), which can only recompute windows;
- ``int8``: ``incremental`` runs the per-frame int8 ONNX model (``resaction export --frames``,
  then ``resaction quantize`` calibrated on 8 surveillance clips); where that command is missing
  the variant is skipped with a note. ``recompute`` runs the whole-clip int8 model (``export``,
  ``quantize``); it is not in the default set, to keep the run near 15 minutes;
- ``baseline:MODEL[:PRECISION]``: today's way, one ``resaction stream URL -c CKPT --rate R``
  process per camera (each with its own reader and model; run until stopped with SIGINT).

Models have random weights (speed only) and their default preprocessing (8 frames at 160 px).
The watcher spreads a TSN/TSM window over 2 s (a frame every 6th, one window per frame, about
4.2 windows/s per camera; ``--window`` changes it); ``resaction stream`` takes 8 consecutive frames
and scores ``--rate`` (4) windows/s, so each of its frames goes through the trunk. Every measured
point starts the sender and the watcher (or the N processes) afresh, waits until every camera has
scored a window, warms up ``--warmup`` seconds, then measures ``--seconds``. What is measured:

- latency: a window's newest frame decoded (the reader's capture time) to its decision, p50/p95
  over all cameras' windows. The watcher's come raw from a hook on each camera's ``decide`` (the
  same moment its ``resaction_watch_latency_seconds`` histogram observes); the baseline's from
  ``--events --log-windows``;
- dropped (the worst camera): frames the camera sent that were never decoded (25 fps x seconds
  less frames decoded), frames the reader evicted before they were taken
  (``LatestFrames.dropped``), as a share of the frames sent, plus the share of the watcher's
  lattice units dropped because the model fell behind (``CameraTrack.dropped_units``; a unit
  stands for the ``step`` frames of its lattice slot, so a unit dropped counts as that share of
  the frames). ``resaction stream`` does not report its dropped units; its latency shows them;
- CPU: utime + stime of the watcher's process (or the N stream processes) over the measured
  window (200% = both cores); "others" is what the rest of the machine used meanwhile (a row with
  much of it was measured on a busy machine). "CPU x" is against the baseline at the same N.

A point is held when p95 latency is at most 1 s and no camera dropped more than 10% of its
frames; each variant's sweep of ``--cameras`` stops after the first N that is not held. The
figure: the largest N held, and its ratio to the baseline's. Outputs of the runs (events, SQLite
logs) go to a temporary folder on /dev/shm where there is one, so disk syncs cost nothing.

    python benchmarks/watch.py                # the default variants, N in 1 2 4 8 12 16 24
    python benchmarks/watch.py --quick        # 2-minute smoke run: 2 cameras, 5 s, 4 variants
    python benchmarks/watch.py --variants tsn:int8:incremental baseline:tsn --cameras 8 16 24
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import numpy as np
from rich.console import Console
from rich.table import Table

from resaction.paths import shared_videos_dir
from watch_readers import cpu_seconds, machine_busy_seconds

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CLIP_CACHE = RESULTS / "cache" / "watch_clips"
CLASSES = ["fight", "noFight"]
MODELS = {"tsn": "tsn_resnet18", "tsm": "tsm_resnet18", "tsm_online": "tsm_online_resnet18"}
MODES = ("incremental", "recompute")
PRECISIONS = ("fp32", "int8")
SIZE, FPS, GOP = (640, 480), 25, 50
SOURCE_SIZE = (854, 480)
P95_LIMIT_MS = 1000.0
DROPPED_LIMIT_PCT = 10.0
SETTINGS = (
    "variants", "cameras", "seconds", "warmup", "rate", "window", "max_batch", "threads",
)  # fmt: skip
DEFAULT_VARIANTS = [
    "baseline:tsn",
    "tsn:fp32:incremental",
    "tsn:fp32:recompute",
    "tsm_online:fp32:incremental",
    "tsm:fp32:recompute",
    "tsn:int8:incremental",
    "tsm_online:int8:incremental",
]
QUICK_VARIANTS = [
    "baseline:tsn",
    "tsn:fp32:incremental",
    "tsn:fp32:recompute",
    "tsn:int8:incremental",
]


@dataclass(frozen=True)
class Variant:
    name: str
    family: str  # tsn, tsm, tsm_online
    precision: str  # fp32, int8
    mode: str  # incremental, recompute, process (one stream process per camera)

    @property
    def model(self) -> str:
        return MODELS[self.family]


def parse_variant(text: str) -> Variant:
    parts = text.split(":")
    if parts[0] == "baseline":
        if len(parts) not in (2, 3) or parts[1] not in MODELS:
            raise SystemExit(f"variant {text!r}: write baseline:MODEL[:PRECISION]")
        precision = parts[2] if len(parts) == 3 else "fp32"
        if precision not in PRECISIONS:
            raise SystemExit(f"variant {text!r}: precision is one of {', '.join(PRECISIONS)}")
        return Variant(text, parts[1], precision, "process")
    if len(parts) != 3 or parts[0] not in MODELS or parts[1] not in PRECISIONS:
        raise SystemExit(
            f"variant {text!r}: write MODEL:PRECISION:MODE with MODEL in "
            f"{', '.join(MODELS)}, PRECISION in {', '.join(PRECISIONS)}, MODE in "
            f"{', '.join(MODES)} (or baseline:MODEL)"
        )
    if parts[2] not in MODES:
        raise SystemExit(f"variant {text!r}: MODE is one of {', '.join(MODES)}")
    if parts[0] == "tsm" and parts[2] == "incremental":
        raise SystemExit(
            f"variant {text!r}: tsm_resnet18 shifts both ways, so it can only recompute "
            "windows; the incremental TSM is tsm_online"
        )
    return Variant(text, parts[0], parts[1], parts[2])


# ---------------------------------------------------------------- clips and models


def camera_clips() -> list[Path]:
    """The 854x480 25 fps surveillance clips cropped to 640x480 H.264, encoded once."""
    sources = []
    for path in sorted((shared_videos_dir() / "surveillance_camera_fight").rglob("*.mp4")):
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            key = (video.width, video.height, round(float(video.average_rate or 0), 2))
        if key == (*SOURCE_SIZE, float(FPS)):
            sources.append(path)
    if not sources:
        raise SystemExit("no 854x480 25 fps clip in surveillance_camera_fight to make cameras of")
    CLIP_CACHE.mkdir(parents=True, exist_ok=True)
    clips = []
    for source in sources:
        target = CLIP_CACHE / f"{source.stem}_{SIZE[0]}x{SIZE[1]}_{FPS}.mp4"
        if not target.is_file():
            encode_crop(source, target)
        clips.append(target)
    return clips


def encode_crop(source: Path, target: Path) -> None:
    width, height = SIZE
    partial = target.with_suffix(".partial.mp4")
    with av.open(str(source)) as inp, av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.options = {"crf": "23", "preset": "medium", "bf": "0"}
        for index, frame in enumerate(inp.decode(video=0)):
            image = frame.to_ndarray(format="rgb24")
            left = (image.shape[1] - width) // 2
            top = (image.shape[0] - height) // 2
            cropped = np.ascontiguousarray(image[top : top + height, left : left + width])
            picture = av.VideoFrame.from_ndarray(cropped, format="rgb24").reformat(format="yuv420p")
            picture.pts = index
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    partial.rename(target)


def make_checkpoints(families: set[str], folder: Path) -> dict[str, Path]:
    import torch

    from resaction.models.checkpoint import save_checkpoint
    from resaction.models.registry import create_model

    paths = {}
    for family in sorted(families):
        torch.manual_seed(0)
        name = MODELS[family]
        model = create_model(name, num_classes=len(CLASSES))
        paths[family] = save_checkpoint(
            folder / f"{name}.pt", model, model_name=name, classes=CLASSES
        )
    return paths


def resaction_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "resaction.cli", *args]


def run_quiet(command: list[str], timeout: float = 900) -> str | None:
    """Run ``command``; ``None`` when it worked, else the last line it wrote."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode == 0:
        return None
    lines = (done.stderr + done.stdout).strip().splitlines() or ["no output"]
    return f"{' '.join(command[3:5])} failed: {lines[-1].strip()}"


def int8_model(checkpoint: Path, frames: bool) -> tuple[Path | None, str]:
    """The int8 ONNX model of ``checkpoint``: per-frame (``export --frames``) or whole-clip;
    ``(None, why)`` when it cannot be made yet."""
    suffix = ".frames" if frames else ".clip"
    fp32 = checkpoint.with_suffix(f"{suffix}.onnx")
    int8 = checkpoint.with_suffix(f"{suffix}.int8.onnx")
    if int8.is_file():
        return int8, ""
    if frames:
        help_text = subprocess.run(
            resaction_command("export", "--help"),
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        ).stdout
        if "--frames" not in help_text:
            return None, (
                "skipped: `resaction export` has no --frames yet (the per-frame int8 ONNX "
                "runner is being built); rerun this variant once it lands"
            )
    export = resaction_command("export", str(checkpoint), "-o", str(fp32), "--no-check")
    failed = run_quiet([*export, "--frames"] if frames else export)
    if failed is None:
        calibrate = shared_videos_dir() / "surveillance_camera_fight"
        quantize = ["quantize", str(fp32), "--calibrate", str(calibrate), "-o", str(int8)]
        failed = run_quiet(
            resaction_command(*quantize, "--calib-videos", "8", "--no-progress", "--workers", "0")
        )
    if failed is not None:
        return None, f"skipped: {failed}"
    return int8, ""


# ---------------------------------------------------------------- the cameras


def serve_cameras(clips: list[str], count: int, pipe: Connection) -> None:
    """A process sending ``count`` looped cameras over UDP until told to stop."""
    sys.path.insert(0, str(ROOT))
    from tests.monitor.streams import loopback_source

    paths = [Path(clip) for clip in clips]
    sources = []
    for index in range(count):
        turn = index % len(paths)
        sources.append(loopback_source("udp", paths[turn:] + paths[:turn], loop=True))
    pipe.send([source.url for source in sources])
    with contextlib.suppress(EOFError):
        pipe.recv()
    for source in sources:
        source.close()


class Cameras:
    """The sender process for one measured point."""

    def __init__(self, clips: list[Path], count: int) -> None:
        context = mp.get_context("spawn")
        self.pipe, child = context.Pipe()
        args = ([str(clip) for clip in clips], count, child)
        self.process = context.Process(target=serve_cameras, args=args, daemon=True)
        self.process.start()
        self.urls: list[str] = self.pipe.recv()
        self.pid = self.process.pid

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.pipe.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


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
    latencies: dict[str, list[tuple[float, float]]] = {c.name: [] for c in watcher.cameras}
    accepted = dict.fromkeys(latencies, 0)
    for camera in watcher.cameras:
        decide = camera.decide

        def hooked(score: Any, log: Any, decide: Any = decide, name: str = camera.name) -> Any:
            now = time.monotonic()
            latencies[name].append((now, now - score.captured))
            return decide(score, log)

        camera.decide = hooked  # type: ignore[method-assign]
    add = watcher.scorer.add

    def counted(track: Any, *args: Any) -> bool:
        kept = add(track, *args)
        if kept:
            accepted[track.camera] += 1
        return kept

    watcher.scorer.add = counted  # type: ignore[method-assign]
    watcher.start()
    started = time.monotonic()
    limit = settings["ready_timeout"]
    while not all(latencies.values()) and time.monotonic() - started < limit:
        time.sleep(0.2)
    ready_s = time.monotonic() - started
    time.sleep(settings["warmup"])

    def snapshot() -> dict[str, Any]:
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
            "sender_cpu": cpu_seconds([settings["sender_pid"]]),
            "busy": machine_busy_seconds(),
            "cameras": cameras,
        }

    before = snapshot()
    time.sleep(settings["seconds"])
    after = snapshot()
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


def measure_baseline(
    model_path: Path, cameras: Cameras, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    processes = []
    files = []
    for index, url in enumerate(cameras.urls):
        events = work / f"cam{index:02d}.jsonl"
        errors = (work / f"cam{index:02d}.err").open("w")
        command = resaction_command(
            "stream", url, "-c", str(model_path), "--rate", str(args.rate), "--stats-every", "1"
        )
        command += ["--events", str(events), "--log-windows", "--duration", "86400"]
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors))
        files.append(events)
        errors.close()
    try:
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
        ready_s = time.monotonic() - started
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
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    cams = []
    for events in files:
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
        cams.append(
            {
                "frames": round((end["frames_read"] - start["frames_read"]) * scale),
                "evicted": round((end["dropped_frames"] - start["dropped_frames"]) * scale),
                "dropped_units": 0,
                "units": 0,
                "step": 1,
                "latencies": latencies,
            }
        )
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


# ---------------------------------------------------------------- the run


def prepare_models(
    variants: list[Variant], folder: Path
) -> tuple[dict[Variant, Path], dict[Variant, str]]:
    checkpoints = make_checkpoints({v.family for v in variants}, folder)
    paths: dict[Variant, Path] = {}
    skipped: dict[Variant, str] = {}
    for variant in variants:
        checkpoint = checkpoints[variant.family]
        if variant.precision == "fp32":
            paths[variant] = checkpoint
            continue
        path, why = int8_model(checkpoint, frames=variant.mode == "incremental")
        if path is None:
            skipped[variant] = why
        else:
            paths[variant] = path
    return paths, skipped


def sweep(
    variant: Variant,
    model_path: Path,
    clips: list[Path],
    work: Path,
    args: argparse.Namespace,
    console: Console,
) -> tuple[list[dict[str, Any]], str]:
    rows = []
    for count in args.cameras:
        point = work / f"{variant.name.replace(':', '_')}_{count}"
        point.mkdir(parents=True)
        cameras = Cameras(clips, count)
        try:
            if variant.mode == "process":
                row = measure_baseline(model_path, cameras, point, args)
            else:
                row = measure_watcher(variant, model_path, cameras, point, args)
        finally:
            cameras.close()
            shutil.rmtree(point, ignore_errors=True)
        if "skip" in row:
            return rows, row["skip"]
        row = {
            "variant": variant.name,
            "model": variant.model,
            "precision": variant.precision,
            "mode": variant.mode,
            "cameras": count,
            **row,
        }
        rows.append(row)
        console.print(
            f"{variant.name} N={count}: p95 {row['latency_p95_ms']} ms, dropped "
            f"{row['dropped_pct_max']}%, CPU {row['cpu_pct']}%, others {row['others_cpu_pct']}%"
            f" -> {'held' if row['held'] else 'not held'}",
            highlight=False,
        )
        if not row["held"]:
            break
    return rows, ""


def figure(
    variants: list[Variant], rows: list[dict[str, Any]], skipped: dict[str, str], top: int
) -> list[dict[str, Any]]:
    baseline = next((v for v in variants if v.mode == "process"), None)
    held_by: dict[str, int] = {}
    for variant in variants:
        held = [r["cameras"] for r in rows if r["variant"] == variant.name and r["held"]]
        held_by[variant.name] = max(held, default=0)
    base = held_by.get(baseline.name) if baseline else None
    out = []
    for variant in variants:
        if variant.name in skipped:
            out.append(
                {"variant": variant.name, "cameras_held": None, "note": skipped[variant.name]}
            )
            continue
        held = held_by[variant.name]
        measured = [r for r in rows if r["variant"] == variant.name]
        entry: dict[str, Any] = {
            "variant": variant.name,
            "cameras_held": held,
            "at_least": bool(measured) and measured[-1]["held"] and held == top,
            "x_baseline": round(held / base, 2) if base else None,
        }
        if variant.precision == "int8" and variant.mode == "incremental":
            entry["target_met"] = held >= 16 and (base is None or held >= 4 * base)
        out.append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--cameras", type=int, nargs="+", default=None)
    parser.add_argument("--seconds", type=float, default=None, help="measured per point (20)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before (5)")
    parser.add_argument("--rate", type=float, default=4.0, help="windows/s (stream --rate)")
    parser.add_argument("--window", type=float, default=None, help="watcher window seconds")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="the watcher's torch threads")
    parser.add_argument("--quick", action="store_true", help="a 2-minute smoke run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    quick = args.quick
    args.variants = args.variants or (QUICK_VARIANTS if quick else DEFAULT_VARIANTS)
    args.cameras = sorted(set(args.cameras or ([2] if quick else [1, 2, 4, 8, 12, 16, 24])))
    args.seconds = args.seconds or (5.0 if quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if quick else 5.0)
    args.out = args.out or (
        CLIP_CACHE.parent / "watch_quick.json" if quick else RESULTS / "watch.json"
    )
    variants = [parse_variant(text) for text in dict.fromkeys(args.variants)]
    console = Console(width=140)
    load = os.getloadavg()
    began = time.monotonic()
    clips = camera_clips()
    shm = Path("/dev/shm")
    scratch = Path(
        tempfile.mkdtemp(prefix="resaction-watch-bench-", dir=shm if shm.is_dir() else None)
    )
    try:
        paths, skipped_by = prepare_models(variants, scratch)
        skipped = {v.name: why for v, why in skipped_by.items()}
        for name, why in skipped.items():
            console.print(f"{name}: {why}", highlight=False)
        rows: list[dict[str, Any]] = []
        for variant in variants:
            if variant.name in skipped:
                continue
            measured, why = sweep(variant, paths[variant], clips, scratch, args, console)
            rows.extend(measured)
            if why:
                skipped[variant.name] = why
                console.print(f"{variant.name}: {why}", highlight=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    add_ratios(rows)
    summary = figure(variants, rows, skipped, max(args.cameras))
    show(rows, summary, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "watch",
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "load_average_before": [round(value, 2) for value in load],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "minutes": round((time.monotonic() - began) / 60, 1),
        "clips": [clip.name for clip in clips],
        "camera": {"width": SIZE[0], "height": SIZE[1], "fps": FPS, "gop": GOP, "via": "udp"},
        "criterion": {"p95_ms_at_most": P95_LIMIT_MS, "dropped_pct_at_most": DROPPED_LIMIT_PCT},
        "settings": {key: getattr(args, key) for key in SETTINGS},
        "variants": [asdict(v) for v in variants],
        "rows": rows,
        "figure": summary,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}", highlight=False)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """CPU against the baseline's at the same number of cameras (where it was measured)."""
    baseline = {r["cameras"]: r for r in rows if r["mode"] == "process"}
    for row in rows:
        base = baseline.get(row["cameras"])
        row["cpu_x_baseline"] = (
            round(row["cpu_pct"] / base["cpu_pct"], 2) if base and base["cpu_pct"] else None
        )


def show(rows: list[dict[str, Any]], summary: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Watching N cameras (640x480 H.264 25 fps over UDP) on this machine")
    columns = ("variant", "N", "held", "p50 ms", "p95 ms", "dropped", "fps in", "windows/s")
    for column in (*columns, "CPU", "CPU x", "sender", "others"):
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for row in rows:
        table.add_row(
            row["variant"],
            str(row["cameras"]),
            "yes" if row["held"] else "no",
            num(row["latency_p50_ms"], ".0f"),
            num(row["latency_p95_ms"], ".0f"),
            f"{row['dropped_pct_max']:.1f}%",
            f"{row['fps_in_min']:.1f}",
            f"{row['windows_per_s']:.1f}",
            f"{row['cpu_pct']:.0f}%",
            num(row["cpu_x_baseline"], ".2f"),
            f"{row['sender_cpu_pct']:.0f}%",
            f"{row['others_cpu_pct']:.0f}%",
        )
    console.print(table)
    held = Table(title="Cameras held (p95 <= 1 s, no camera dropping > 10% of its frames)")
    for column in ("variant", "cameras held", "x baseline", "target", "note"):
        held.add_column(column, justify="left" if column in ("variant", "note") else "right")
    for entry in summary:
        count = entry["cameras_held"]
        target = entry.get("target_met")
        held.add_row(
            entry["variant"],
            "-" if count is None else f"{'>=' if entry.get('at_least') else ''}{count}",
            num(entry.get("x_baseline"), ".1f"),
            "" if target is None else ("met" if target else "not met"),
            entry.get("note", ""),
        )
    console.print(held)


if __name__ == "__main__":
    main()
