"""``resaction calibrate`` and ``resaction evaluate-events``: alarms measured as events, and
thresholds set by a false-alarm budget."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from resaction.cli.app import app, console, err_console
from resaction.cli.options import (
    ALARM_BACKGROUND_OPTION,
    CLASSES_OPTION,
    PROGRESS_OPTION,
    SKIP_BAD_ROWS_OPTION,
    WINDOW_SECONDS_OPTION,
)
from resaction.detection.decisions import DEFAULT_WINDOW_RATE

DATA_HELP = (
    "Videos annotated with segments: a CSV video,start,end,label, a Label Studio JSON export "
    "or a CVAT video XML."
)


@app.command()
def calibrate(
    checkpoint: Path = typer.Argument(
        ..., help="A checkpoint (.pt) or exported .onnx; the thresholds are written into it."
    ),
    data: Path = typer.Option(..., "--data", "-d", help=DATA_HELP),
    false_alarms_per_hour: float | None = typer.Option(
        None, "--false-alarms-per-hour", help="The budget: false alarms per hour of footage."
    ),
    precision: float | None = typer.Option(
        None, "--precision", help="Instead of a budget: the share of alarms that must be true."
    ),
    background: str | None = ALARM_BACKGROUND_OPTION,
    window_seconds: float | None = WINDOW_SECONDS_OPTION,
    rate: float = typer.Option(DEFAULT_WINDOW_RATE, "--rate", help="Windows per second."),
    smooth: int | None = typer.Option(None, "--smooth", help="Windows averaged (default 3)."),
    min_duration: float | None = typer.Option(
        None, "--min-duration", help="Seconds above threshold before an alarm (default 0.5)."
    ),
    min_gap: float | None = typer.Option(
        None, "--min-gap", help="Seconds below before an event ends (default 1)."
    ),
    cooldown: float | None = typer.Option(
        None, "--cooldown", help="Quiet seconds after an event (default 5)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Where the sweep and plot go (default: CKPT_calibration/ beside it).",
    ),
    write: bool = typer.Option(
        True, "--write/--dry-run", help="Write the thresholds into the model file."
    ),
    classes: Path | None = CLASSES_OPTION,
    skip_bad_rows: bool = SKIP_BAD_ROWS_OPTION,
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Per class, the threshold with the highest event recall within a false-alarm budget."""
    from resaction.inference.calibrate import Target, calibrate, write_calibration
    from resaction.inference.truth import read_truth
    from resaction.outputs import check_output_dir

    target = Target(false_alarms_per_hour, precision)
    out_dir = check_output_dir(out or checkpoint.parent / f"{checkpoint.stem}_calibration")
    predictor = _predictor(checkpoint, classes)
    videos, truth = read_truth(data, predictor.classes, skip_bad_rows=skip_bad_rows)
    decision = {
        k: v
        for k, v in {
            "smooth": smooth,
            "min_duration": min_duration,
            "min_gap": min_gap,
            "cooldown": cooldown,
        }.items()
        if v is not None
    }
    with _video_progress(progress, len(videos)) as on_video:
        result = calibrate(
            predictor,
            videos,
            truth,
            target,
            decision=decision,
            window_s=window_seconds,
            rate=rate,
            background=background,
            on_video=on_video,
        )
    files = write_calibration(result, out_dir)
    _say_window(result.record.get("window_s"), window_seconds)
    _print_operating_points(result.record, target.describe())
    for video, reason in result.skipped:
        console.print(f"[yellow]skipped[/] {video}: {reason}")
    points, hours = result.record["classes"], result.record["hours"]
    doubts = [line for label, p in points.items() for line in target.doubts(label, p, hours)]
    for line in doubts:
        err_console.print(f"warning: {line}", highlight=False, soft_wrap=True)
    if write:
        _write_into(checkpoint, result)
        note = " (see the warnings)" if doubts else ""
        console.print(f"thresholds written into {checkpoint}{note}")
    for name, path in files.items():
        console.print(f"  {name}: {path}")


@app.command("evaluate-events")
def evaluate_events(
    data: Path = typer.Option(..., "--data", "-d", help=DATA_HELP),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="A checkpoint or .onnx."),
    out: Path = typer.Option(Path("events_eval"), "--out", "-o", help="Output folder."),
    background: str | None = ALARM_BACKGROUND_OPTION,
    window_seconds: float | None = WINDOW_SECONDS_OPTION,
    rate: float = typer.Option(DEFAULT_WINDOW_RATE, "--rate", help="Windows per second."),
    classes: Path | None = CLASSES_OPTION,
    skip_bad_rows: bool = SKIP_BAD_ROWS_OPTION,
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Alarms on long annotated videos measured as events: recall, false alarms per hour, mAP."""
    from resaction.inference.calibrate import score_videos
    from resaction.inference.event_eval import write_events
    from resaction.inference.timeline import TimelineConfig
    from resaction.inference.truth import read_truth
    from resaction.outputs import check_output_dir

    check_output_dir(out)
    config = TimelineConfig(window_s=window_seconds, rate=rate, background=background)
    config.check()
    predictor = _predictor(checkpoint, classes)
    videos, truth = read_truth(data, predictor.classes, skip_bad_rows=skip_bad_rows)
    with _video_progress(progress, len(videos)) as on_video:
        timelines, skipped = score_videos(predictor, videos, config, on_video=on_video)
    if not timelines:
        raise typer.BadParameter("no video of --data could be read")
    path = write_events(timelines, truth, out, skipped)
    result = json.loads(path.read_text())
    _say_window(result["window_s"], window_seconds)
    console.print(f"alarms: {result['alarm_source']}")
    print_event_metrics(result)
    for video, reason in skipped:
        console.print(f"[yellow]skipped[/] {video}: {reason}")
    console.print(f"  events: {path}")


def print_event_metrics(result: dict[str, Any]) -> None:
    """The table a person reads: per class incidents caught, false alarms, precision, AP."""
    hours = result["hours"]
    table = Table(title=f"alarms over {hours:.2f} h of footage, {result['videos']} video(s)")
    columns = ("class", "incidents", "alarms", "caught", "precision", "false/h [95%]", "AP")
    for column in columns:
        table.add_column(column, justify="left" if column == "class" else "right")
    ap = result["ap"]["classes"]
    for label, counts in result["budget"].items():
        if label == "overall":
            continue
        low, high = counts["false_alarms_per_hour_95"]
        mean_ap = ap[label]["ap_mean"]
        table.add_row(
            label,
            str(counts["truth"]),
            str(counts["alarms"]),
            f"{counts['recall']:.0%} ({counts['caught']})",
            f"{counts['precision']:.0%}",
            f"{counts['false_alarms_per_hour']:.2f} [{low:.2f}, {high:.2f}]",
            "-" if mean_ap is None else f"{mean_ap:.3f}",
        )
    console.print(table)
    console.print(f"[dim]{result['protocol']['budget']}[/]")
    delay = result["alarms"]["alarm_delay"]
    frames = result["frames"]
    summary = f"mAP (tIoU 0.3:0.1:0.7) {_number(result['ap']['map'])}"
    summary += f", frame accuracy {frames['accuracy']:.1%}"
    if delay["count"]:
        summary += f", alarm delay median {delay['median']:.2f} s"
    console.print(summary)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _predictor(path: Path, classes: Path | None) -> Any:
    from resaction.cli.predict import load_predictor

    return load_predictor(path, None, None, classes=classes)


def _say_window(used: float | None, given: float | None) -> None:
    if used is None:
        console.print("window: the model's clip length at its own frame step")
    elif given is None:
        console.print(f"window: {used:.2f} s, the span the model's training clips covered")
    else:
        console.print(f"window: {used:.2f} s (--window-seconds)")


def _print_operating_points(record: dict[str, Any], target: str) -> None:
    table = Table(title=f"operating points: {target}, {record['hours']:.2f} h of footage")
    for column in ("class", "threshold", "recall", "precision", "false alarms/h [95%]"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label, point in record["classes"].items():
        low, high = point["false_alarms_per_hour_95"]
        table.add_row(
            label,
            f"{point['threshold']:.2f}",
            f"{point['recall']:.0%} ({point['caught']}/{point['truth']})",
            f"{point['precision']:.0%}",
            f"{point['false_alarms_per_hour']:.2f} [{low:.2f}, {high:.2f}]",
        )
    console.print(table)


def _write_into(path: Path, result: Any) -> None:
    values = {
        "thresholds": result.thresholds,
        "calibration": result.record,
        "background": result.record.get("background"),
    }
    if path.suffix.lower() == ".onnx":
        from resaction.deploy.export import write_metadata

        write_metadata(path, values)
    else:
        from resaction.models.checkpoint import update_checkpoint

        update_checkpoint(path, values)


@contextmanager
def _video_progress(enabled: bool, total: int) -> Iterator[Callable[[int, int, str], None]]:
    """A live bar over the videos on a terminal (one log line per step otherwise)."""
    from resaction.progress import progress_bar

    bar = progress_bar(total=total, desc="videos", unit="video", disable=not enabled)
    try:
        yield lambda number, total, video: bar.update(1)
    finally:
        bar.close()
