"""``resaction probe``: check that videos decode and how fast, per dataset folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from resaction.cli.app import app, console, err_console
from resaction.cli.options import PROGRESS_OPTION

if TYPE_CHECKING:
    from resaction.io.probe import DatasetSummary

MATROSKA_SUFFIXES = frozenset({".mkv", ".mk3d", ".webm"})


def _counts(counts: dict[str, int], shown: int = 3) -> str:
    items = [f"{name} ×{n}" for name, n in list(counts.items())[:shown]]
    if len(counts) > shown:
        items.append(f"+{len(counts) - shown} more")
    return ", ".join(items) or "-"


def _span(bounds: tuple[float, float] | None, digits: int = 0) -> str:
    if bounds is None:
        return "-"
    low, high = (f"{value:.{digits}f}" for value in bounds)
    return low if low == high else f"{low}–{high}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _remux_command(path: Path) -> str:
    """The stream copy that gives ``path`` timestamps to seek by: into MKV, which stores each
    picture's own, or from an MKV into MP4, which stores decode times beside them (an MKV whose
    pts were written in decode order has neither)."""
    target = "out.mp4" if path.suffix.lower() in MATROSKA_SUFFIXES else "out.mkv"
    return f"ffmpeg -i {path.name} -c copy {target}"


@app.command()
def probe(
    paths: list[Path] = typer.Argument(..., help="Video files and/or folders (searched deeply)."),
    clips: int = typer.Option(10, "--clips", min=1, help="Random clips decoded per video."),
    clip_len: int = typer.Option(16, "--clip-len", min=1, help="Frames per clip."),
    short_side: int = typer.Option(128, "--short-side", min=1, help="Resize short side to this."),
    seed: int = typer.Option(0, "--seed", help="Seed for the clip positions."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write results to this file."),
    progress: bool = PROGRESS_OPTION,
    verify: bool = typer.Option(
        False, "--verify", help="Also check that random reads equal a sequential decode."
    ),
) -> None:
    """Decode random clips from every video and print, per dataset, the codecs, sizes, frame
    rates, lengths, how seeks find frames and decode time per clip. Unreadable files are listed
    and skipped; with --verify, files whose random reads differ from a sequential decode too."""
    from resaction.errors import DatasetError, VideoError
    from resaction.io.probe import find_videos, probe_videos, summarise
    from resaction.outputs import check_output_file

    if json_out is not None:
        check_output_file(json_out, "--json")
    videos = find_videos(paths)
    if not videos:
        raise DatasetError(f"no video files found in {', '.join(map(str, paths))}")
    single_file = len(paths) == 1 and not paths[0].is_dir()
    bar = Progress(
        TextColumn("probing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not progress,
    )

    def report(result) -> None:
        bar.advance(task)
        if result.error and not single_file:
            bar.console.print(f"unreadable: {result.error}", highlight=False, soft_wrap=True)
        elif result.problem:
            bar.console.print(result.problem, highlight=False, soft_wrap=True)
        elif result.exact is False:
            message = f"{result.path}: random reads differ from a sequential decode"
            bar.console.print(message, highlight=False, soft_wrap=True)
        elif result.damaged:
            message = (
                f"{result.path}: {result.damaged} picture(s) damaged in the file itself (the "
                "decoder concealed lost data; their pixels depend on the decoder's threads and "
                "history, so they were not compared)"
            )
            bar.console.print(message, highlight=False, soft_wrap=True)
        elif result.seek_mode and "from start" in result.seek_mode:
            message = (
                f"{result.path}: its timestamps cannot be trusted after a seek, so every read "
                "demuxes from the start (exact, slower on long files); for fast random access "
                f"remux it: {_remux_command(Path(result.path))}"
            )
            bar.console.print(message, highlight=False, soft_wrap=True)

    with bar:
        task = bar.add_task("probe", total=len(videos))
        options = {"clips": clips, "clip_len": clip_len, "short_side": short_side, "seed": seed}
        options["verify"] = verify
        results = probe_videos(videos, on_result=report, **options)
    if single_file and results[0].error:
        raise VideoError(results[0].error)

    summaries = summarise(results)
    title = f"{len(results)} videos; {clips} clips of {clip_len} frames each at {short_side} px"
    console.print(_summary_table(summaries, title, verify))

    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "settings": options,
            "datasets": [summary.to_dict() for summary in summaries],
            "videos": [result.to_dict() for result in results],
        }
        json_out.write_text(json.dumps(payload, indent=2))
        console.print(f"results: {json_out}", highlight=False, soft_wrap=True)


def _summary_table(summaries: list[DatasetSummary], title: str, verify: bool) -> Table:
    """One row per dataset: codecs, seeks, sizes, rates, lengths and decode times."""
    table = Table(title=title)
    for column, justify in [
        ("dataset", "left"),
        ("videos", "right"),
        ("unreadable", "right"),
        ("codecs", "left"),
        ("seek by", "left"),
        *([("exact", "right")] if verify else []),
        ("resolutions", "left"),
        ("fps", "right"),
        ("frames", "right"),
        ("open ms", "right"),
        ("ms/clip", "right"),
    ]:
        table.add_column(column, justify=justify)
    for summary in summaries:
        table.add_row(
            summary.name,
            str(summary.videos),
            str(summary.unreadable),
            _counts(summary.codecs),
            _counts(summary.seek_modes),
            *([f"{summary.exact}/{summary.verified}"] if verify else []),
            _counts(summary.resolutions),
            _span(summary.fps_range, 2),
            _span(summary.frames_range),
            _ms(summary.open_ms),
            _ms(summary.clip_ms),
        )
    return table
