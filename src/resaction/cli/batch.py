"""``resaction batch``: score a whole video archive on Ray (or local processes), resumably."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from resaction.cli.app import app, console, err_console
from resaction.cli.options import PROGRESS_OPTION, flags_as

FAILURES_SHOWN = 10


@app.command()
def batch(
    source: str = typer.Argument(
        ..., help="A folder of videos (searched recursively), a CSV or a text list of videos."
    ),
    model: Path = typer.Option(..., "--model", "-m", help="A checkpoint or an .onnx file."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Results folder: results.jsonl, failures.jsonl, batch.json."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Join a Ray cluster: auto, HOST:PORT or ray://HOST:10001 "
        "(default: start Ray on this machine, loopback only).",
    ),
    num_workers: int | None = typer.Option(
        None,
        "--num-workers",
        "-n",
        min=1,
        help="Model workers (default: 1 per GPU, else CPUs/2; --local: 1 per CPU).",
    ),
    mode: str = typer.Option("predict", "--mode", help="predict (top-k) or timeline (segments)."),
    local: bool = typer.Option(
        False, "--local", help="Use processes on this machine instead of Ray."
    ),
    topk: int = typer.Option(5, "--topk", "-k", min=1, help="Labels per video (predict mode)."),
    stride: int = typer.Option(8, "--stride", min=1, help="Frames between windows (timeline)."),
    threshold: float = typer.Option(
        0.5, "--threshold", help="Probability a segment needs (timeline mode)."
    ),
    num_cpus: int | None = typer.Option(
        None, "--num-cpus", min=1, help="CPUs of a local Ray instance (default: all)."
    ),
    retry_failures: bool = typer.Option(
        False, "--retry-failures", help="Try the videos in failures.jsonl again."
    ),
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Score every video of an archive; run it again to go on after a stop or a crash."""
    flags = dict(locals())
    from resaction.inference.batch import BatchOptions, run_batch

    timeline = {"stride": stride, "threshold": threshold} if mode == "timeline" else {}
    options = flags_as(BatchOptions, flags, timeline=timeline)
    summary = run_batch(source, model, out, options)
    table = Table(show_header=False, box=None)
    table.add_row("videos", str(summary.total))
    table.add_row("already done", str(summary.already_done))
    table.add_row("scored now", str(summary.scored))
    table.add_row("failed now", str(summary.failed))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("videos/s", f"{summary.videos_per_s:.2f}")
    gpus = f", {summary.gpus} GPU" if summary.gpus else ""
    table.add_row("workers", f"{summary.workers} ({summary.engine}{gpus})")
    console.print(table)
    for row in summary.failures[:FAILURES_SHOWN]:
        reason = str(row["reason"])
        where = "" if row["path"] in reason else f"{row['path']}: "
        err_console.print(f"failed {where}{reason}", highlight=False, markup=False)
    if len(summary.failures) > FAILURES_SHOWN:
        err_console.print(f"... {len(summary.failures) - FAILURES_SHOWN} more failures")
    console.print(f"results in {summary.results_path}; failures in {summary.failures_path}")
