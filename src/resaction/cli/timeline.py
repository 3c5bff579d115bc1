"""``resaction timeline``: what happens when in one video (segments, plot, annotated copy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from resaction.cli.app import app, console
from resaction.cli.options import (
    ALARM_BACKGROUND_OPTION,
    CHECKPOINT_OPTION,
    CLASSES_OPTION,
    COMPILE_OPTION,
    MODEL_OPTION,
    PROGRESS_OPTION,
    WEIGHTS_OPTION,
    WINDOW_OPTION,
    WINDOW_SECONDS_OPTION,
    flags_as,
)
from resaction.cli.predict import load_predictor
from resaction.errors import ConfigError


@app.command()
def timeline(
    video: Path = typer.Argument(..., help="The video to scan."),
    checkpoint: Path | None = CHECKPOINT_OPTION,
    model: str | None = MODEL_OPTION,
    weights: str | None = WEIGHTS_OPTION,
    classes: Path | None = CLASSES_OPTION,
    window: int | None = WINDOW_OPTION,
    window_seconds: float | None = WINDOW_SECONDS_OPTION,
    stride: int | None = typer.Option(
        None, "--stride", min=1, help="Source frames between windows (default: see --rate)."
    ),
    rate: float | None = typer.Option(
        None, "--rate", help="Windows per second (default: one window per unit, else 8 frames)."
    ),
    background: str | None = ALARM_BACKGROUND_OPTION,
    truth: Path | None = typer.Option(
        None, "--truth", help="Annotated segments of this video: measure the alarms as events."
    ),
    export_clips: Path | None = typer.Option(
        None,
        "--export-clips",
        help="Cut every alarm (or segment: --clips-of) into this folder, remuxed, not re-encoded.",
    ),
    clips_of: str = typer.Option(
        "alarms", "--clips-of", help="What --export-clips cuts: alarms (alarms.json) or segments."
    ),
    smooth: str = typer.Option(
        "mean", "--smooth", help="Temporal smoothing: mean (centred), ema (causal) or none."
    ),
    smooth_window: int = typer.Option(5, "--smooth-window", min=1, help="Windows smoothed over."),
    threshold: float = typer.Option(
        0.5, "--threshold", min=0.0, max=1.0, help="Probability a segment's label must reach."
    ),
    min_duration: float = typer.Option(
        1.0, "--min-duration", min=0.0, help="Drop segments shorter than this (seconds)."
    ),
    merge_gap: float = typer.Option(
        0.5, "--merge-gap", min=0.0, help="Join segments of one label this close (seconds)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: <video name>_timeline/ here)."
    ),
    annotate: Path | None = typer.Option(
        None, "--annotate", help="Also write the video with the label drawn on every frame."
    ),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Windows per pass."),
    incremental: bool = typer.Option(
        True,
        "--incremental/--recompute",
        help="Run each frame through a 2D-trunk model once, shared by the windows that "
        "overlap it (TSN, difference models, LRCN); same scores, less work.",
    ),
    compile: bool = COMPILE_OPTION,
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Sliding-window labels over a whole video: segments (JSON, CSV), a plot, an annotated copy."""
    flags = dict(locals())
    from resaction.cli.alarms import print_event_metrics
    from resaction.inference.annotate import annotate_timeline
    from resaction.inference.clips import check_clips_of, cut_segments
    from resaction.inference.event_eval import video_key, write_events
    from resaction.inference.timeline import TimelineConfig, run_timeline, write_timeline
    from resaction.inference.truth import read_truth
    from resaction.outputs import check_output_dir

    config = flags_as(TimelineConfig, flags, window_s=window_seconds)
    config.check()
    out_dir = check_output_dir(out if out is not None else Path(f"{video.stem}_timeline"))
    if export_clips is not None:
        check_output_dir(export_clips, "--export-clips")
        check_clips_of(clips_of)
    predictor = load_predictor(checkpoint, model, weights, classes=classes, compile=compile)
    facts = read_truth(truth, predictor.classes) if truth is not None else None
    if facts is not None and video_key(video) not in facts[1]:
        named = ", ".join(path.name for path in facts[0][:3]) + ", ..." * (len(facts[0]) > 3)
        raise ConfigError(f"--truth {truth} has no segments of {video} (it annotates {named})")
    result = run_timeline(predictor, video, config, progress=progress)
    files = write_timeline(result, out_dir)
    if facts is not None:
        files["events"] = write_events([result], facts[1], out_dir)
    if export_clips is not None:
        files["clips"] = cut_segments(result, video, export_clips, of=clips_of)
    if annotate is not None:
        files["annotated"] = annotate_timeline(result, video, annotate, progress=progress)
    _print_segments(result, video)
    _say_alarms(result, given=window_seconds is not None)
    if facts is not None:
        print_event_metrics(json.loads(files["events"].read_text()))
    for name, path in files.items():
        console.print(f"  {name}: {path}")


def _print_segments(result: Any, video: Path) -> None:
    table = Table(title=f"{video.name}: {len(result.segments)} segments")
    for column in ("label", "start", "end", "conf"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for segment in result.segments:
        table.add_row(
            segment.label, f"{segment.start:.2f}", f"{segment.end:.2f}", f"{segment.confidence:.1%}"
        )
    console.print(table)
    console.print(
        f"{len(result.starts)} windows over {result.duration:.1f} s in {result.seconds:.1f} s "
        f"({result.realtime_factor:.1f}x real time)"
    )
    if skipped := result.extra.get("windows_skipped"):
        console.print(
            f"{skipped} window(s) left out: a damaged stretch of the video could not be decoded"
        )


def _say_alarms(result: Any, given: bool) -> None:
    window = result.extra.get("window_s")
    if window is not None:
        why = "--window-seconds" if given else "the span the model's training clips covered"
        console.print(f"windows cover {window:.2f} s ({why})")
    console.print(f"{len(result.alarms)} alarm(s); {result.extra.get('alarm_source')}")
    if "not calibrated" in str(result.extra.get("alarm_source")) and result.config.threshold != 0.5:
        console.print("(--threshold sets where segments are cut; alarms use their own thresholds)")
    if result.alarms and result.extra.get("background") is None:
        console.print(
            "every class raises alarms: if one means nothing is happening, pass --background CLASS"
        )
    for alarm in result.alarms:
        console.print(
            f"  {alarm.label}: {alarm.start:.2f}-{alarm.end:.2f} s, peak {alarm.peak:.0%}, "
            f"alarm at {alarm.alarm:.2f} s"
        )
