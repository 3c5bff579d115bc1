from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from resaction.data.loader import EpochSampler, class_balance_weights
from resaction.data.synthetic import generate_dataset
from resaction.engine.train_state import capture_rng, restore_rng, seed_everything


def draw_all() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_rng_state_survives_a_weights_only_checkpoint() -> None:
    seed_everything(7)
    draw_all()
    np.random.randn()  # leaves a cached gaussian in NumPy's state
    buffer = io.BytesIO()
    torch.save({"rng": capture_rng()}, buffer)
    expected = [draw_all() for _ in range(3)]
    seed_everything(99)
    buffer.seek(0)
    restore_rng(torch.load(buffer, weights_only=True)["rng"])
    assert [draw_all() for _ in range(3)] == expected


def test_epoch_order_depends_only_on_seed_and_epoch() -> None:
    labels = [0, 1] * 10
    first = EpochSampler(labels, seed=3)
    second = EpochSampler(labels, seed=3)
    first.set_epoch(2)
    second.set_epoch(2)
    assert list(first) == list(second)
    second.set_epoch(3)
    assert list(first) != list(second)
    assert sorted(index for index, _ in first) == list(range(20))


def test_ranks_share_out_one_epoch_and_resume_part_way() -> None:
    labels = [0, 1, 2] * 7  # 21 samples: padded to 22 for two ranks
    whole = EpochSampler(labels, seed=1)
    whole.set_epoch(4)
    order, seeds = whole.epoch_order(4)
    ranks = [EpochSampler(labels, seed=1, rank=r, world_size=2) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(4)
    shards = [list(sampler) for sampler in ranks]
    assert len(shards[0]) == len(shards[1]) == 11
    covered = {index for shard in shards for index, _ in shard}
    assert covered == set(range(21))
    assert shards[1][0] == (order[1], seeds[1])
    ranks[0].set_epoch(4, start=5)
    assert list(ranks[0]) == shards[0][5:]
    assert len(ranks[0]) == 6


def test_balanced_sampling_evens_out_classes() -> None:
    labels = [0] * 90 + [1] * 10
    sampler = EpochSampler(labels, seed=0, balance=True, num_classes=2)
    counts: Counter[int] = Counter()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        counts.update(labels[index] for index, _ in sampler)
    assert counts[1] / sum(counts.values()) == pytest.approx(0.5, abs=0.06)
    weights = class_balance_weights(labels, 3)
    assert weights[1] / weights[0] == pytest.approx(9.0)
    assert weights[2] == 0


def tiny_dataset(root: Path, videos_per_class: int = 4) -> Path:
    """A synthetic 3-class dataset of 32x32, 8-frame videos (its manifest CSV)."""
    return generate_dataset(
        root,
        videos_per_class,
        size=32,
        num_frames=8,
        classes=["grow", "move_left", "shrink"],
        progress=False,
    )


def train_command(manifest: Path, out: Path, workers: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "resaction.cli",
        "train",
        "--data",
        str(manifest),
        "--model",
        "tsn_resnet18",
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "3",
        "--val-split",
        "0.25",
        "--clips",
        "1",
        "--workers",
        str(workers),
        "--seed",
        "3",
        "-p",
        "clip_len=4",
        "-p",
        "resize=32",
        "-p",
        "crop=32",
        "--no-progress",
        *extra,
    ]


def environment() -> dict[str, str]:
    """One thread everywhere: float sums depend on the thread count, so all runs must match."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_cli(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "last.pt", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_a_run_killed_mid_epoch_and_resumed_ends_with_the_same_weights(tmp_path: Path) -> None:
    manifest = tiny_dataset(tmp_path / "data")
    uninterrupted = tmp_path / "whole"
    run_cli(train_command(manifest, uninterrupted, 0))

    interrupted = tmp_path / "killed"
    command = train_command(manifest, interrupted, 2, "--checkpoint-every-steps", "1")
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment()
    )
    try:
        deadline = time.monotonic() + 240
        while not (interrupted / "last.pt").exists():
            assert process.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    state = torch.load(interrupted / "last.pt", weights_only=True)
    assert state["sampler"]["batches_done"] > 0 or state["sampler"]["epoch"] > 0
    assert state["step"] < torch.load(uninterrupted / "last.pt", weights_only=True)["step"]

    run_cli([*command, "--resume"])
    expected, resumed = final_weights(uninterrupted), final_weights(interrupted)
    assert expected.keys() == resumed.keys()
    for key, tensor in expected.items():
        assert torch.equal(tensor, resumed[key]), key
    history = torch.load(interrupted / "last.pt", weights_only=True)["history"]
    whole_history = torch.load(uninterrupted / "last.pt", weights_only=True)["history"]
    for column in ("train_loss", "train_top1", "val_top1", "val_loss"):
        assert [row[column] for row in history] == pytest.approx(
            [row[column] for row in whole_history]
        )
    assert len((interrupted / "metrics.csv").read_text().splitlines()) == 3
