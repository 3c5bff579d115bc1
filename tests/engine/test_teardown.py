"""Leaving the process group frees what still holds it (a finished trainer's DDP model)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import torch.distributed as dist
from torch import nn

from resaction.engine import distributed


def test_teardown_frees_a_ddp_model_held_in_a_reference_cycle(tmp_path: Path) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    gc.disable()  # only teardown's own collection may free the cycle
    try:
        holder: dict = {"model": nn.parallel.DistributedDataParallel(nn.Linear(2, 2))}
        holder["self"] = holder
        alive = weakref.ref(holder["model"])
        del holder
        assert alive() is not None
        distributed.teardown(distributed.DistContext(rank=0, world_size=2))
    finally:
        gc.enable()
        if dist.is_initialized():
            dist.destroy_process_group()
    assert alive() is None
    assert not dist.is_initialized()
