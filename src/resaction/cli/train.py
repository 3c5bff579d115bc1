"""``resaction train``: fine-tune or train any registered model on a folder or manifest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from resaction.cli.app import app, console
from resaction.cli.options import (
    CHECKPOINT_EVERY_OPTION,
    DATA_BACKGROUND_OPTION,
    DEVICE_OPTION,
    EPOCHS_OPTION,
    LOADER_WORKERS_OPTION,
    MAX_STEPS_OPTION,
    MODEL_KWARG_OPTION,
    PREPROCESS_OPTION,
    RESUME_OPTION,
    RUN_BATCH_OPTION,
    RUN_CONFIG_OPTION,
    RUN_OUT_OPTION,
    RUN_PROGRESS_OPTION,
    SEED_OPTION,
    SKIP_BAD_ROWS_OPTION,
    training_config,
)

if TYPE_CHECKING:
    from resaction.engine.config import TrainConfig
    from resaction.engine.trainer import TrainResult


def say_scratch_advice(model: str, weights: str | None) -> None:
    """One line when an RGB model starts from random weights: what we measured, what to try."""
    from resaction.engine.advice import scratch_advice

    line = scratch_advice(model, weights)
    if line:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


@app.command()
def train(
    config: Path | None = RUN_CONFIG_OPTION,
    data: str | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Folder of class folders, a manifest (CSV, list, split file) or segment "
        "annotations (start,end CSV, Label Studio JSON, CVAT video XML).",
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Registered model name."),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="imagenet | kinetics400 | PATH | none."
    ),
    out: str | None = RUN_OUT_OPTION,
    epochs: int | None = EPOCHS_OPTION,
    batch_size: int | None = RUN_BATCH_OPTION,
    val_data: str | None = typer.Option(None, "--val-data", help="Separate validation set."),
    val_split: float | None = typer.Option(
        None, "--val-split", help="Fraction held out for validation when no --val-data (0: none)."
    ),
    group_by: str | None = typer.Option(
        None, "--group-by", help="Regex naming a clip's group, so a group stays on one side."
    ),
    background: str | None = DATA_BACKGROUND_OPTION,
    skip_bad_rows: bool = SKIP_BAD_ROWS_OPTION,
    optimizer: str | None = typer.Option(None, "--optimizer", help="sgd | adamw."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate of the head."),
    weight_decay: float | None = typer.Option(None, "--weight-decay"),
    momentum: float | None = typer.Option(None, "--momentum"),
    warmup_epochs: float | None = typer.Option(None, "--warmup-epochs"),
    label_smoothing: float | None = typer.Option(None, "--label-smoothing"),
    backbone_lr_mult: float | None = typer.Option(
        None, "--backbone-lr-mult", help="Backbone learning rate as a fraction of the head's."
    ),
    freeze_backbone_epochs: int | None = typer.Option(
        None, "--freeze-backbone-epochs", help="Train only the head for this many epochs first."
    ),
    freeze_bn: bool | None = typer.Option(
        None, "--freeze-bn/--no-freeze-bn", help="Keep BatchNorm statistics and affine fixed."
    ),
    balance: str | None = typer.Option(
        None, "--balance", help="none | sampler (class-balanced draws) | loss (class weights)."
    ),
    grad_clip: float | None = typer.Option(None, "--grad-clip", help="Max gradient norm."),
    accumulate: int | None = typer.Option(None, "--accumulate", help="Batches per optimiser step."),
    amp: bool | None = typer.Option(
        None, "--amp/--no-amp", help="Mixed precision (default: on CUDA only)."
    ),
    compile_model: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the model (falls back if it fails)."
    ),
    seed: int | None = SEED_OPTION,
    workers: int | None = LOADER_WORKERS_OPTION,
    early_stopping: int | None = typer.Option(
        None, "--early-stopping", help="Stop after this many epochs without improvement."
    ),
    monitor: str | None = typer.Option(
        None,
        "--monitor",
        help="val_top1 | val_top5 | val_mean_class_accuracy | val_loss | train_loss | train_top1.",
    ),
    max_steps_per_epoch: int | None = MAX_STEPS_OPTION,
    checkpoint_every_steps: int | None = CHECKPOINT_EVERY_OPTION,
    device: str | None = DEVICE_OPTION,
    resume: bool = RESUME_OPTION,
    select: str | None = typer.Option(
        None, "--select", help="best | last: the checkpoint reported as the result."
    ),
    clips: int | None = typer.Option(None, "--clips", help="Validation clips per video."),
    crops: int | None = typer.Option(None, "--crops", help="Validation crops per clip (1 or 3)."),
    preprocess: list[str] | None = PREPROCESS_OPTION,
    model_kwarg: list[str] | None = MODEL_KWARG_OPTION,
    progress: bool | None = RUN_PROGRESS_OPTION,
) -> None:
    """Train a model; checkpoints, metrics.csv, TensorBoard logs and curves go to --out."""
    resolved = training_config(locals())
    from resaction.engine.trainer import train as run_training

    if int(os.environ.get("RANK", "0")) == 0 and not resolved.resume:
        say_scratch_advice(resolved.model, resolved.weights)
    result = run_training(resolved)
    if int(os.environ.get("RANK", "0")) == 0:
        _print_training(resolved, result)


def _print_training(resolved: TrainConfig, result: TrainResult) -> None:
    """What the run did and where its files are (rank 0 only under data parallel)."""
    last = result.history[-1] if result.history else {}
    console.print(f"trained {resolved.model} for {len(result.history)} epoch(s) on {resolved.data}")
    if result.world_size > 1:
        console.print(f"data parallel on {result.world_size} processes: identical weights on all")
    if result.best_metric is not None:
        console.print(f"best {resolved.monitor}: {result.best_metric:.4f}")
    if last:
        console.print(
            f"last epoch: loss {last['train_loss']:.4f}, {last['train_clips_per_s']:.1f} clips/s, "
            f"data wait {100 * last['train_data_wait']:.0f}%"
        )
    console.print(f"checkpoint: {result.checkpoint}")
    console.print(f"run folder: {result.run_dir}")
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} video(s) skipped[/] (see skipped.txt)")
