"""Learning-rate schedule: linear warm-up, then cosine decay, stepped once per optimiser step."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class WarmupCosine:
    """The factor applied to every group's base learning rate at a given optimiser step.

    A callable object rather than a closure, so ``LambdaLR.state_dict`` stores its plain
    attributes and the scheduler survives a ``weights_only`` checkpoint round trip.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_factor: float = 0.0) -> None:
        self.warmup_steps = max(0, int(warmup_steps))
        self.total_steps = max(1, int(total_steps))
        self.min_factor = float(min_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (
            1.0 + math.cos(math.pi * progress)
        )


def warmup_cosine(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_factor: float = 0.0
) -> LambdaLR:
    """A ``LambdaLR`` that warms up linearly for ``warmup_steps`` and then follows a cosine."""
    return LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_factor))


def load_schedule_state(
    scheduler: LambdaLR, state: dict, warmup_steps: int, total_steps: int
) -> None:
    """Restore a scheduler's position but keep the lengths of this run (epochs may be extended)."""
    scheduler.load_state_dict(state)
    for factor in scheduler.lr_lambdas:
        if isinstance(factor, WarmupCosine):
            factor.warmup_steps = max(0, int(warmup_steps))
            factor.total_steps = max(1, int(total_steps))
    scheduler._last_lr = [
        base * factor(scheduler.last_epoch)
        for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)
    ]
    for group, lr in zip(scheduler.optimizer.param_groups, scheduler._last_lr, strict=True):
        group["lr"] = lr
