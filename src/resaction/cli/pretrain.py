"""``resaction pretrain`` (self-supervised, unlabelled footage) and ``resaction fuse``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer

from resaction.cli.app import app, console
from resaction.cli.options import (
    CHECKPOINT_EVERY_OPTION,
    DEVICE_OPTION,
    EPOCHS_OPTION,
    LOADER_WORKERS_OPTION,
    MAX_STEPS_OPTION,
    MODEL_KWARG_OPTION,
    PREPROCESS_OPTION,
    PROGRESS_OPTION,
    RESUME_OPTION,
    RUN_BATCH_OPTION,
    RUN_CONFIG_OPTION,
    RUN_OUT_OPTION,
    RUN_PROGRESS_OPTION,
    SEED_OPTION,
    training_config,
)


@app.command()
def pretrain(
    config: Path | None = RUN_CONFIG_OPTION,
    data: str | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Unlabelled videos: a folder (searched recursively), a video, a CSV or a list. "
        "Labels, if any, are ignored.",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="speed: a model that sees motion (*_diff_*, TSM, 3D ResNets); contrastive: any.",
    ),
    method: str = typer.Option(
        "speed",
        "--method",
        help="speed (which playback speed and direction) | contrastive (two clips of a video "
        "alike, other videos' apart).",
    ),
    weights: str | None = typer.Option(None, "--weights", "-w", help="Start from: PATH | none."),
    out: str | None = RUN_OUT_OPTION,
    epochs: int | None = EPOCHS_OPTION,
    batch_size: int | None = RUN_BATCH_OPTION,
    optimizer: str = typer.Option(
        "adamw",
        "--optimizer",
        help="adamw (default: learns the pretext task at small batches) | sgd.",
    ),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (adamw: 0.003)."),
    seed: int | None = SEED_OPTION,
    workers: int | None = LOADER_WORKERS_OPTION,
    max_steps_per_epoch: int | None = MAX_STEPS_OPTION,
    checkpoint_every_steps: int | None = CHECKPOINT_EVERY_OPTION,
    device: str | None = DEVICE_OPTION,
    resume: bool = RESUME_OPTION,
    preprocess: list[str] | None = PREPROCESS_OPTION,
    model_kwarg: list[str] | None = MODEL_KWARG_OPTION,
    progress: bool | None = RUN_PROGRESS_OPTION,
) -> None:
    """Pretrain on unlabelled videos (which playback speed and direction, or which clips come
    from one video); then fine-tune with `resaction train --weights OUT/last.pt`."""
    flags = dict(locals())
    from resaction.engine.pretrain import PRETRAIN_ADAMW_LR, chance_accuracy
    from resaction.engine.pretrain import pretrain as run_pretraining

    adamw_lr = PRETRAIN_ADAMW_LR if optimizer == "adamw" else None
    resolved = training_config(
        flags, leave=("method",), val_split=0.0, lr=lr if lr is not None else adamw_lr
    )
    result = run_pretraining(resolved, method)
    first, last = result.history[0], result.history[-1]
    chance = chance_accuracy(method, len(result.classes), resolved.batch_size)
    console.print(
        f"pretrained {resolved.model} ({method}) for {len(result.history)} epoch(s) on "
        f"{resolved.data}: pretext loss {first['train_loss']:.3f} -> {last['train_loss']:.3f}, "
        f"accuracy {100 * last['train_top1']:.0f}% (chance {100 * chance:.0f}%)"
    )
    console.print(f"checkpoint: {result.last_checkpoint}")
    compact = (",", ":")  # JSON is YAML, which -p reads: null, [0.485,0.456,0.406], "dense"
    same_input = "".join(
        " -p " + shlex.quote(f"{key}={json.dumps(value, separators=compact)}")
        for key, value in resolved.preprocess.items()
    )
    console.print(
        f"fine-tune it: resaction train --data DATA --model {resolved.model} "
        f"--weights {result.last_checkpoint}{same_input}",
        soft_wrap=True,
    )
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} video(s) skipped[/] (see skipped.txt)")


@app.command()
def fuse(
    checkpoints: list[Path] = typer.Argument(
        ..., help="Two or more checkpoints of the same classes (an RGB and a motion model)."
    ),
    val_data: str = typer.Option(
        ..., "--val-data", help="Labelled videos the fusion weights are chosen on."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The fused checkpoint (.pt) to write."),
    batch_size: int = typer.Option(8, "--batch-size", "-b"),
    workers: int | None = typer.Option(None, "--workers", help="Data loading processes."),
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Fuse models into one checkpoint (weighted average of their scores, weights chosen on
    --val-data); it runs wherever a checkpoint does, ONNX export included."""
    from resaction.cli.options import model_output
    from resaction.engine.fusion import fuse_checkpoints

    result = fuse_checkpoints(
        [str(path) for path in checkpoints],
        val_data,
        model_output(checkpoints, out, ".pt"),
        batch_size=batch_size,
        num_workers=workers,
        progress=progress,
    )
    for name, weight, top1 in zip(result.parts, result.weights, result.part_top1, strict=True):
        console.print(f"{name}: weight {weight:.2f}, alone {100 * top1:.1f}% top-1")
    console.print(
        f"fused: {100 * result.fused_top1:.1f}% top-1 on {result.videos} validation videos "
        "(the weights were chosen on them: test on other videos)"
    )
    console.print(f"checkpoint: {result.path}")
