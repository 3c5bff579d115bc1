"""``resaction evaluate`` (a checkpoint on labelled videos, optionally under stress) and
``resaction crossval`` (K-fold cross-validation with groups kept whole)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from resaction.cli.app import app, console
from resaction.cli.options import (
    CLIP_BATCH_OPTION,
    CLIPS_OPTION,
    COMPILE_OPTION,
    CROPS_OPTION,
    DATA_BACKGROUND_OPTION,
    DECODE_WORKERS_OPTION,
    PREPROCESS_OPTION,
    PROGRESS_OPTION,
    SKIP_BAD_ROWS_OPTION,
    check_crops,
)

if TYPE_CHECKING:
    from resaction.data.manifests import VideoEntry
    from resaction.engine.evaluate import EvalResult
    from resaction.runtime.loading import LoadedModel


@app.command()
def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="A resaction checkpoint."),
    data: str = typer.Option(..., "--data", "-d", help="Folder of class folders, or a manifest."),
    clips: int | None = CLIPS_OPTION,
    crops: int | None = CROPS_OPTION,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: eval/ beside the checkpoint)."
    ),
    stress: str | None = typer.Option(
        None,
        "--stress",
        help="Also evaluate with these difficulties added, e.g. clutter,camera-motion,occlusion.",
    ),
    severity: float = typer.Option(0.5, "--severity", min=0.0, max=1.0, help="Stress strength."),
    order_test: bool = typer.Option(
        False,
        "--order-test",
        help="Also score every clip time-reversed and frame-shuffled: per class, does the "
        "model use motion at all?",
    ),
    batch_size: int = CLIP_BATCH_OPTION,
    workers: int | None = DECODE_WORKERS_OPTION,
    compile: bool = COMPILE_OPTION,
    background: str | None = DATA_BACKGROUND_OPTION,
    skip_bad_rows: bool = SKIP_BAD_ROWS_OPTION,
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Evaluate a checkpoint: top-1/top-5, mean class accuracy, per-class F1, confusion matrix."""
    from resaction.data.stress import ORDER_KINDS, parse_stress_kinds
    from resaction.engine.evaluate import evaluate_checkpoint
    from resaction.engine.report import (
        metrics_table,
        per_class_table,
        protocol_line,
        write_report,
    )
    from resaction.outputs import ensure_output_dir

    check_crops(crops)
    kinds = list(parse_stress_kinds(stress) if stress else [])
    if order_test:
        kinds += [kind for kind in ORDER_KINDS if kind not in kinds]
    out_dir = ensure_output_dir(out if out is not None else checkpoint.parent / "eval")
    loading = {"batch_size": batch_size, "num_workers": workers, "progress": progress}
    result, bundle, entries = evaluate_checkpoint(
        checkpoint,
        data,
        num_clips=clips,
        num_crops=crops,
        compile=compile,
        background=background,
        skip_bad_rows=skip_bad_rows,
        **loading,
    )
    files = write_report(result, out_dir)
    console.print(metrics_table(result, title=f"{bundle.model_name} on {data}"))
    if len(result.classes) <= 30:
        console.print(per_class_table(result))
    console.print(f"[dim]{protocol_line(result.protocol)}[/]")
    for row in result.skipped:
        console.print(f"[yellow]skipped[/] {row['path']}: {row['reason']}")
    written = files.paths()
    if kinds:
        written += _stress_test(
            result, bundle, entries, kinds, severity, loading, out_dir, show_order=order_test
        )
    console.print("wrote " + ", ".join(str(path) for path in written))


def _stress_test(
    result: EvalResult,
    bundle: LoadedModel,
    entries: list[VideoEntry],
    kinds: list[str],
    severity: float,
    loading: dict[str, Any],
    out_dir: Path,
    *,
    show_order: bool,
) -> list[Path]:
    """The videos scored again under each stress of ``kinds``, against ``result``: the tables
    printed (the time-order one with ``show_order``), the files written."""
    from resaction.engine.robustness import (
        order_table,
        robustness_table,
        run_robustness,
        write_robustness_report,
    )

    robustness = run_robustness(
        bundle.network,
        entries,
        bundle.classes,
        preprocess=result.preprocess,
        protocol=result.view_protocol,
        kinds=kinds,
        severity=severity,
        baseline=result,
        **loading,
    )
    paths = write_robustness_report(robustness, out_dir)
    console.print(robustness_table(robustness))
    if show_order:
        console.print(order_table(robustness))
    return [paths["json"], paths["csv"], paths["png"]]


def _comma_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@app.command()
def crossval(
    folds: int = typer.Option(5, "--folds", "-k", min=2, help="Number of folds."),
    group_by: str | None = typer.Option(
        None,
        "--group-by",
        help="Regex on file names giving each video's group, e.g. 'P(\\d)' (one person per "
        "group). Default: the dataset's groups.csv, else one group per video.",
    ),
    exclude_groups: str | None = typer.Option(
        None, "--exclude-groups", help="Comma-separated groups to leave out, e.g. g44,g45."
    ),
    only_folds: str | None = typer.Option(
        None, "--only-folds", help="Run only these folds (1-based, comma-separated)."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML training config; flags override its keys."
    ),
    data: str | None = typer.Option(None, "--data", "-d", help="Folder of class folders, or CSV."),
    model: str | None = typer.Option(None, "--model", "-m", help="Registered model name."),
    weights: str | None = typer.Option(None, "--weights", "-w", help="Initial weights or PATH."),
    out: str | None = typer.Option(None, "--out", "-o", help="Output folder (runs/crossval)."),
    epochs: int | None = typer.Option(None, "--epochs", "-e"),
    batch_size: int | None = typer.Option(None, "--batch-size", "-b"),
    optimizer: str | None = typer.Option(None, "--optimizer", help="sgd | adamw."),
    lr: float | None = typer.Option(None, "--lr"),
    seed: int | None = typer.Option(None, "--seed", help="Seeds the folds and the training."),
    workers: int | None = typer.Option(None, "--workers", help="Data loading processes."),
    max_steps_per_epoch: int | None = typer.Option(None, "--max-steps-per-epoch"),
    clips: int | None = typer.Option(None, "--clips", help="Test clips per video."),
    crops: int | None = typer.Option(None, "--crops", help="Test crops per clip (1 or 3)."),
    preprocess: list[str] | None = PREPROCESS_OPTION,
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Read back folds already finished in --out."
    ),
    background: str | None = DATA_BACKGROUND_OPTION,
    skip_bad_rows: bool = SKIP_BAD_ROWS_OPTION,
    progress: bool | None = typer.Option(None, "--progress/--no-progress"),
) -> None:
    """Train and test K times on group-wise folds; report mean and standard deviation."""
    flags = dict(locals())
    from resaction.cli.options import training_config
    from resaction.cli.train import say_scratch_advice
    from resaction.engine.crossval import run_crossval
    from resaction.engine.crossval_report import crossval_table
    from resaction.engine.metrics import mean_and_spread
    from resaction.errors import ConfigError

    crossval_flags = ("folds", "group_by", "exclude_groups", "only_folds", "resume")
    resolved = training_config(
        flags, leave=crossval_flags, out=out or (None if config else "runs/crossval")
    )
    try:
        chosen = [int(item) for item in _comma_list(only_folds)] or None
    except ValueError:
        raise ConfigError(f"--only-folds {only_folds!r} is not a comma-separated list") from None
    say_scratch_advice(resolved.model, resolved.weights)
    result = run_crossval(
        resolved,
        folds,
        group_by,
        resolved.out,
        exclude_groups=_comma_list(exclude_groups),
        only_folds=chosen,
        resume=resume,
    )
    console.print(crossval_table(result))
    top1 = result.summary["top1"]
    console.print(
        f"video top-1: {mean_and_spread(top1)}% over "
        f"{len(result.folds)} fold(s); pooled {100 * result.pooled['top1']:.1f}%"
    )
    console.print("wrote " + ", ".join(str(path) for path in result.files))
