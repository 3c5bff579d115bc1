"""The state a resumed run needs besides its weights: optimiser, schedule, RNG streams, data order.

Everything here is stored as tensors, lists and numbers, so checkpoints load with
``torch.load(weights_only=True)``.

The data order is a function of ``(seed, epoch)`` alone: ``EpochSampler`` draws the epoch's index
order (a permutation, or a class-balanced draw with replacement) and one draw key per position
from a generator seeded with both, shards the order across ranks and can start part-way through.
``VideoClipDataset`` takes ``(index, key)`` and draws the item's clip and crop from
``(seed, key, index)``, so augmentation does not depend on which worker decodes it, on the number
of workers, or on where a run was interrupted; a video drawn twice in a balanced epoch gets two
different clips.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

from resaction.data.loader import collate_skip_bad, default_num_workers, seed_worker
from resaction.engine.distributed import DistContext, all_reduce_sum
from resaction.engine.schedule import load_schedule_state
from resaction.errors import CheckpointError

_SEED_MIX = 1_000_003


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


def class_balance_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """Per-class weights inversely proportional to class frequency, mean 1 over the samples."""
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.int64), minlength=num_classes)
    weights = torch.zeros(num_classes, dtype=torch.float64)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present].double())
    return weights.float()


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(dataset index, draw key)`` for one rank's share of one epoch.

    ``balance=True`` draws each epoch with replacement, with probability inversely proportional
    to class frequency (``WeightedRandomSampler``), so every class is seen equally often.
    The order is padded (by repeating its start) to a multiple of ``world_size`` so every rank
    takes the same number of steps.
    """

    def __init__(
        self,
        labels: Sequence[int],
        *,
        seed: int,
        balance: bool = False,
        num_classes: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not labels:
            raise ValueError("EpochSampler needs at least one sample")
        self.labels = list(labels)
        self.seed = int(seed)
        self.balance = balance
        self.num_classes = num_classes or (max(self.labels) + 1)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        return self.per_rank - self.start

    @property
    def per_rank(self) -> int:
        return -(-len(self.labels) // self.world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch, and how many of this rank's items were already consumed in it."""
        self.epoch = int(epoch)
        self.start = int(start)

    def epoch_order(self, epoch: int) -> tuple[list[int], list[int]]:
        """The global (all ranks, padded) index order of an epoch and one draw key per position."""
        generator = torch.Generator().manual_seed(self.seed * _SEED_MIX + epoch)
        total = self.per_rank * self.world_size
        if self.balance:
            class_weights = class_balance_weights(self.labels, self.num_classes)
            sample_weights = class_weights[torch.as_tensor(self.labels)].double()
            drawn = WeightedRandomSampler(
                sample_weights, len(self.labels), replacement=True, generator=generator
            )
            order = list(drawn)
        else:
            order = torch.randperm(len(self.labels), generator=generator).tolist()
        order += order[: total - len(order)]
        keys = torch.randint(0, 2**31 - 1, (total,), generator=generator).tolist()
        return order, keys

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order, keys = self.epoch_order(self.epoch)
        positions = range(self.rank, len(order), self.world_size)
        for position in list(positions)[self.start :]:
            yield order[position], keys[position]


def make_train_loader(
    dataset: Dataset, sampler: EpochSampler, batch_size: int, num_workers: int | None, seed: int
) -> DataLoader:
    """``data.loader``'s worker and batching choices, with the trainer's own sampler.

    Batches are ``ClipBatch``es; failed videos arrive in ``batch.skipped`` and a batch may be
    empty (``clips`` None), which the loop counts but does not train on, so positions stay exact.
    """

    workers = default_num_workers() if num_workers is None else num_workers
    extra: dict[str, Any] = {"persistent_workers": True, "prefetch_factor": 2} if workers else {}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skip_bad,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        **extra,
    )


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
class Resumed:
    """What a checkpoint gives back besides weights, optimiser and schedule."""

    position: Position
    totals: EpochTotals
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None


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
