"""DataLoader defaults that keep a small CPU busy without stalling; batches that skip bad videos.

Workers: at most 2 (none on one core), one torch thread each, kept alive between epochs. Random
draws are reproducible: the order comes from ``(seed, epoch)`` and each item's clip and crop from
``(seed, epoch, index)``, so a run resumed at epoch ``e`` (after ``loader.set_epoch(e)``) sees the
same clips whatever the number of workers. The epoch travels with each index, because persistent
workers hold their own copy of the dataset and would not see ``set_epoch`` otherwise.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from resaction.data.dataset import SkippedVideo


@dataclass
class ClipBatch:
    """A batch of clips; unpacks as ``clips, labels, indices``.

    ``skipped`` holds the videos of this batch that failed to decode (dropped from the rest).
    ``clips`` is None when every video of the batch failed; ``ClipLoader`` never yields those.
    """

    clips: Tensor | None
    labels: Tensor
    indices: Tensor
    skipped: tuple[SkippedVideo, ...] = ()

    def __iter__(self) -> Iterator[Any]:
        return iter((self.clips, self.labels, self.indices))

    def __len__(self) -> int:
        return len(self.indices)

    def pin_memory(self) -> ClipBatch:
        clips = None if self.clips is None else self.clips.pin_memory()
        return ClipBatch(clips, self.labels.pin_memory(), self.indices.pin_memory(), self.skipped)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        clips = None if self.clips is None else self.clips.to(device, non_blocking=non_blocking)
        labels = self.labels.to(device, non_blocking=non_blocking)
        return ClipBatch(clips, labels, self.indices, self.skipped)


def collate_skip_bad(items: Sequence[Any]) -> ClipBatch:
    """Stack ``(clip, label, index)`` items, dropping ``SkippedVideo`` markers into ``skipped``."""
    good = [item for item in items if not isinstance(item, SkippedVideo)]
    skipped = tuple(item for item in items if isinstance(item, SkippedVideo))
    if not good:
        empty = torch.empty(0, dtype=torch.int64)
        return ClipBatch(None, empty, empty, skipped)
    clips = torch.stack([item[0] for item in good])
    labels = torch.as_tensor([int(item[1]) for item in good], dtype=torch.int64)
    indices = torch.as_tensor([int(item[2]) for item in good], dtype=torch.int64)
    return ClipBatch(clips, labels, indices, skipped)


class EpochSampler(Sampler):
    """Indices in an order fixed by ``(seed, epoch)``, sharded over ``num_replicas`` processes.

    With ``with_epoch`` each index comes as ``(index, epoch)`` for datasets that draw their
    randomness from the epoch. Shards are padded to equal length as in ``DistributedSampler``.
    """

    def __init__(
        self,
        length: int,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        with_epoch: bool = False,
    ) -> None:
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.with_epoch = with_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.length // self.num_replicas)

    def __iter__(self) -> Iterator[Any]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        else:
            order = np.arange(self.length)
        if self.num_replicas > 1:
            padded = np.resize(order, len(self) * self.num_replicas)
            order = padded[self.rank :: self.num_replicas]
        for index in order.tolist():
            yield (index, self.epoch) if self.with_epoch else index


class ClipLoader(DataLoader):
    """A DataLoader that records skipped videos in the main process and hides empty batches."""

    def set_epoch(self, epoch: int) -> None:
        """Call before iterating each epoch: fixes the order and the random clips and crops."""
        if isinstance(self.sampler, EpochSampler):
            self.sampler.set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        record = getattr(self.dataset, "record_skipped", None)
        for batch in super().__iter__():
            if isinstance(batch, ClipBatch):
                if batch.skipped and record is not None:
                    record(batch.skipped)
                if batch.clips is None:
                    continue
            yield batch


def default_num_workers() -> int:
    """Two workers at most, none on a single core (workers there only add switching)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return 0 if cores <= 1 else min(2, cores)


def seed_worker(worker_id: int) -> None:
    """One torch thread per worker, and Python/NumPy seeded from the worker's torch seed."""
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    num_workers: int | None = None,
    *,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    distributed: bool | None = None,
    collate_fn: Callable[[Sequence[Any]], Any] = collate_skip_bad,
    prefetch_factor: int = 2,
) -> ClipLoader:
    """A loader over ``dataset``, shuffled by ``(seed, epoch)`` when ``train``.

    ``num_workers`` defaults to ``default_num_workers()``; workers persist between epochs.
    ``pin_memory`` defaults to CUDA being available. ``distributed`` (default: whether
    ``torch.distributed`` is initialised) gives each process its shard.
    """
    workers = default_num_workers() if num_workers is None else num_workers
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    replicas, rank = 1, 0
    if distributed:
        replicas, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    sampler = EpochSampler(
        len(dataset),
        shuffle=train,
        seed=seed,
        num_replicas=replicas,
        rank=rank,
        with_epoch=getattr(dataset, "draw_key_in_item", False),
    )
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor}
    return ClipLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        **extra,
    )
