"""Readers used from several threads at once (the service and predict_many decode in threads)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import torch

from resaction.io import VideoReader


def test_readers_in_parallel_threads_return_the_same_frames_as_one_thread(
    videos_dir: Path, tmp_path: Path
) -> None:
    sources = sorted((videos_dir / "ucf101_subset").rglob("*.avi"))[:4]
    copies = []
    for i, source in enumerate(sources * 2):
        copy = tmp_path / f"{i}_{source.name}"
        shutil.copy(source, copy)
        copies.append(copy)

    def read(path: Path) -> torch.Tensor:
        with VideoReader(path, short_side=64) as reader:
            return reader.get_frames(list(range(0, reader.num_frames, 7)))

    expected = {path: read(path) for path in copies}
    results: dict[Path, torch.Tensor] = {}
    errors: list[str] = []

    def work(paths: list[Path]) -> None:
        for path in paths:
            try:
                results[path] = read(path)
            except Exception as error:  # collected and reported by the assertion below
                errors.append(f"{path.name}: {error}")

    threads = [threading.Thread(target=work, args=(copies[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for path in copies:
        assert torch.equal(results[path], expected[path]), path.name
