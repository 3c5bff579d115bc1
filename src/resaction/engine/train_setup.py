"""A training run's output folder, the checkpoint it resumes, its model and its optimisation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resaction.data.loader import class_balance_weights
from resaction.engine.config import TrainConfig
from resaction.engine.logs import writability_problem
from resaction.engine.pretext import pretext_classes
from resaction.engine.schedule import warmup_cosine
from resaction.errors import CheckpointError, ConfigError, first_line
from resaction.models import create_model
from resaction.models.checkpoint import load_checkpoint, read_checkpoint
from resaction.models.finetune import freeze_batchnorm, param_groups

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass
class TrainResult:
    """Where a run wrote its checkpoints, and what it measured per epoch."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict]
    best_metric: float | None
    classes: list[str]
    skipped: list = field(default_factory=list)
    select: str = "best"
    world_size: int = 1

    @property
    def checkpoint(self) -> Path:
        """The checkpoint the config's ``select`` names (``best`` or ``last``)."""
        return self.best_checkpoint if self.select == "best" else self.last_checkpoint


def check_run_dir(run_dir: Path, resume: bool) -> Path | None:
    """Fail before any work if the output folder cannot be written or holds another run.

    Gives the outermost folder this made (None when ``run_dir`` was there), for
    ``remove_unused_folders`` to take back if the run fails before writing anything.
    """
    made = next((path for path in (*reversed(run_dir.parents), run_dir) if not path.exists()), None)
    problem = writability_problem(run_dir)
    if problem:
        raise ConfigError(problem)
    if (run_dir / LAST_CHECKPOINT).exists() and not resume:
        raise ConfigError(
            f"output folder {run_dir} already holds a run (last.pt): "
            "pass --resume to continue it or choose another --out"
        )
    for stale in run_dir.glob(".*.pt.*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    return made


def remove_unused_folders(run_dir: Path, made: Path | None) -> None:
    """Remove the folders ``check_run_dir`` made, from ``run_dir`` up to ``made``, while empty:
    a run that failed early leaves no empty --out behind."""
    if made is None:
        return
    for folder in (run_dir, *run_dir.parents):
        if not folder.is_dir() or any(folder.iterdir()):
            return
        folder.rmdir()
        if folder == made:
            return


def read_last_checkpoint(
    run_dir: Path, model_name: str, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """The run's ``last.pt`` to resume from; None (and a word) when there is none."""
    path = run_dir / LAST_CHECKPOINT
    if not path.exists():
        say(f"nothing to resume in {run_dir} (no last.pt): starting a new run")
        return None
    payload = read_checkpoint(path)
    if payload["model_name"] != model_name:
        raise CheckpointError(
            f"cannot resume {path}: it holds model {payload['model_name']!r}, "
            f"not {model_name!r}; pass --model {payload['model_name']} or a new --out"
        )
    if "optimizer" not in payload or "sampler" not in payload:
        raise CheckpointError(f"cannot resume {path}: it holds no training state")
    return payload


def own_checkpoint(weights: str | None) -> dict[str, Any] | None:
    """The resaction checkpoint a ``--weights`` path names, read once; None for named weights,
    ``none``, or a file that is not a resaction checkpoint (a plain state dict)."""
    path = Path(str(weights or "")).expanduser()
    if str(weights or "none") == "none" or not path.is_file():
        return None
    try:
        return read_checkpoint(path)
    except CheckpointError:
        return None


def build_model(
    config: TrainConfig,
    num_classes: int,
    preprocess: dict[str, Any],
    resumed: dict[str, Any] | None,
    say: Callable[[str], None],
) -> tuple[nn.Module, bool]:
    """The network to train and whether it is a pruned one: from the named weights, a pruned
    checkpoint, or the weights of the run being resumed."""
    own = own_checkpoint(config.weights)
    # a pruned network cannot be built by create_model: its layers are narrower
    pruned = load_checkpoint(config.weights) if own and own.get("pruned") else None
    if pruned is not None:
        model = pruned.model
        if len(pruned.classes) != num_classes:
            model.reset_classifier(num_classes)
    else:
        weights = None if resumed is not None else config.weights
        model = create_model(
            config.model, num_classes=num_classes, weights=weights, **config.model_kwargs
        )
    wanted = int(preprocess.get("segment_len", 1) or 1)
    reads = getattr(model, "segment_len", 1)
    if reads != wanted:
        raise ConfigError(
            f"{config.model} reads segments of {reads} frames but the "
            f"preprocessing samples {wanted}: set --model-kwarg segment_len=N and "
            "-p segment_len=N together"
        )
    report = getattr(model, "load_report", None)
    if report is not None:
        say(report.summary() if hasattr(report, "summary") else str(report))
    if resumed is None and pruned is None and own and own.get("classes") == pretext_classes():
        # the pretext task's classifier (speed, direction) means nothing here, whatever its size
        model.reset_classifier(num_classes)
        say(f"a new classifier for {num_classes} classes (the pretext task's is not kept)")
    if resumed is not None:
        try:
            model.load_state_dict(resumed["state_dict"])
        except RuntimeError as error:
            raise CheckpointError(
                f"cannot resume {Path(config.out) / LAST_CHECKPOINT}: its weights do not fit "
                f"{config.model} with {num_classes} classes ({first_line(error, 160)})"
            ) from None
    return model, pruned is not None


@dataclass
class Optimisation:
    """Optimiser, warm-up + cosine schedule, AMP scaler and loss of one run."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    total_steps: int
    warmup_steps: int


def build_optimisation(
    config: TrainConfig,
    model: nn.Module,
    labels: list[int],
    num_classes: int,
    steps_per_epoch: int,
    device: torch.device,
    use_amp: bool,
) -> Optimisation:
    if config.freeze_bn:
        freeze_batchnorm(model)
    groups = param_groups(
        model,
        lr=config.lr,
        backbone_lr_mult=config.backbone_lr_mult,
        weight_decay=config.weight_decay,
    )
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    class_weights = None
    if config.balance == "loss":
        class_weights = class_balance_weights(labels, num_classes).to(device)
    return Optimisation(
        optimizer=optimizer,
        scheduler=warmup_cosine(optimizer, warmup_steps, total_steps),
        scaler=torch.amp.GradScaler(device.type, enabled=use_amp),
        criterion=nn.CrossEntropyLoss(weight=class_weights, label_smoothing=config.label_smoothing),
        total_steps=total_steps,
        warmup_steps=warmup_steps,
    )
