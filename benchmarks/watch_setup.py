"""``benchmarks/watch.py``'s set-up: the variants, the cameras' clips, the models, the sender.

The constants of the benchmark (camera size, frame rate, GOP, the held criterion, the variant
lists), ``Variant`` and ``parse_variant``; the 640x480 camera clips cropped and encoded once
(``camera_clips``); random-weight checkpoints and their int8 ONNX models (``prepare_models``);
and ``Cameras``, the process sending N looped cameras over UDP (``serve_cameras``, a spawn
target, so it lives in a module the child can import).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import av
import numpy as np

from resaction.paths import shared_videos_dir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CLIP_CACHE = RESULTS / "cache" / "watch_clips"
CLASSES = ["fight", "noFight"]
MODELS = {"tsn": "tsn_resnet18", "tsm": "tsm_resnet18", "tsm_online": "tsm_online_resnet18"}
MODES = ("incremental", "recompute")
PRECISIONS = ("fp32", "int8")
SIZE, FPS, GOP = (640, 480), 25, 50
SOURCE_SIZE = (854, 480)
P95_LIMIT_MS = 1000.0
DROPPED_LIMIT_PCT = 10.0
DEFAULT_VARIANTS = [
    "baseline:tsn",
    "tsn:fp32:incremental",
    "tsn:fp32:recompute",
    "tsm_online:fp32:incremental",
    "tsm:fp32:recompute",
    "tsn:int8:incremental",
    "tsm_online:int8:incremental",
]
QUICK_VARIANTS = [
    "baseline:tsn",
    "tsn:fp32:incremental",
    "tsn:fp32:recompute",
    "tsn:int8:incremental",
]


@dataclass(frozen=True)
class Variant:
    name: str
    family: str  # tsn, tsm, tsm_online
    precision: str  # fp32, int8
    mode: str  # incremental, recompute, process (one stream process per camera)

    @property
    def model(self) -> str:
        return MODELS[self.family]


def parse_variant(text: str) -> Variant:
    parts = text.split(":")
    if parts[0] == "baseline":
        if len(parts) not in (2, 3) or parts[1] not in MODELS:
            raise SystemExit(f"variant {text!r}: write baseline:MODEL[:PRECISION]")
        precision = parts[2] if len(parts) == 3 else "fp32"
        if precision not in PRECISIONS:
            raise SystemExit(f"variant {text!r}: precision is one of {', '.join(PRECISIONS)}")
        return Variant(text, parts[1], precision, "process")
    if len(parts) != 3 or parts[0] not in MODELS or parts[1] not in PRECISIONS:
        raise SystemExit(
            f"variant {text!r}: write MODEL:PRECISION:MODE with MODEL in "
            f"{', '.join(MODELS)}, PRECISION in {', '.join(PRECISIONS)}, MODE in "
            f"{', '.join(MODES)} (or baseline:MODEL)"
        )
    if parts[2] not in MODES:
        raise SystemExit(f"variant {text!r}: MODE is one of {', '.join(MODES)}")
    if parts[0] == "tsm" and parts[2] == "incremental":
        raise SystemExit(
            f"variant {text!r}: tsm_resnet18 shifts both ways, so it can only recompute "
            "windows; the incremental TSM is tsm_online"
        )
    return Variant(text, parts[0], parts[1], parts[2])


# ---------------------------------------------------------------- clips and models


def camera_clips() -> list[Path]:
    """The 854x480 25 fps surveillance clips cropped to 640x480 H.264, encoded once."""
    sources = []
    for path in sorted((shared_videos_dir() / "surveillance_camera_fight").rglob("*.mp4")):
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            key = (video.width, video.height, round(float(video.average_rate or 0), 2))
        if key == (*SOURCE_SIZE, float(FPS)):
            sources.append(path)
    if not sources:
        raise SystemExit("no 854x480 25 fps clip in surveillance_camera_fight to make cameras of")
    CLIP_CACHE.mkdir(parents=True, exist_ok=True)
    clips = []
    for source in sources:
        target = CLIP_CACHE / f"{source.stem}_{SIZE[0]}x{SIZE[1]}_{FPS}.mp4"
        if not target.is_file():
            encode_crop(source, target)
        clips.append(target)
    return clips


def encode_crop(source: Path, target: Path) -> None:
    width, height = SIZE
    partial = target.with_suffix(".partial.mp4")
    with av.open(str(source)) as inp, av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.options = {"crf": "23", "preset": "medium", "bf": "0"}
        for index, frame in enumerate(inp.decode(video=0)):
            image = frame.to_ndarray(format="rgb24")
            left = (image.shape[1] - width) // 2
            top = (image.shape[0] - height) // 2
            cropped = np.ascontiguousarray(image[top : top + height, left : left + width])
            picture = av.VideoFrame.from_ndarray(cropped, format="rgb24").reformat(format="yuv420p")
            picture.pts = index
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    partial.rename(target)


def make_checkpoints(families: set[str], folder: Path) -> dict[str, Path]:
    import torch

    from resaction.models import create_model
    from resaction.models.checkpoint import save_checkpoint

    paths = {}
    for family in sorted(families):
        torch.manual_seed(0)
        name = MODELS[family]
        model = create_model(name, num_classes=len(CLASSES))
        paths[family] = save_checkpoint(
            folder / f"{name}.pt", model, model_name=name, classes=CLASSES
        )
    return paths


def resaction_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "resaction.cli", *args]


def run_quiet(command: list[str], timeout: float = 900) -> str | None:
    """Run ``command``; ``None`` when it worked, else the last line it wrote."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode == 0:
        return None
    lines = (done.stderr + done.stdout).strip().splitlines() or ["no output"]
    return f"{' '.join(command[3:5])} failed: {lines[-1].strip()}"


def int8_model(checkpoint: Path, frames: bool) -> tuple[Path | None, str]:
    """The int8 ONNX model of ``checkpoint``: per-frame (``export --frames``) or whole-clip;
    ``(None, why)`` when it cannot be made yet."""
    suffix = ".frames" if frames else ".clip"
    fp32 = checkpoint.with_suffix(f"{suffix}.onnx")
    int8 = checkpoint.with_suffix(f"{suffix}.int8.onnx")
    if int8.is_file():
        return int8, ""
    if frames:
        help_text = subprocess.run(
            resaction_command("export", "--help"),
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        ).stdout
        if "--frames" not in help_text:
            return None, (
                "skipped: `resaction export` has no --frames yet (the per-frame int8 ONNX "
                "runner is being built); rerun this variant once it lands"
            )
    export = resaction_command("export", str(checkpoint), "-o", str(fp32), "--no-check")
    failed = run_quiet([*export, "--frames"] if frames else export)
    if failed is None:
        calibrate = shared_videos_dir() / "surveillance_camera_fight"
        quantize = ["quantize", str(fp32), "--calibrate", str(calibrate), "-o", str(int8)]
        failed = run_quiet(
            resaction_command(*quantize, "--calib-videos", "8", "--no-progress", "--workers", "0")
        )
    if failed is not None:
        return None, f"skipped: {failed}"
    return int8, ""


def prepare_models(
    variants: list[Variant], folder: Path
) -> tuple[dict[Variant, Path], dict[Variant, str]]:
    checkpoints = make_checkpoints({v.family for v in variants}, folder)
    paths: dict[Variant, Path] = {}
    skipped: dict[Variant, str] = {}
    for variant in variants:
        checkpoint = checkpoints[variant.family]
        if variant.precision == "fp32":
            paths[variant] = checkpoint
            continue
        path, why = int8_model(checkpoint, frames=variant.mode == "incremental")
        if path is None:
            skipped[variant] = why
        else:
            paths[variant] = path
    return paths, skipped


# ---------------------------------------------------------------- the cameras


def serve_cameras(clips: list[str], count: int, pipe: Connection) -> None:
    """A process sending ``count`` looped cameras over UDP until told to stop."""
    sys.path.insert(0, str(ROOT))
    from tests.monitor.streams import loopback_source

    paths = [Path(clip) for clip in clips]
    sources = []
    for index in range(count):
        turn = index % len(paths)
        sources.append(loopback_source("udp", paths[turn:] + paths[:turn], loop=True))
    pipe.send([source.url for source in sources])
    with contextlib.suppress(EOFError):
        pipe.recv()
    for source in sources:
        source.close()


class Cameras:
    """The sender process for one measured point."""

    def __init__(self, clips: list[Path], count: int) -> None:
        context = mp.get_context("spawn")
        self.pipe, child = context.Pipe()
        args = ([str(clip) for clip in clips], count, child)
        self.process = context.Process(target=serve_cameras, args=args, daemon=True)
        self.process.start()
        self.urls: list[str] = self.pipe.recv()
        self.pid = self.process.pid

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.pipe.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
