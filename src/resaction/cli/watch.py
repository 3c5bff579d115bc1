"""``resaction watch``: one process watching every camera of a cameras file."""

from __future__ import annotations

import functools
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from resaction.cli.app import app, console, err_console
from resaction.cli.options import flags_as

if TYPE_CHECKING:
    from resaction.monitor.config import WatchConfig
    from resaction.monitor.watcher import WatchOptions


def _print_message(message: dict[str, Any], shown: Console = console) -> None:
    if message["type"] == "camera":
        if message["state"] == "stopped":
            return
        colour = "green" if message["state"] == "live" else "yellow"
        err_console.print(
            f"[{colour}]{message['camera']}: {message['state']}[/] {message['message']}",
            highlight=False,
            soft_wrap=True,
        )
        return
    if message["state"] == "open":
        shown.print(
            f"[bold red]event[/] {message['camera']}: {message['label']} from "
            f"{message['stream_start']:.1f} s (score {message['peak']:.2f})  {message['id']}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        clip = message.get("clip") or "no clip"
        reason = f" ({message['reason']})" if message.get("reason") else ""
        shown.print(
            f"[bold]ended[/] {message['camera']}: {message['label']} "
            f"{message['stream_start']:.1f}-{message['stream_end']:.1f} s, peak "
            f"{message['peak']:.2f}, {clip}{reason}  {message['id']}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def watch(
    cameras: Path = typer.Argument(..., help="The cameras file (YAML); see docs/monitor.md."),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-c", help="A resaction checkpoint (.pt) or an exported .onnx file."
    ),
    out: Path = typer.Option(
        Path("watch"), "--out", help="Folder for the event log, events.jsonl, snapshots, clips."
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics."
    ),
    duration: float | None = typer.Option(
        None,
        "--duration",
        min=0.0,
        help="Stop after this many seconds (default: run until "
        "stopped, or until every file source has ended).",
    ),
    max_batch: int = typer.Option(32, "--max-batch", min=1, help="Most units in one batch."),
    rate: float = typer.Option(
        4.0,
        "--rate",
        min=0.1,
        help="Windows a second per camera for models that recompute "
        "whole windows (3D models); 2D-trunk models score every new frame.",
    ),
    incremental: bool = typer.Option(
        True, "--incremental/--recompute", help="Cache per-frame outputs where the model allows."
    ),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Threads for the model."),
    ray: str | None = typer.Option(
        None,
        "--ray",
        help="Watch on Ray actors, a group of cameras each: local (a new instance on this "
        "machine, loopback only), auto, HOST:PORT or ray://HOST:10001.",
    ),
    groups: int | None = typer.Option(
        None,
        "--groups",
        min=1,
        help="With --ray: groups (actors) the cameras are dealt into "
        "round robin (default: one per Ray node).",
    ),
    cameras_per_actor: int | None = typer.Option(
        None, "--cameras-per-actor", min=1, help="With --ray: at most this many cameras a group."
    ),
) -> None:
    """Watch many cameras: events with snapshots and clips, delivered to every sink."""
    flags = dict(locals())
    import torch

    from resaction.monitor.config import load_watch_config
    from resaction.monitor.watcher import Watcher, WatchOptions
    from resaction.runtime.loading import load_model

    config = load_watch_config(cameras)
    options = flags_as(WatchOptions, flags)
    shown = err_console if "stdout" in config.sinks else console  # stdout carries the events
    if ray is not None:
        _watch_on_ray(config, checkpoint, options, ray, groups, cameras_per_actor, threads, shown)
        return
    if threads:
        torch.set_num_threads(threads)
    model = load_model(checkpoint)
    watcher = Watcher(config, model, options)
    watcher.subscribe(functools.partial(_print_message, shown=shown))
    signal.signal(signal.SIGTERM, lambda *_: watcher.request_stop())
    how = "incremental" if watcher.scorer.incremental else "window recompute"
    shown.print(
        f"watching {len(config.cameras)} camera(s) with {model.model_name} ({how}); "
        f"events in {out}",
        highlight=False,
    )
    shown.print(_threshold_source(model.extra), highlight=False)
    if model.spec.window_s:
        shown.print(
            f"windows: {model.spec.window_s:.2f} s, the span the model's training clips covered "
            "(a camera's `window` overrides it)",
            highlight=False,
        )
    summary = watcher.run()
    _print_summary(summary, shown)


def _threshold_source(extra: dict[str, Any]) -> str:
    """Where the thresholds come from, for the user to read before the first event."""
    calibrated = extra.get("thresholds") or {}
    if not calibrated:
        return "thresholds: the cameras file's, else 0.5 (the model is not calibrated)"
    shown = ", ".join(f"{label} {value:.2f}" for label, value in calibrated.items())
    return f"thresholds: the cameras file's, else calibrated in the model file ({shown})"


def _print_summary(summary: dict[str, Any], shown: Console = console) -> None:
    """The cameras table (with each camera's group under --ray) and what is left to deliver."""
    grouped = any("group" in camera for camera in summary["cameras"])
    columns = ["camera", "state", "frames", "dropped", "reconnects", "fps in", "label"]
    table = Table(title="watch summary")
    for column in (["group"] if grouped else []) + columns:
        table.add_column(
            column, justify="left" if column in ("group", "camera", "state", "label") else "right"
        )
    for camera in summary["cameras"]:
        table.add_row(
            *([camera["group"]] if grouped else []),
            camera["name"],
            camera["state"],
            str(camera["frames"]),
            str(camera["dropped"]),
            str(camera["reconnects"]),
            f"{camera['input_fps']:.1f}",
            camera["label"] or "-",
        )
    shown.print(table)
    if not summary["delivered_all"]:
        err_console.print(
            "[yellow]some events are not delivered yet; the next run delivers them[/]"
        )


def _watch_on_ray(
    config: WatchConfig,
    checkpoint: Path,
    options: WatchOptions,
    address: str,
    groups: int | None,
    cameras_per_actor: int | None,
    threads: int | None,
    shown: Console,
) -> None:
    """``watch --ray``: the cameras in groups on Ray actors; this process only drives them."""
    from resaction.monitor.cluster import Cluster, ClusterOptions

    cluster = Cluster(
        config,
        checkpoint,
        ClusterOptions(
            address=None if address == "local" else address,
            groups=groups,
            cameras_per_actor=cameras_per_actor,
            threads=threads or 1,
            watch=options,
        ),
        on_note=lambda line: err_console.print(line, highlight=False),
        on_message=functools.partial(_print_message, shown=shown),
    )
    shown.print(
        f"watching {len(config.cameras)} camera(s) on Ray; events in {options.out}/ray/<group>",
        highlight=False,
    )
    summary = cluster.run()
    _print_summary(summary, shown)
    for group in summary["groups"]:
        if group.get("error"):
            err_console.print(f"[yellow]{group['group']}: {group['error']}[/]", highlight=False)
