from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

import resaction.data.dataset as dataset_module
import resaction.data.loader as loader_module
from resaction.data.dataset import VideoClipDataset
from resaction.data.loader import (
    ClipBatch,
    EpochSampler,
    collate_skip_bad,
    default_num_workers,
    make_loader,
)
from resaction.data.manifests import VideoEntry
from resaction.data.sampling import RandomClipSampler
from resaction.errors import VideoOpenError


class FrameNumberReader:
    """Stands in for VideoReader: 8x8 frames whose pixels hold the frame number; paths with
    'bad' in their name fail to open."""

    def __init__(self, path: Path, **options) -> None:
        if "bad" in Path(path).name:
            raise VideoOpenError(f"{path} is not a video")
        self.num_frames, self.fps = 200, 25.0

    def __enter__(self) -> FrameNumberReader:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def get_frames(self, indices: list[int]) -> torch.Tensor:
        values = torch.tensor(indices, dtype=torch.uint8).view(-1, 1, 1, 1)
        return values.expand(-1, 8, 8, 3).contiguous()


@pytest.fixture()
def frame_numbers(monkeypatch) -> None:
    """Forked loader workers inherit the patched reader."""
    monkeypatch.setattr(dataset_module, "VideoReader", FrameNumberReader)


def _dataset(names: list[str]) -> VideoClipDataset:
    entries = [VideoEntry(Path(f"/videos/{name}.mp4"), i % 3) for i, name in enumerate(names)]
    return VideoClipDataset(entries, RandomClipSampler(4), transform=None, seed=3)


def _epoch(loader) -> list[tuple[int, int]]:
    """(index, first frame) of every item: which video and which clip was drawn."""
    out = []
    for clips, _, indices in loader:
        out += list(zip(indices.tolist(), clips[:, 0, 0, 0, 0].tolist(), strict=True))
    return out


@pytest.mark.parametrize(("cores", "expected"), [(1, 0), (2, 2), (16, 2)])
def test_default_workers_suit_small_machines(monkeypatch, cores: int, expected: int) -> None:
    monkeypatch.setattr(loader_module.os, "sched_getaffinity", lambda _: set(range(cores)))
    assert default_num_workers() == expected


def test_loader_settings(frame_numbers) -> None:
    dataset = _dataset([f"v{i}" for i in range(6)])
    loader = make_loader(dataset, batch_size=4, train=True, num_workers=2)
    assert loader.persistent_workers and loader.prefetch_factor == 2
    assert loader.pin_memory == torch.cuda.is_available()
    assert make_loader(dataset, batch_size=4, train=True, num_workers=0).num_workers == 0


class ThreadCount(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return torch.tensor(torch.get_num_threads()), 0, index


def test_workers_use_one_torch_thread() -> None:
    loader = make_loader(ThreadCount(), batch_size=2, train=False, num_workers=2)
    assert [int(v) for clips, _, _ in loader for v in clips] == [1, 1, 1, 1]


def test_epochs_are_reproducible_whatever_the_workers(frame_numbers) -> None:
    names = [f"v{i}" for i in range(10)]
    runs = {}
    for workers in (0, 2):
        loader = make_loader(_dataset(names), batch_size=3, train=True, num_workers=workers)
        runs[workers] = []
        for epoch in range(3):
            loader.set_epoch(epoch)
            runs[workers].append(_epoch(loader))
    assert runs[0] == runs[2]
    first, second, third = runs[0]
    assert sorted(i for i, _ in first) == list(range(10))
    assert [i for i, _ in first] != [i for i, _ in second]
    assert first != second != third
    resumed = make_loader(_dataset(names), batch_size=3, train=True, num_workers=0)
    resumed.set_epoch(2)
    assert _epoch(resumed) == third


def test_evaluation_order_is_the_dataset_order(frame_numbers) -> None:
    loader = make_loader(_dataset(["a", "b", "c", "d", "e"]), 2, train=False, num_workers=0)
    assert [i for i, _ in _epoch(loader)] == [0, 1, 2, 3, 4]


def test_all_bad_batches_are_hidden_and_recorded(frame_numbers) -> None:
    dataset = _dataset(["bad0", "bad1", "ok2", "ok3", "bad4", "bad5"])
    loader = make_loader(dataset, batch_size=2, train=False, num_workers=0)
    batches = list(loader)
    assert [b.indices.tolist() for b in batches] == [[2, 3]]
    assert [s.index for s in dataset.skipped] == [0, 1, 4, 5]


def test_collate_keeps_skipped_videos_with_the_batch(frame_numbers) -> None:
    dataset = _dataset(["ok", "bad", "ok2"])
    batch = collate_skip_bad([dataset[0], dataset[1], dataset[2]])
    assert isinstance(batch, ClipBatch) and len(batch) == 2
    clips, labels, indices = batch
    assert clips.shape == (2, 3, 4, 8, 8) and labels.tolist() == [0, 2]
    assert indices.tolist() == [0, 2]
    assert [s.path for s in batch.skipped] == ["/videos/bad.mp4"]


def test_shards_split_an_epoch_between_processes() -> None:
    shards = [list(EpochSampler(11, seed=1, world_size=2, rank=r, with_key=False)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 6
    assert set(shards[0]) | set(shards[1]) == set(range(11))
