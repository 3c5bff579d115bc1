"""Tiny checkpoints, generated videos and a loopback MPEG-TS server for the inference tests
(the server is ``monitor.streams.HttpSource``, shared with the monitor tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch

from resaction.detection.event_metrics import Span
from resaction.inference import Predictor
from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint

from ..monitor.streams import HttpSource, PacedPayload

CLASSES = ["dark", "mid", "bright"]


def tiny_preprocess(**overrides: Any) -> dict[str, Any]:
    preprocess = {
        "clip_len": 4,
        "sampling": "dense",
        "frame_interval": 1,
        "target_fps": None,
        "resize": 36,
        "crop": 32,
        "mean": [0.45, 0.45, 0.45],
        "std": [0.225, 0.225, 0.225],
    }
    preprocess.update(overrides)
    return preprocess


def make_checkpoint(path: Path, name: str = "r3d_10", **preprocess: Any) -> Path:
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(CLASSES))
    with torch.no_grad():
        # A freshly initialised head gives nearly uniform outputs; a sharper one makes every
        # difference in the input show in the probabilities the tests compare.
        model.get_classifier().weight.mul_(200.0)
    return save_checkpoint(
        path,
        model,
        model_name=name,
        classes=CLASSES,
        preprocess=tiny_preprocess(**preprocess),
        protocol={"num_clips": 3, "num_crops": 1},
    )


def write_video(
    path: Path,
    brightness: list[int] | np.ndarray,
    *,
    fps: int = 25,
    size: tuple[int, int] = (48, 64),
    codec: str = "libx264",
    fmt: str | None = None,
) -> Path:
    """One frame per entry of ``brightness`` (0-255), with a moving bar so frames differ."""
    height, width = size
    container = av.open(str(path), "w", format=fmt)
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if codec == "libx264":
        stream.options = {"g": "12", "preset": "ultrafast"}
    for index, level in enumerate(brightness):
        image = np.full((height, width, 3), int(level), np.uint8)
        column = (index * 3) % width
        image[:, column : column + 4] = 255 - int(level)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return path


RECORDING_FPS = 25
CALM, BLIP, INCIDENT = 50, 130, 200


def recording(
    path: Path, seed: int, seconds: int = 90, label: str = "incident"
) -> tuple[Path, list[Span]]:
    """Calm footage with incidents of 3-5 s and distractor blips of 1-2.5 s, 6-10 s apart."""
    rng = np.random.default_rng(seed)
    levels = np.full(seconds * RECORDING_FPS, CALM)
    truth, at = [], 4.0
    while at < seconds - 8:
        incident = rng.random() < 0.5
        length = rng.uniform(3, 5) if incident else rng.uniform(1, 2.5)
        first, last = round(at * RECORDING_FPS), round((at + length) * RECORDING_FPS)
        levels[first:last] = INCIDENT if incident else BLIP
        if incident:
            truth.append(Span(label, first / RECORDING_FPS, last / RECORDING_FPS))
        at += length + rng.uniform(6, 10)
    return write_video(path, levels, fps=RECORDING_FPS), truth


class BrightnessBackend:
    """A stand-in network: the class is how bright the clip is (dark / mid / bright).

    It makes timelines with known answers without training anything.
    """

    name = "brightness"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0

    def __call__(self, batch: Any) -> np.ndarray:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        level = torch.as_tensor(batch).float().mean(dim=(1, 2, 3, 4)).numpy()
        centres = np.array([-1.5, 0.0, 1.5])
        return -8.0 * (level[:, None] - centres[None, :]) ** 2


def brightness_predictor(delay: float = 0.0, **preprocess: Any) -> Predictor:
    return Predictor(
        BrightnessBackend(delay),
        CLASSES,
        tiny_preprocess(**preprocess),
        {"num_clips": 3, "num_crops": 1},
        model_name="brightness",
    )


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """The tiny test models run fastest on one thread, and a second one that has to wait for
    the decoder threads (or for a busy CI core) slows every forward pass down many times.
    Used by the modules that run models (``pytestmark``), not imposed on the whole folder."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "r3d_10.pt")


@pytest.fixture(scope="session")
def steps_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 25 fps: 1.6 s dark, 1.2 s bright, 1.2 s dark."""
    levels = [20] * 40 + [235] * 30 + [20] * 30
    return write_video(tmp_path_factory.mktemp("videos") / "steps.mp4", levels)


@pytest.fixture(scope="session")
def mpegts_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """8 s of MPEG-TS (MPEG-2 video) at 25 fps: what a camera or encoder would send."""
    path = tmp_path_factory.mktemp("ts") / "clip.ts"
    levels = np.linspace(30, 220, 200).astype(int)
    write_video(path, levels, codec="mpeg2video", fmt="mpegts")
    return path.read_bytes()


class MpegTsServer(HttpSource):
    """Serves an MPEG-TS payload over HTTP on loopback, paced at about real time, to each client
    from its start; ``stop()`` closes the port and cuts the open connections, ``start()`` opens
    it again on the same port."""

    def __init__(self, payload: bytes, seconds: float) -> None:
        super().__init__(PacedPayload(payload, seconds))


@pytest.fixture
def mpegts_server(mpegts_bytes: bytes) -> Iterator[Callable[[], MpegTsServer]]:
    servers: list[MpegTsServer] = []

    def start() -> MpegTsServer:
        server = MpegTsServer(mpegts_bytes, seconds=8.0).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
