"""``resaction predict``: top-k labels for video files, folders and glob patterns.

Results are written to ``--json`` (JSON lines: one object per video) or ``--csv`` and flushed
after every video, so an interrupted run keeps what it finished; ``--resume`` appends to the file
and skips the videos already in it (without it the file is started afresh).
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from resaction.cli.app import app, console, err_console
from resaction.cli.options import (
    CHECKPOINT_OPTION,
    CLASSES_OPTION,
    CLIP_BATCH_OPTION,
    CLIPS_OPTION,
    COMPILE_OPTION,
    CROPS_OPTION,
    MODEL_OPTION,
    PROGRESS_OPTION,
    WEIGHTS_OPTION,
    check_crops,
    view_protocol,
)
from resaction.errors import ConfigError

if TYPE_CHECKING:
    from resaction.inference import Prediction, Predictor
    from resaction.inference.results import RecordWriter

TABLE_ROWS = 50
_GLOB_CHARS = set("*?[")


def load_predictor(
    checkpoint: Path | None,
    model: str | None,
    weights: str | None,
    *,
    clips: int | None = None,
    crops: int | None = None,
    classes: Path | None = None,
    compile: bool = False,
) -> Predictor:
    """A predictor from ``--checkpoint`` (with ``--model`` as a check), or ``--model --weights``.

    ``classes`` (one name per line) names the outputs of an ONNX file without resaction metadata;
    ``compile`` runs a PyTorch model through ``torch.compile``.
    """
    predictor = _load_predictor(checkpoint, model, weights, clips, crops, classes)
    return predictor.compile() if compile else predictor


def _load_predictor(
    checkpoint: Path | None,
    model: str | None,
    weights: str | None,
    clips: int | None,
    crops: int | None,
    classes: Path | None,
) -> Predictor:
    from resaction.inference import Predictor
    from resaction.runtime.onnx_backend import read_classes_file

    check_crops(crops)
    protocol = view_protocol(clips, crops)
    if checkpoint is not None:
        if weights is not None:
            raise ConfigError("give either --checkpoint or --model with --weights, not both")
        if classes is not None and checkpoint.suffix.lower() != ".onnx":
            raise ConfigError(
                f"--classes names the outputs of an .onnx file; {checkpoint} stores its classes"
            )
        names = read_classes_file(classes) if classes is not None else None
        return Predictor.from_checkpoint(
            checkpoint, expect_model=model, protocol=protocol, classes=names
        )
    if model is None or weights is None:
        raise ConfigError(
            "no model given: pass --checkpoint CKPT, or --model NAME --weights kinetics400"
        )
    return Predictor.from_pretrained(model, weights, protocol=protocol)


def find_videos(patterns: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Video files named by ``patterns`` (files, folders searched recursively, globs), in order
    and without repeats, and the patterns that matched nothing.

    A path that does not exist and has no glob characters is kept, so the run reports it as
    unreadable like any other bad file.
    """
    from resaction.io.video_files import videos_under

    found: dict[str, Path] = {}
    unmatched: list[str] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            matches = videos_under(path)
        elif _GLOB_CHARS & set(pattern) and not path.exists():
            matches = sorted(
                Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()
            )
        else:
            matches = [path]
        if not matches:
            unmatched.append(pattern)
        for match in matches:
            found.setdefault(str(match.resolve()), match)
    return list(found.values()), unmatched


def _csv_fields(topk: int) -> list[str]:
    fields = ["path", "label", "confidence"]
    for rank in range(2, topk + 1):
        fields += [f"label_{rank}", f"prob_{rank}"]
    return [*fields, "num_views", "seconds"]


def _csv_row(prediction: Prediction) -> dict[str, Any]:
    row: dict[str, Any] = {
        "path": prediction.path,
        "label": prediction.label,
        "confidence": round(prediction.confidence, 6),
        "num_views": prediction.num_views,
        "seconds": round(prediction.seconds, 3),
    }
    for rank, (label, prob) in enumerate(zip(prediction.labels, prediction.probs, strict=True)):
        if rank:
            row[f"label_{rank + 1}"] = label
            row[f"prob_{rank + 1}"] = round(prob, 6)
    return row


def _open_writers(
    json_out: Path | None, csv_out: Path | None, topk: int, resume: bool
) -> list[tuple[RecordWriter, bool]]:
    from resaction.inference.results import RecordWriter

    writers = []
    if json_out is not None:
        writers.append((RecordWriter(json_out, fmt="jsonl", resume=resume), False))
    if csv_out is not None:
        writers.append((RecordWriter(csv_out, fields=_csv_fields(topk), resume=resume), True))
    return writers


def _already_done(writers: list[tuple[RecordWriter, bool]]) -> set[str]:
    """Resolved paths present in every results file (a video missing from one is redone)."""
    sets = [{str(Path(p).expanduser().resolve()) for p in writer.done} for writer, _ in writers]
    return set.intersection(*sets) if sets else set()


@app.command()
def predict(
    paths: list[str] = typer.Argument(
        ..., help="Video files, folders (searched recursively) or glob patterns ('clips/*.mp4')."
    ),
    checkpoint: Path | None = CHECKPOINT_OPTION,
    model: str | None = MODEL_OPTION,
    weights: str | None = WEIGHTS_OPTION,
    classes: Path | None = CLASSES_OPTION,
    topk: int = typer.Option(5, "--topk", "-k", min=1, help="Labels per video."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write results as JSON lines, one object per video (--resume appends)."
    ),
    csv_out: Path | None = typer.Option(
        None, "--csv", help="Write results as CSV rows (--resume appends)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Keep the results already in --json/--csv and skip those videos."
    ),
    clips: int | None = CLIPS_OPTION,
    crops: int | None = CROPS_OPTION,
    batch_size: int = CLIP_BATCH_OPTION,
    workers: int = typer.Option(2, "--workers", min=1, help="Decoding threads."),
    compile: bool = COMPILE_OPTION,
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Top-k action labels for each video, with the checkpoint's multi-clip protocol."""
    from resaction.inference import VideoFailure
    from resaction.progress import progress_bar

    if resume and json_out is None and csv_out is None:
        raise ConfigError("--resume needs --json or --csv: the file that holds finished results")
    if json_out is not None and csv_out is not None and json_out.resolve() == csv_out.resolve():
        raise ConfigError(f"--json and --csv are the same file, {json_out}: give two names")
    videos, unmatched = find_videos(paths)
    for pattern in unmatched:
        err_console.print(f"[yellow]no videos match[/] {pattern}", highlight=False)
    if not videos:
        raise ConfigError(f"no video files found in {', '.join(paths)}")
    predictor = load_predictor(
        checkpoint, model, weights, clips=clips, crops=crops, classes=classes, compile=compile
    )
    writers = _open_writers(json_out, csv_out, topk, resume)
    done = _already_done(writers)
    todo = [video for video in videos if str(video.resolve()) not in done]
    if done:
        console.print(f"resuming: {len(videos) - len(todo)} of {len(videos)} videos already done")
    results: list[Prediction] = []
    failures: list[VideoFailure] = []
    bar = progress_bar(
        total=len(todo), desc="predict", unit="video", disable=not progress or len(todo) < 2
    )
    try:
        for outcome in predictor.predict_many(
            todo, topk=topk, batch_size=batch_size, num_workers=workers
        ):
            bar.update(1)
            if isinstance(outcome, VideoFailure):
                failures.append(outcome)
                reason = outcome.reason
                line = reason if outcome.path in reason else f"{outcome.path}: {reason}"
                bar.write(f"skipped {line}", file=err_console.file)
                continue
            results.append(outcome)
            for writer, is_csv in writers:
                writer.write(_csv_row(outcome) if is_csv else outcome.to_record())
    finally:
        bar.close()
        for writer, _ in writers:
            writer.close()
    _print_results(results, failures, len(videos) - len(todo), [w.path for w, _ in writers])
    if failures and not results and not done:
        from resaction.errors import VideoError

        raise VideoError(f"none of the {len(failures)} videos could be read")


def _shown(path: Path) -> str:
    """A video as the table shows it: from the working folder when it is under it (two videos
    of one name in two folders stay apart), else in full."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _print_results(
    results: list[Prediction], failures: list[Any], resumed: int, files: list[Path]
) -> None:
    if results:
        table = Table(title=f"{len(results)} videos", show_lines=False)
        table.add_column("video", overflow="fold")
        table.add_column("label")
        table.add_column("conf", justify="right")
        table.add_column("next", overflow="fold")
        for prediction in results[:TABLE_ROWS]:
            others = ", ".join(
                f"{label} {prob:.0%}"
                for label, prob in zip(prediction.labels[1:3], prediction.probs[1:3], strict=True)
            )
            table.add_row(
                _shown(Path(prediction.path)),
                prediction.label,
                f"{prediction.confidence:.1%}",
                others,
            )
        console.print(table)
        if len(results) > TABLE_ROWS:
            console.print(f"... and {len(results) - TABLE_ROWS} more")
    parts = [f"{len(results)} predicted"]
    if resumed:
        parts.append(f"{resumed} already done")
    if failures:
        parts.append(f"{len(failures)} skipped (unreadable)")
    console.print(
        ", ".join(parts) + (f"; results in {', '.join(map(str, files))}" if files else "")
    )
