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

The code: ``watch_setup.py`` (constants, variants, clips, models, the sender) and
``watch_measure.py`` (one point measured: ``measure_watcher``, ``measure_baseline``,
``summarise``); this file sweeps, prints the tables, writes the JSON and plots p95 latency
against cameras, one line per variant, a point not held hollow: ``docs/figures/watch.png`` from
``benchmarks/results/watch.json``; a run writing another JSON plots next to it (``--plot``).

    python benchmarks/watch.py                # the default variants, N in 1 2 4 8 12 16 24
    python benchmarks/watch.py --quick        # 2-minute smoke run: 2 cameras, 5 s, 4 variants
    python benchmarks/watch.py --variants tsn:int8:incremental baseline:tsn --cameras 8 16 24
    python benchmarks/watch.py --plot-only    # redraw docs/figures/watch.png from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from watch_measure import measure_baseline, measure_watcher
from watch_setup import (
    CLIP_CACHE,
    DEFAULT_VARIANTS,
    DROPPED_LIMIT_PCT,
    FPS,
    GOP,
    P95_LIMIT_MS,
    QUICK_VARIANTS,
    RESULTS,
    ROOT,
    SIZE,
    Cameras,
    Variant,
    camera_clips,
    parse_variant,
    prepare_models,
)

DEFAULT_OUT = RESULTS / "watch.json"
FIGURE = ROOT / "docs" / "figures" / "watch.png"
SETTINGS = (
    "variants", "cameras", "seconds", "warmup", "rate", "window", "max_batch", "threads",
)  # fmt: skip


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


def parse_args() -> argparse.Namespace:
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
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help=f"the PNG drawn from --out (default: {FIGURE.relative_to(ROOT)} for "
        f"{DEFAULT_OUT.relative_to(ROOT)}, else --out's name with .png)",
    )
    parser.add_argument("--plot-only", action="store_true", help="plot --out's JSON, no run")
    args = parser.parse_args()
    quick = args.quick
    args.variants = args.variants or (QUICK_VARIANTS if quick else DEFAULT_VARIANTS)
    args.cameras = sorted(set(args.cameras or ([2] if quick else [1, 2, 4, 8, 12, 16, 24])))
    args.seconds = args.seconds or (5.0 if quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if quick else 5.0)
    args.out = args.out or (CLIP_CACHE.parent / "watch_quick.json" if quick else DEFAULT_OUT)
    if args.plot is None:
        default = args.out.resolve() == DEFAULT_OUT.resolve()
        args.plot = FIGURE if default else args.out.with_suffix(".png")
    return args


def main() -> None:
    args = parse_args()
    console = Console(width=140)
    if args.plot_only:
        saved = json.loads(args.out.read_text())
        console.print(f"wrote {plot(saved, args.plot)}", highlight=False)
        return
    variants = [parse_variant(text) for text in dict.fromkeys(args.variants)]
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
        "date": time.strftime("%Y-%m-%d"),
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
    console.print(f"wrote {plot(result, args.plot)}", highlight=False)


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


def plot(saved: dict[str, Any], path: Path) -> Path:
    """p95 capture-to-decision latency against the number of cameras, one line per variant; a
    point not held (p95 over the limit or a camera dropping too many frames) is drawn hollow."""
    from matplotlib.figure import Figure

    criterion = saved.get("criterion", {})
    limit = criterion.get("p95_ms_at_most", P95_LIMIT_MS)
    dropped = criterion.get("dropped_pct_at_most", DROPPED_LIMIT_PCT)
    rows = [r for r in saved["rows"] if r["latency_p95_ms"] is not None]
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    hollow = {"marker": "o", "markerfacecolor": "white", "linestyle": "none"}
    for index, name in enumerate(dict.fromkeys(r["variant"] for r in rows)):
        mine = sorted((r for r in rows if r["variant"] == name), key=lambda r: r["cameras"])
        colour = f"C{index % 10}"
        label = f"{name} (a stream process per camera)" if name.startswith("baseline") else name
        xs, ys = [r["cameras"] for r in mine], [r["latency_p95_ms"] for r in mine]
        axes.plot(xs, ys, color=colour, marker="o", markersize=6, linewidth=1.5, label=label)
        lost = [r for r in mine if not r["held"]]
        xs, ys = [r["cameras"] for r in lost], [r["latency_p95_ms"] for r in lost]
        axes.plot(xs, ys, color=colour, markersize=6, **hollow)
    note = f"not held (p95 > {limit / 1000:g} s or > {dropped:g}% of frames dropped)"
    axes.plot([], [], color="gray", markersize=6, label=note, **hollow)
    axes.axhline(
        limit, color="black", linestyle="--", linewidth=1, label=f"{limit / 1000:g} s limit"
    )
    axes.set_xticks(sorted({r["cameras"] for r in rows}))
    top = max([limit, *(r["latency_p95_ms"] for r in rows)])
    axes.set_ylim(0, 1.35 * top)  # headroom for the legend
    axes.set_xlabel("cameras (640x480 H.264, 25 fps, over UDP)")
    axes.set_ylabel("p95 capture-to-decision latency (ms)")
    cores = saved.get("machine", {}).get("cores")
    title = "Cameras one box watches" + (f": {cores}-core machine" if cores else "")
    if saved.get("date"):
        title += f", {saved['date']}"
    axes.set_title(title)
    axes.grid(True, linewidth=0.4, alpha=0.5)
    axes.legend(fontsize=8, loc="upper left", ncols=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


if __name__ == "__main__":
    main()
