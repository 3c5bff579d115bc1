"""``resaction export``, ``quantize``, ``prune`` and ``bench``: make and measure deployable
models."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from resaction.cli.app import app, console
from resaction.cli.options import DECODE_WORKERS_OPTION, PROGRESS_OPTION, model_output


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="A resaction checkpoint (.pt), pruned or not."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="The .onnx file to write (default: beside the checkpoint)."
    ),
    opset: int = typer.Option(17, "--opset", min=13, help="ONNX opset version."),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Compare ONNX Runtime's logits with PyTorch's."
    ),
    frames: bool = typer.Option(
        False,
        "--frames",
        help="2D-trunk models: the per-frame half and the pooling, for live incremental "
        "scoring (`resaction watch`); default output CKPT.frames.onnx.",
    ),
) -> None:
    """Export a checkpoint to ONNX (dynamic batch; classes and preprocessing in the metadata)."""
    from resaction.deploy.export import export_checkpoint
    from resaction.deploy.frames_export import export_frames_checkpoint

    suffix = ".frames.onnx" if frames else ".onnx"
    target = model_output(
        checkpoint, out or checkpoint.with_name(checkpoint.stem + suffix), ".onnx"
    )
    run = export_frames_checkpoint if frames else export_checkpoint
    result = run(checkpoint, target, opset=opset, check=check)
    shape = "x".join(str(d) for d in result.input_shape)
    console.print(
        f"wrote {result.path} ({result.size_mb:.1f} MB): {result.model_name}, "
        f"opset {result.opset}, input {shape}, {result.num_classes} classes"
    )
    if result.max_abs_diff is not None:
        console.print(f"max abs difference from PyTorch: {result.max_abs_diff:.3g}")


@app.command()
def quantize(
    model: Path = typer.Argument(..., help="An .onnx file written by `resaction export`."),
    calibrate: str = typer.Option(
        ..., "--calibrate", help="Videos to calibrate on: a folder of class folders or manifest."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="The int8 .onnx to write (default: MODEL.int8.onnx)."
    ),
    calib_videos: int = typer.Option(32, "--calib-videos", help="Videos used for calibration."),
    eval_data: str | None = typer.Option(
        None, "--eval", help="Held-out labelled videos: compare fp32 and int8 accuracy and speed."
    ),
    eval_videos: int | None = typer.Option(
        None, "--eval-videos", min=1, help="Score at most this many held-out videos."
    ),
    first_conv: bool = typer.Option(
        False, "--quantize-first-conv/--keep-first-conv", help="Quantise the first convolution."
    ),
    workers: int | None = DECODE_WORKERS_OPTION,
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on real clips."""
    from resaction.deploy.frames_quantize import quantize_frames
    from resaction.deploy.quantize import quantize_onnx
    from resaction.runtime.onnx_frames import is_frames_file

    target = model_output(model, out or model.with_name(f"{model.stem}.int8.onnx"), ".onnx")
    # A frames file (export --frames) quantises its per-frame half, calibrated on units.
    quantize = quantize_frames if is_frames_file(model) else quantize_onnx
    result = quantize(
        model,
        calibrate,
        target,
        calib_videos=calib_videos,
        eval_data=eval_data,
        eval_videos=eval_videos,
        exclude_first_conv=not first_conv,
        num_workers=workers,
        progress=progress,
    )
    console.print(
        f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB), calibrated on "
        f"{result.calibration_clips} clips of {result.calibration_videos} videos"
    )
    for line in result.skipped:
        console.print(f"[yellow]skipped[/] {line}")
    comparison = result.comparison
    if comparison is None:
        return
    table = Table(title=f"fp32 vs int8 on {comparison.num_videos} held-out videos")
    for column in ("model", "top-1", "ms/clip", "MB"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for score in (comparison.fp32, comparison.int8):
        table.add_row(
            score.name,
            f"{100 * score.top1:.1f}%",
            f"{score.ms_per_clip:.1f}",
            f"{score.size_mb:.1f}",
        )
    console.print(table)
    drop = comparison.accuracy_drop
    change = (
        "the same"
        if abs(drop) < 1e-9
        else f"{abs(drop):.1f} points {'lower' if drop > 0 else 'higher'}"
    )
    console.print(
        f"int8 is {comparison.speedup:.2f}x as fast, its top-1 {change} (one video is "
        f"{100 / comparison.num_videos:.1f} points), the same top-1 label on "
        f"{100 * comparison.agreement:.0f}% of videos"
    )
    warning = comparison.warning()
    if warning:
        console.print(f"[yellow]warning[/] {warning}")


@app.command()
def prune(
    checkpoint: Path = typer.Argument(..., help="A resaction checkpoint (.pt)."),
    ratio: float = typer.Option(0.3, "--ratio", help="Fraction of channels to remove per layer."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Pruned checkpoint to write (default: CKPT.pruned.pt)."
    ),
    finetune_epochs: int = typer.Option(
        0, "--finetune-epochs", min=0, help="Fine-tune this many epochs after pruning."
    ),
    data: str | None = typer.Option(None, "--data", "-d", help="Training videos to fine-tune on."),
    val_data: str | None = typer.Option(
        None, "--val-data", help="Validation videos (default: a grouped split of --data)."
    ),
    group_by: str | None = typer.Option(
        None, "--group-by", help="Regex on file names giving groups kept whole in the split."
    ),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Fine-tuning batch."),
    lr: float = typer.Option(1e-3, "--lr", help="Fine-tuning learning rate (SGD, cosine)."),
    keep_residual: bool | None = typer.Option(
        None,
        "--keep-residual/--prune-residual",
        help="Prune inside residual branches only (default: only for TSM's temporal shifts).",
    ),
    workers: int | None = DECODE_WORKERS_OPTION,
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Structured channel pruning (the network really shrinks), then optional fine-tuning."""
    from resaction.deploy.prune import prune_checkpoint

    target = model_output(
        checkpoint, out or checkpoint.with_name(f"{checkpoint.stem}.pruned.pt"), ".pt"
    )
    report = prune_checkpoint(
        checkpoint,
        ratio,
        target,
        finetune_epochs=finetune_epochs,
        data=data,
        val_data=val_data,
        group_by=group_by,
        batch_size=batch_size,
        lr=lr,
        keep_residual=keep_residual,
        num_workers=workers,
        progress=progress,
    )
    result = report.result
    console.print(
        f"wrote {report.path}: parameters {result.params_before / 1e6:.2f}M -> "
        f"{result.params_after / 1e6:.2f}M ({result.param_ratio:.0%}), GFLOPs "
        f"{result.gflops_before:.2f} -> {result.gflops_after:.2f} ({result.flop_ratio:.0%})"
        + (" (residual channels kept: temporal shifts)" if result.keep_residual else "")
    )
    for row in report.finetune_history:
        line = f"fine-tune epoch {int(row['epoch'])}: loss {row['train_loss']:.3f}"
        if "val_top1" in row:
            line += f", val top-1 {100 * row['val_top1']:.1f}%"
        console.print(line)


@app.command()
def bench(
    models: list[str] = typer.Argument(
        ..., help="Registry names (random weights, default input), checkpoints or .onnx files."
    ),
    data: str | None = typer.Option(
        None, "--data", "-d", help="Labelled videos: int8 calibration and held-out accuracy."
    ),
    calibrate: str | None = typer.Option(
        None, "--calibrate", help="Videos to calibrate int8 on (default: part of --data)."
    ),
    backends: str = typer.Option(
        "eager,compiled,onnx,int8,pruned",
        "--backends",
        help="Comma-separated; also pruned-onnx and pruned-int8 (the pruned model on ORT).",
    ),
    out: Path = typer.Option(Path("bench"), "--out", "-o", help="Output folder."),
    threads: int = typer.Option(2, "--threads", min=1, help="Threads for every backend."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", min=1, help="Clips per forward."),
    iterations: int = typer.Option(20, "--iterations", min=2, help="Timed runs per backend."),
    prune_ratio: float = typer.Option(0.3, "--prune-ratio", help="Ratio for the pruned backend."),
    calib_videos: int = typer.Option(16, "--calib-videos", help="Videos to calibrate int8 on."),
    eval_videos: int | None = typer.Option(
        None, "--eval-videos", min=1, help="Score at most this many held-out videos."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Small input (4 frames at 64 px) and few runs: a smoke test."
    ),
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Speed (p50/p95, clips/s), memory, size, GFLOP/s and accuracy across backends."""
    from resaction.deploy.bench import bench as run_bench
    from resaction.deploy.bench import parse_backends
    from resaction.deploy.bench_report import bench_table, write_bench_report
    from resaction.outputs import check_output_dir

    check_output_dir(out)
    report = run_bench(
        models,
        out,
        backends=parse_backends(backends),
        data=data,
        calibrate=calibrate,
        threads=threads,
        batch_size=batch_size,
        iterations=3 if quick else iterations,
        warmup=1 if quick else 3,
        prune_ratio=prune_ratio,
        calib_videos=calib_videos,
        eval_videos=eval_videos,
        input_override=QUICK_INPUT if quick else None,
        progress=progress,
    )
    console.print(bench_table(report))
    files = write_bench_report(report, out)
    console.print(f"wrote {files['json']}, {files['png']}")


QUICK_INPUT = {"clip_len": 4, "resize": 72, "crop": 64}
