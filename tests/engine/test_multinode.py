"""Multi-node training: two single-process torchrun "nodes" on loopback, as on two machines.

Each node gets its own run folder, as two machines without a shared disk would: only global
rank 0 may write there, the other node's folder must stay untouched, and a resume must take
rank 0's checkpoint on both nodes. A run stopped after one epoch and resumed on two nodes must
end with the weights of an uninterrupted two-node run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resaction.data.synthetic import generate_dataset

pytestmark = pytest.mark.slow

TIMEOUT_S = 400


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(
        root, 3, size=32, num_frames=8, classes=["grow", "move_left", "shrink"], progress=False
    )
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_command(data: Path, out: Path, epochs: int, *, resume: bool = False) -> list[str]:
    command = [
        "-m",
        "resaction.cli",
        "train",
        "--data",
        str(data),
        "--model",
        "tsn_resnet18",
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "3",
        "--val-split",
        "0.34",
        "--clips",
        "1",
        "--workers",
        "0",
        "--device",
        "cpu",
        "-p",
        "clip_len=4",
        "-p",
        "resize=32",
        "-p",
        "crop=32",
        "--no-progress",
    ]
    return [*command, "--resume"] if resume else command


def launch_two_nodes(
    data: Path, outs: tuple[Path, Path], epochs: int, *, resume: bool = False, c10d: bool = True
) -> list[str]:
    """Both nodes' torchrun, each with one process; returns their stdouts (node 0 first)."""
    port = free_port()
    if c10d:
        meeting = [
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}",
            f"--rdzv_id=multinode-{port}",
        ]
    else:
        meeting = ["--master_addr=127.0.0.1", f"--master_port={port}"]
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={rank}",
                *meeting,
                *train_command(data, outs[rank], epochs, resume=resume),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for rank in range(2)
    ]
    outputs = [node.communicate(timeout=TIMEOUT_S) for node in nodes]
    for rank, (node, (_, stderr)) in enumerate(zip(nodes, outputs, strict=True)):
        assert node.returncode == 0, f"node {rank} failed:\n{stderr[-3000:]}"
    return [stdout for stdout, _ in outputs]


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_two_nodes_write_once_resume_from_rank_zero_and_match_an_uninterrupted_run(
    dataset: Path, tmp_path: Path
) -> None:
    node0, node1 = tmp_path / "node0" / "run", tmp_path / "node1" / "run"

    stdout = launch_two_nodes(dataset, (node0, node1), epochs=1)
    assert "identical weights on all" in stdout[0] and stdout[1] == ""
    assert not node1.exists(), f"rank 1 wrote into its run folder: {files_in(node1)}"
    assert sorted(p.name for p in node0.glob("*.pt")) == ["best.pt", "last.pt"]
    assert len((node0 / "metrics.csv").read_text().splitlines()) == 2
    assert len(list((node0 / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert torch.load(node0 / "last.pt", weights_only=True)["epoch"] == 1

    # The second epoch on both nodes: node 1 has no checkpoint of its own and must go on from
    # rank 0's, or the two would disagree on epoch, step and optimiser state.
    stdout = launch_two_nodes(dataset, (node0, node1), epochs=2, resume=True)
    assert "identical weights on all" in stdout[0] and stdout[1] == ""
    assert not node1.exists(), f"rank 1 wrote into its run folder: {files_in(node1)}"
    assert len((node0 / "metrics.csv").read_text().splitlines()) == 3
    assert len(list((node0 / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert not [name for name in files_in(node0) if name.endswith(".tmp")]
    resumed = torch.load(node0 / "last.pt", weights_only=True)
    assert (resumed["epoch"], resumed["step"], resumed["sampler"]["world_size"]) == (2, 2, 2)

    # The same two epochs without a stop, both nodes writing to one shared folder (the common
    # set-up), launched with a fixed master address instead of the c10d rendezvous.
    shared = tmp_path / "shared" / "run"
    stdout = launch_two_nodes(dataset, (shared, shared), epochs=2, c10d=False)
    assert stdout[0].count("identical weights on all") == 1 and stdout[1] == ""
    assert sorted(p.name for p in shared.glob("*.pt")) == ["best.pt", "last.pt"]
    assert len(list((shared / "tensorboard").glob("events.out.tfevents.*"))) == 1
    whole = torch.load(shared / "last.pt", weights_only=True)
    assert whole["state_dict"].keys() == resumed["state_dict"].keys()
    for name, tensor in whole["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name
    assert whole["history"][-1]["train_loss"] == pytest.approx(
        resumed["history"][-1]["train_loss"], rel=1e-6
    )
