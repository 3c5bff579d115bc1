"""A tiny checkpoint, real short videos, and apps built around them for the service tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from resaction.inference import Predictor
from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint
from resaction.serve import ServeSettings, create_app

CLASSES = ["class_a", "class_b", "class_c"]
PREPROCESS = {
    "clip_len": 4,
    "sampling": "dense",
    "frame_interval": 1,
    "target_fps": None,
    "resize": 36,
    "crop": 32,
    "mean": [0.45, 0.45, 0.45],
    "std": [0.225, 0.225, 0.225],
}
SHORT_VIDEO = "hockey_fight/fight/fi102_xvid.avi"  # 1.6 s, 360x288, MPEG-4 Part 2
LONGER_VIDEO = "kinetics400_samples/arm_wrestling/demo.mp4"  # 10 s, 340x256, H.264


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tsn_resnet18 on 4 frames of 32x32; a scaled-up head makes its answers
    confident enough for the timeline to find segments."""
    torch.manual_seed(0)
    model = create_model("tsn_resnet18", num_classes=len(CLASSES))
    with torch.no_grad():
        model.get_classifier().weight.mul_(50.0)
    return save_checkpoint(
        tmp_path_factory.mktemp("serve-ckpt") / "tiny.pt",
        model,
        model_name="tsn_resnet18",
        classes=CLASSES,
        preprocess=PREPROCESS,
        protocol={"num_clips": 2, "num_crops": 1},
    )


@pytest.fixture(scope="session")
def tiny_predictor(tiny_checkpoint: Path) -> Predictor:
    return Predictor.from_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="session")
def short_video(videos_dir: Path) -> Path:
    return videos_dir / SHORT_VIDEO


@pytest.fixture(scope="session")
def longer_video(videos_dir: Path) -> Path:
    return videos_dir / LONGER_VIDEO


class GatedBackend:
    """Wraps a real backend but holds every call until ``gate`` opens: a job that runs as long
    as a test wants. ``entered`` is set when a call starts waiting."""

    name = "gated"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self, batch: Any) -> np.ndarray:
        self.entered.set()
        if not self.gate.wait(timeout=60):
            raise TimeoutError("the test never opened the gate")
        return self.inner(batch)


def gated_predictor(checkpoint: Path) -> tuple[Predictor, GatedBackend]:
    predictor = Predictor.from_checkpoint(checkpoint)
    backend = GatedBackend(predictor.backend)
    predictor.backend = backend
    return predictor, backend


@pytest.fixture
def make_settings(tiny_checkpoint: Path, tmp_path: Path) -> Callable[..., ServeSettings]:
    def make(**overrides: Any) -> ServeSettings:
        values: dict[str, Any] = {"model": tiny_checkpoint, "state_dir": tmp_path / "state"}
        values.update(overrides)
        return ServeSettings(**values)

    return make


@pytest.fixture
def make_client(
    make_settings: Callable[..., ServeSettings], tiny_predictor: Predictor, tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """``make_client(predictor=None, **settings)``: a started TestClient (workers running), each
    on its own state folder (one server per folder is all the lock allows)."""
    clients: list[TestClient] = []

    def make(predictor: Predictor | None = None, **overrides: Any) -> TestClient:
        overrides.setdefault("state_dir", tmp_path / f"state-{len(clients)}")
        app = create_app(make_settings(**overrides), predictor or tiny_predictor)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def upload(path: Path, name: str | None = None) -> dict[str, Any]:
    return {"file": (name or path.name, path.read_bytes(), "application/octet-stream")}


def wait_for_job(client: TestClient, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until the job is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def wait_for_uploads_removed(service: Any, timeout: float = 5.0) -> None:
    """A finished job's worker deletes its upload just after it records the job as finished
    (never before: a job whose lease was lost is run again from that upload), so a client that
    saw "done" may still find it for a moment."""
    wait_until(lambda: not any(service.uploads_dir.iterdir()), timeout)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
