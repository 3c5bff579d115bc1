"""The state a resumed run needs besides its weights: optimiser, schedule, RNG streams, data order.

Everything here is stored as tensors, lists and numbers, so checkpoints load with
``torch.load(weights_only=True)``.

The data order is a function of ``(seed, epoch)`` alone (``data.loader.EpochSampler``), so the
position in an epoch (``Position``) is all a resumed run needs to see the same clips.
"""

from __future__ import annotations

import dataclasses
import math
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from resaction.engine.distributed import DistContext, all_reduce_sum
from resaction.engine.schedule import load_schedule_state
from resaction.errors import CheckpointError


def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """The global RNG streams (Python, NumPy, torch CPU and ``device``'s CUDA) as plain values.

    Only this process's own GPU stream is kept: under DDP every rank restores rank 0's state into
    its own device, and all ranks draw the same numbers.
    """
    version, mt_state, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": {
            "version": int(version),
            "state": torch.tensor(mt_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Put back what ``capture_rng`` captured."""
    python = state["python"]
    random.setstate(
        (python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss_next"])
    )
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one number."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class EpochTotals:
    """Running sums of one epoch on this rank (global sums once ``reduced``)."""

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    wait_s: float = 0.0
    busy_s: float = 0.0

    def __add__(self, other: EpochTotals) -> EpochTotals:
        pairs = zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
        return EpochTotals(*(a + b for a, b in pairs))

    def reduced(self, context: DistContext) -> EpochTotals:
        return EpochTotals(*all_reduce_sum(context, list(dataclasses.astuple(self))))


@dataclass
class Position:
    """Where a run stands: the epoch in progress (0-based), its batches done, optimiser steps."""

    epoch: int = 0
    batches_done: int = 0
    step: int = 0


@dataclass
class BestEpoch:
    """The best value of the monitored metric so far, its epoch, and early stopping's patience."""

    monitor: str
    mode: str = "max"
    patience: int | None = None
    metric: float | None = None
    epoch: int | None = None

    def update(self, row: dict[str, Any]) -> bool:
        """Record a new best; without the monitored value, every epoch is the best (best = last)."""
        value = row.get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return True
        sign = 1 if self.mode == "max" else -1
        if self.metric is None or sign * (value - self.metric) > 0:
            self.metric, self.epoch = float(value), int(row["epoch"])
            return True
        return False

    def stale(self, history: list[dict[str, Any]]) -> bool:
        """Whether the metric has not improved for ``patience`` epochs (time to stop early)."""
        if self.patience is None or self.epoch is None or not history:
            return False
        return int(history[-1]["epoch"]) - self.epoch >= self.patience


@dataclass
class Resumed:
    """What a checkpoint gives back besides weights, optimiser and schedule."""

    position: Position
    totals: EpochTotals
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None


def warn_if_inexact(
    saved: dict[str, Any], sampler_state: dict[str, Any], config: Any, context: DistContext
) -> None:
    """Warn when a resumed run changed what decides its data order or arithmetic (config keys,
    processes, torch threads): it will not reproduce an uninterrupted run exactly."""
    keys = ("seed", "batch_size", "accumulate", "balance", "max_steps_per_epoch", "data")
    changed = [key for key in keys if key in saved and saved[key] != getattr(config, key)]
    if sampler_state.get("world_size", 1) != context.world_size:
        changed.append("number of processes")
    if sampler_state.get("threads", torch.get_num_threads()) != torch.get_num_threads():
        changed.append("number of torch threads")
    if changed:
        warnings.warn(
            f"resumed run differs in {', '.join(changed)}: it will not reproduce an "
            "uninterrupted run exactly",
            stacklevel=4,
        )


def training_state(
    *,
    optimizer: Optimizer,
    scheduler: LRScheduler,
    scaler: torch.amp.GradScaler,
    position: Position,
    totals: EpochTotals,
    world_size: int,
    device: torch.device,
    config: dict[str, Any],
    history: list[dict[str, Any]],
    best_metric: float | None,
    best_epoch: int | None,
) -> dict[str, Any]:
    """The training fields of a checkpoint (``save_checkpoint``'s keyword arguments)."""
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "epoch": position.epoch,
        "step": position.step,
        "config": config,
        "rng": capture_rng(device),
        "sampler": {
            "epoch": position.epoch,
            "batches_done": position.batches_done,
            "world_size": world_size,
            "threads": torch.get_num_threads(),
        },
        "epoch_totals": dataclasses.asdict(dataclasses.replace(totals, wait_s=0.0, busy_s=0.0)),
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "history": history,
    }


def restore_training_state(
    payload: dict[str, Any],
    *,
    path: Path,
    optimizer: Optimizer,
    scheduler: LambdaLR,
    scaler: torch.amp.GradScaler,
    warmup_steps: int,
    total_steps: int,
    device: torch.device,
) -> Resumed:
    """Load optimiser, schedule, scaler and RNG streams from ``payload``; say where to go on."""
    try:
        optimizer.load_state_dict(payload["optimizer"])
    except (ValueError, KeyError) as error:
        raise CheckpointError(
            f"cannot resume {path}: its optimiser state does not fit this run ({error})"
        ) from None
    load_schedule_state(scheduler, payload["scheduler"], warmup_steps, total_steps)
    if payload.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(payload["scaler"])
    restore_rng(payload["rng"], device)
    sampler = payload["sampler"]
    return Resumed(
        position=Position(
            epoch=int(sampler["epoch"]),
            batches_done=int(sampler["batches_done"]),
            step=int(payload.get("step", 0)),
        ),
        totals=EpochTotals(**payload.get("epoch_totals", {})),
        history=list(payload.get("history", [])),
        best_metric=payload.get("best_metric"),
        best_epoch=payload.get("best_epoch"),
    )
