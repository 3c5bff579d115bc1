"""Distributed data parallel under ``torchrun``: process group, device, rank-0-only side effects.

``torchrun`` (single or multi node) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them
the run is a single process. Global rank 0 writes logs and checkpoints; ``LOCAL_RANK`` picks the
GPU on each node.
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from resaction.errors import ConfigError, ResactionError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is this process's GPU when there is one, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} asked for but CUDA is not available; use --device cpu"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for but MPS is not available; use --device cpu")
    return device


def setup(device_name: str = "auto", timeout_s: float = 1800) -> DistContext:
    """Join the process group when launched by ``torchrun``; otherwise a one-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
            device_id=device if device.type == "cuda" else None,
        )
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown(context: DistContext, together: bool = True) -> None:
    """Leave the process group; ``together`` waits for every rank first.

    A rank that shut its connections while another still worked (rank 0 writing the last
    checkpoint) could abort at the very end of a finished job. After a failure the others may
    never arrive, so a failing rank leaves alone.

    The finished trainer's DDP model sits in a reference cycle, so it outlives the trainer and
    would be freed with its Gloo work objects only at a later collection or while the interpreter
    shuts down, where freeing them can abort the process (SIGABRT, "terminate called without an
    active exception"; CI saw it on rank 0 of the two-node test). Collecting first frees them
    while everything is still alive.
    """
    if context.enabled and dist.is_initialized():
        gc.collect()
        if together:
            dist.barrier()
        dist.destroy_process_group()


def barrier(context: DistContext) -> None:
    if context.enabled:
        dist.barrier()


def broadcast(context: DistContext, value: Any) -> Any:
    """Rank 0's value on every rank (any picklable object)."""
    if not context.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def on_main(context: DistContext, work: Callable[[], Any]) -> Any:
    """Run ``work`` on rank 0 only and give its result, or raise its user error, on every rank.

    For what only rank 0 can see: its output folder and the checkpoints in it (other nodes of a
    multi-node job need not share a file system).
    """
    outcome: tuple[Any, ResactionError | None] = (None, None)
    if context.is_main:
        try:
            outcome = (work(), None)
        except ResactionError as error:
            if not context.enabled:
                raise
            outcome = (None, error)
    value, error = broadcast(context, outcome)
    if error is not None:
        raise error
    return value


def all_reduce_sum(context: DistContext, values: list[float]) -> list[float]:
    """Element-wise sum of a few numbers over all ranks."""
    if not context.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(context))
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def all_gather_objects(context: DistContext, value: Any) -> list[Any]:
    if not context.enabled:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def sync_buffers(context: DistContext, model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank.

    DDP broadcasts buffers at the start of each forward pass, so after the last step each rank
    still holds the statistics of its own last batch.
    """
    if context.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def check_replicas_agree(context: DistContext, model: nn.Module) -> None:
    """Under DDP every process must end with the same weights; anything else is a bug."""
    if not context.enabled:
        return
    sync_buffers(context, model)
    digests = set(all_gather_objects(context, state_digest(model)))
    if len(digests) != 1:
        raise RuntimeError(
            f"data-parallel replicas diverged: {len(digests)} different weight sets "
            f"on {context.world_size} processes"
        )


def state_digest(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names and bytes)."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def wrap(model: nn.Module, context: DistContext) -> nn.Module:
    """``DistributedDataParallel`` over the parameters that currently require gradients."""
    if not context.enabled:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def _collective_device(context: DistContext) -> torch.device:
    return context.device if context.device.type == "cuda" else torch.device("cpu")
