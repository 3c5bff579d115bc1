from __future__ import annotations

import io
import itertools
import math

import pytest
import torch

from resaction.engine.schedule import load_schedule_state, warmup_cosine


def make_optimizer(lrs: tuple[float, ...] = (0.1,)) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def run(scheduler, optimizer, steps: int) -> list[list[float]]:
    seen = []
    for _ in range(steps):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


def test_warm_up_rises_linearly_then_cosine_falls_to_zero() -> None:
    optimizer = make_optimizer()
    lrs = [lr[0] for lr in run(warmup_cosine(optimizer, 4, 20), optimizer, 21)]
    warm = lrs[:4]
    assert all(b > a for a, b in itertools.pairwise(warm))
    assert warm[-1] < 0.1
    assert lrs[4] == pytest.approx(0.1)
    decay = lrs[4:]
    assert all(b <= a for a, b in itertools.pairwise(decay))
    assert lrs[12] == pytest.approx(0.05)
    assert lrs[20] == pytest.approx(0.0, abs=1e-12)


def test_group_ratios_hold_at_every_step() -> None:
    optimizer = make_optimizer((0.1, 0.01))
    for head, backbone in run(warmup_cosine(optimizer, 3, 10), optimizer, 9):
        assert backbone == pytest.approx(head * 0.1)


def test_state_round_trips_through_a_weights_only_checkpoint() -> None:
    optimizer = make_optimizer()
    scheduler = warmup_cosine(optimizer, 2, 10)
    run(scheduler, optimizer, 5)
    buffer = io.BytesIO()
    torch.save({"scheduler": scheduler.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    expected = run(scheduler, optimizer, 5)
    optimizer2 = make_optimizer()
    scheduler2 = warmup_cosine(optimizer2, 2, 10)
    optimizer2.load_state_dict(saved["optimizer"])
    load_schedule_state(scheduler2, saved["scheduler"], 2, 10)
    assert run(scheduler2, optimizer2, 5) == expected


def test_extending_the_run_stretches_the_remaining_cosine() -> None:
    optimizer = make_optimizer()
    scheduler = warmup_cosine(optimizer, 0, 10)
    run(scheduler, optimizer, 5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    load_schedule_state(scheduler, scheduler.state_dict(), 0, 20)
    halfway_to_quarter = 0.1 * 0.5 * (1 + math.cos(math.pi * 5 / 20))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(halfway_to_quarter)
