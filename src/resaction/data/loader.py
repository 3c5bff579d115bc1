"""DataLoader defaults that keep a small CPU busy without stalling; batches that skip bad videos.

Workers: at most 2 (none on one core), one torch thread each, kept alive between epochs. Random
draws are reproducible: the order and one draw key per position come from ``(seed, epoch)``, and
each item's clip and crop from ``(seed, draw key, index)``, so a run resumed at epoch ``e`` and
position ``p`` (``loader.set_epoch(e, start=p)``) sees the same clips whatever the number of
workers or processes. The key travels with each index, because persistent workers hold their own
copy of the dataset and would not see ``set_epoch`` otherwise. One sampler serves training
(shuffled, optionally class-balanced, resumable part-way) and evaluation (the dataset's order).
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
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

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


_SEED_MIX = 1_000_003


def class_balance_weights(labels: Sequence[int], num_classes: int) -> Tensor:
    """Per-class weights inversely proportional to class frequency, mean 1 over the samples."""
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.int64), minlength=num_classes)
    weights = torch.zeros(num_classes, dtype=torch.float64)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present].double())
    return weights.float()


class EpochSampler(Sampler):
    """One rank's share of one epoch, in an order that is a function of ``(seed, epoch)`` alone.

    ``samples`` is the dataset's length, or its labels (needed for ``balance``). Shuffled, the
    order is a permutation, or with ``balance`` a draw with replacement with probability inversely
    proportional to class frequency (``WeightedRandomSampler``), so every class is seen equally
    often; unshuffled, it is the dataset's order. The order is padded (by repeating its start) to
    a multiple of ``world_size`` so every rank takes the same number of steps, and
    ``set_epoch(epoch, start)`` starts part-way through, which is how a run resumes mid-epoch.

    With ``with_key`` each index comes as ``(index, draw key)`` for datasets that draw their
    randomness from the key: one random key per position when shuffled (a video drawn twice in a
    balanced epoch gets two clips), the epoch itself when not.
    """

    def __init__(
        self,
        samples: int | Sequence[int],
        *,
        seed: int = 0,
        shuffle: bool = True,
        balance: bool = False,
        num_classes: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        with_key: bool = True,
    ) -> None:
        self.labels = None if isinstance(samples, int) else list(samples)
        self.length = samples if isinstance(samples, int) else len(self.labels or [])
        if self.length < 1:
            raise ValueError("EpochSampler needs at least one sample")
        if balance and self.labels is None:
            raise ValueError("a balanced EpochSampler needs the labels, not a length")
        self.seed = int(seed)
        self.shuffle = shuffle
        self.balance = balance
        self.num_classes = num_classes or (max(self.labels) + 1 if self.labels else 1)
        self.rank = rank
        self.world_size = world_size
        self.with_key = with_key
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        return self.per_rank - self.start

    @property
    def per_rank(self) -> int:
        return -(-self.length // self.world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch, and how many of this rank's items were already consumed in it."""
        self.epoch = int(epoch)
        self.start = int(start)

    def epoch_order(self, epoch: int) -> tuple[list[int], list[int]]:
        """The global (all ranks, padded) index order of an epoch and one draw key per position."""
        total = self.per_rank * self.world_size
        if not self.shuffle:
            order = list(range(self.length))
            return order + order[: total - len(order)], [epoch] * total
        generator = torch.Generator().manual_seed(self.seed * _SEED_MIX + epoch)
        if self.balance and self.labels is not None:
            class_weights = class_balance_weights(self.labels, self.num_classes)
            sample_weights = class_weights[torch.as_tensor(self.labels)].double()
            drawn = WeightedRandomSampler(
                sample_weights, self.length, replacement=True, generator=generator
            )
            order = list(drawn)
        else:
            order = torch.randperm(self.length, generator=generator).tolist()
        order += order[: total - len(order)]
        keys = torch.randint(0, 2**31 - 1, (total,), generator=generator).tolist()
        return order, keys

    def __iter__(self) -> Iterator[Any]:
        order, keys = self.epoch_order(self.epoch)
        positions = list(range(self.rank, len(order), self.world_size))[self.start :]
        for position in positions:
            yield (order[position], keys[position]) if self.with_key else order[position]


class ClipLoader(DataLoader):
    """A DataLoader that records skipped videos in the main process and, unless told to keep
    them (the trainer counts every batch so its position in an epoch stays exact), hides batches
    whose videos all failed."""

    keep_empty = False

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Call before iterating each epoch: fixes the order and the random clips and crops;
        ``start`` items of this process's share are skipped (a run resumed mid-epoch)."""
        if isinstance(self.sampler, EpochSampler):
            self.sampler.set_epoch(epoch, start=start)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        record = getattr(self.dataset, "record_skipped", None)
        for batch in super().__iter__():
            if isinstance(batch, ClipBatch):
                if batch.skipped and record is not None:
                    record(batch.skipped)
                if batch.clips is None and not self.keep_empty:
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
    sampler: EpochSampler | None = None,
    keep_empty: bool = False,
) -> ClipLoader:
    """A loader over ``dataset``, shuffled by ``(seed, epoch)`` when ``train``.

    ``num_workers`` defaults to ``default_num_workers()``; workers persist between epochs.
    ``pin_memory`` defaults to CUDA being available. ``distributed`` (default: whether
    ``torch.distributed`` is initialised) gives each process its shard. A given ``sampler``
    (the trainer's: balanced, resumable) replaces the default one.
    """
    workers = default_num_workers() if num_workers is None else num_workers
    if sampler is None:
        if distributed is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        world_size, rank = 1, 0
        if distributed:
            world_size, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        sampler = EpochSampler(
            len(dataset),
            shuffle=train,
            seed=seed,
            rank=rank,
            world_size=world_size,
            with_key=getattr(dataset, "draw_key_in_item", False),
        )
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor}
    loader = ClipLoader(
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
    loader.keep_empty = keep_empty
    return loader
