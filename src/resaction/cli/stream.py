"""``resaction stream``: live labels for a camera, a network stream or a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from resaction.cli.app import app, console, err_console
from resaction.cli.options import (
    ALARM_BACKGROUND_OPTION,
    CHECKPOINT_OPTION,
    CLASSES_OPTION,
    COMPILE_OPTION,
    MODEL_OPTION,
    WEIGHTS_OPTION,
    WINDOW_OPTION,
    WINDOW_SECONDS_OPTION,
    flags_as,
)
from resaction.cli.predict import load_predictor

_STATS_LABELS = {
    "input_fps": "input fps",
    "windows_per_s": "windows/s",
    "latency_p50_ms": "latency p50 (ms)",
    "latency_p95_ms": "latency p95 (ms)",
    "dropped_frames": "dropped frames",
    "frames_read": "frames read",
    "windows": "windows",
    "label_changes": "label changes",
    "reconnects": "reconnects",
    "dropped_units": "frames the model had no time for",
    "incremental": "each frame through the model once",
    "seconds": "seconds",
    "stopped": "stopped",
}


def _usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the host's count, where known)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _print_event(event: dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "label":
        console.print(
            f"[bold]{event['time']:9.2f} s[/]  {event['label']}  {event['confidence']:.0%}"
            f"  [dim](latency {event['latency_ms']:.0f} ms)[/]",
            highlight=False,
        )
    elif kind == "start":
        window = event.get("window_s")
        spread = f", windows of {window:.2f} s as in training" if window else ""
        console.print(
            f"streaming {event['source']} ({event['fps']:.1f} fps, every {event['step']} frame"
            f"{spread}); alarms: {event['alarms']}",
            highlight=False,
        )
    elif kind in ("alarm_open", "alarm_close"):
        verb = "ALARM" if kind == "alarm_open" else "ended"
        console.print(
            f"[bold red]{event['time']:9.2f} s  {verb} {event['label']}[/] "
            f"({event['start']:.2f}-{event['end']:.2f} s, peak {event['peak']:.0%})",
            highlight=False,
        )
    elif kind in ("lost", "reconnecting", "reconnected", "gave_up"):
        err_console.print(f"[yellow]{kind}[/]: {event['message']}", highlight=False)
    elif kind == "too_short":
        err_console.print(f"warning: {event['message']}", highlight=False, soft_wrap=True)
    elif kind == "summary":
        _print_summary(event)
    elif kind == "stats":
        console.print(
            f"[dim]{event['input_fps']:.1f} fps in, {event['windows_per_s']:.1f} windows/s, "
            f"latency p50 {event['latency_p50_ms'] or 0:.0f} ms p95 "
            f"{event['latency_p95_ms'] or 0:.0f} ms, {event['dropped_frames']} dropped[/]",
            highlight=False,
        )


@app.command()
def stream(
    source: str = typer.Argument(
        ..., help="A webcam index (0), an rtsp/http/udp URL, or a video file."
    ),
    checkpoint: Path | None = CHECKPOINT_OPTION,
    model: str | None = MODEL_OPTION,
    weights: str | None = WEIGHTS_OPTION,
    classes: Path | None = CLASSES_OPTION,
    realtime: bool = typer.Option(
        False,
        "--realtime",
        help="Play a file at its own frame rate (default: as fast as possible).",
    ),
    rate: float = typer.Option(4.0, "--rate", help="Windows per second to classify."),
    smooth: int = typer.Option(5, "--smooth", min=1, help="Predictions averaged for the label."),
    window: int | None = WINDOW_OPTION,
    window_seconds: float | None = WINDOW_SECONDS_OPTION,
    background: str | None = ALARM_BACKGROUND_OPTION,
    events: Path | None = typer.Option(
        None, "--events", help="Write label changes, alarms and source events as JSON lines."
    ),
    log_windows: bool = typer.Option(
        False, "--log-windows", help="Also write every window's prediction to --events."
    ),
    annotate: Path | None = typer.Option(
        None, "--annotate", help="Write the frames seen with the current label drawn on them."
    ),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop after this many seconds of input."
    ),
    reconnect_timeout: float = typer.Option(
        30.0, "--reconnect-timeout", min=0.0, help="Give up on a lost stream after this long."
    ),
    stats_every: float = typer.Option(
        5.0, "--stats-every", min=0.0, help="Print live statistics this often (0: only at the end)."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="Threads for the model (default: all cores but one, "
        "which the reader needs to keep up).",
    ),
    compile: bool = COMPILE_OPTION,
) -> None:
    """Label a live source as it plays: label changes, events, statistics, annotated video."""
    flags = dict(locals())
    import torch

    from resaction.inference.stream import StreamConfig, run_stream

    torch.set_num_threads(threads or max(1, _usable_cpus() - 1))

    config = flags_as(StreamConfig, flags, window_s=window_seconds)
    config.check()
    predictor = load_predictor(checkpoint, model, weights, classes=classes, compile=compile)
    run_stream(predictor, source, config, on_event=_print_event)


def _print_summary(summary: dict[str, Any]) -> None:
    """The statistics table, printed as the run ends however it ends (a source given up on
    too: the error line follows it)."""
    table = Table(title="stream summary", show_header=False)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, label in _STATS_LABELS.items():
        value = summary.get(key)
        table.add_row(label, "-" if value is None else str(value))
    console.print(table)
