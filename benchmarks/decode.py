"""Decoding speed: random 16-frame clips and sequential decoding, against baselines.

Methods, all returning RGB uint8 frames resized to a 128-pixel short side:

- ``resaction``: ``VideoReader`` opened for every clip (as a dataset does on each step; the frame
  index is built on the first open of a file and cached), ``get_frames(start..start+15)``: seeks
  to the keyframe before the clip and decodes forward to its last frame.
- ``naive`` (the baseline for ratios): decode the whole video from the start with PyAV, convert
  every frame to RGB at the same size, then take the clip; what ``read_video``-style loaders do.
- ``opencv``: ``cv2.VideoCapture`` opened for every clip, ``CAP_PROP_POS_FRAMES`` set to the clip
  start, 16 ``read()`` calls, ``cv2.resize`` (area) and BGR->RGB.
- ``torchcodec``: ``VideoDecoder(seek_mode="exact").get_frames_at`` plus an antialiased torch
  resize, when torchcodec is importable.

Sources: a sample of the real videos in ../shared/data/videos (per dataset), and generated 60 s
1080p H.264 videos (x264 defaults: keyframe every 250 frames, B-frames; and one with a keyframe
every second), cached in benchmarks/results/cache/decode. Sequential speed is frames per second
decoding forward from the first frame. Every number in one table comes from the same run.

    python benchmarks/decode.py [--quick]

Writes benchmarks/results/decode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import Interpolation, VideoReformatter
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from resaction.io import VideoReader, clear_index_cache
from resaction.io.geometry import output_size
from resaction.paths import shared_videos_dir

RESULTS = Path(__file__).parent / "results"
CACHE = RESULTS / "cache" / "decode"
CLIP_LEN = 16
SHORT_SIDE = 128
console = Console(width=max(Console().width, 150))


# -- sources ------------------------------------------------------------------------------------
def generated_1080p(seconds: int, fps: int, keyint: int | None) -> Path:
    """A cached 1080p H.264 video: a textured background panning under moving shapes."""
    name = f"pan_{seconds}s_1080p_{fps}fps_{'gop' + str(keyint) if keyint else 'x264default'}.mp4"
    path = CACHE / name
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    texture = cv2.resize(
        rng.integers(0, 256, (270, 480, 3), dtype=np.uint8), (3840, 2160), cv2.INTER_CUBIC
    )
    partial = path.with_suffix(".partial.mp4")
    params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0" if keyint else ""
    options = {"preset": "veryfast", "crf": "23", **({"x264-params": params} if params else {})}
    with av.open(str(partial), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"writing {name}", total=seconds * fps)
            for i in range(seconds * fps):
                x, y = (7 * i) % 1920, (3 * i) % 1080
                frame = texture[y : y + 1080, x : x + 1920].copy()
                for k in range(4):
                    cx = int(960 + 700 * np.sin(0.02 * i * (k + 1) + k))
                    cy = int(540 + 400 * np.cos(0.03 * i * (k + 1)))
                    cv2.circle(frame, (cx, cy), 80 + 20 * k, (60 * k, 255 - 50 * k, 128), -1)
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                progress.advance(task)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path


def real_sample(per_dataset: int, seed: int = 0) -> dict[str, list[Path]]:
    rng = np.random.default_rng(seed)
    groups: dict[str, list[Path]] = {}
    for folder in sorted(p for p in shared_videos_dir().iterdir() if p.is_dir()):
        videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".mp4", ".avi"})
        chosen = rng.choice(len(videos), size=min(per_dataset, len(videos)), replace=False)
        groups[folder.name] = [videos[i] for i in sorted(chosen)]
    return groups


# -- methods: random clip ---------------------------------------------------------------------
def clip_resaction(path: Path, start: int) -> np.ndarray:
    with VideoReader(path, short_side=SHORT_SIDE) as reader:
        return reader.get_frames(range(start, start + CLIP_LEN)).numpy()


def _target(height: int, width: int) -> tuple[int, int]:
    return output_size(height, width, short_side=SHORT_SIDE)


def _pyav_frames(path: Path) -> Iterator[np.ndarray]:
    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        height, width = _target(stream.height, stream.width)
        for frame in container.decode(stream):
            yield reformatter.reformat(
                frame,
                width=width,
                height=height,
                format="rgb24",
                interpolation=Interpolation.BILINEAR,
            ).to_ndarray()


def clip_naive(path: Path, start: int) -> np.ndarray:
    frames = np.stack(list(_pyav_frames(path)))
    return frames[start : start + CLIP_LEN]


def _cv2_rgb(bgr: np.ndarray) -> np.ndarray:
    height, width = _target(*bgr.shape[:2])
    return cv2.cvtColor(
        cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
    )


def clip_opencv(path: Path, start: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(CLIP_LEN):
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(_cv2_rgb(bgr))
    capture.release()
    return np.stack(frames)


def _torchcodec_resize(batch: torch.Tensor) -> torch.Tensor:
    height, width = _target(batch.shape[1], batch.shape[2])
    planar = batch.permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(
        planar, (height, width), mode="bilinear", antialias=True
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def clip_torchcodec(path: Path, start: int) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), dimension_order="NHWC", seek_mode="exact")
    return _torchcodec_resize(
        decoder.get_frames_at(list(range(start, start + CLIP_LEN))).data
    ).numpy()


# -- methods: sequential ----------------------------------------------------------------------
def seq_resaction(path: Path, limit: int) -> int:
    with VideoReader(path, short_side=SHORT_SIDE) as reader:
        return sum(1 for _ in reader.iter_frames(0, limit))


def seq_naive(path: Path, limit: int) -> int:
    count = 0
    for _ in _pyav_frames(path):
        count += 1
        if count == limit:
            break
    return count


def seq_opencv(path: Path, limit: int) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while count < limit:
        ok, bgr = capture.read()
        if not ok:
            break
        _cv2_rgb(bgr)
        count += 1
    capture.release()
    return count


def seq_torchcodec(path: Path, limit: int) -> int:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), dimension_order="NHWC", seek_mode="exact")
    stop = min(limit, decoder.metadata.num_frames)
    count = 0
    for first in range(0, stop, 32):
        batch = decoder.get_frames_in_range(first, min(first + 32, stop)).data
        count += len(_torchcodec_resize(batch))
    return count


@dataclass
class Method:
    name: str
    clip: Callable[[Path, int], np.ndarray]
    sequential: Callable[[Path, int], int]


def methods() -> list[Method]:
    found = [
        Method("resaction", clip_resaction, seq_resaction),
        Method("naive", clip_naive, seq_naive),
        Method("opencv", clip_opencv, seq_opencv),
    ]
    try:
        import torchcodec  # noqa: F401
    except ImportError:
        console.print("torchcodec is not installed: skipped", style="dim")
    else:
        found.append(Method("torchcodec", clip_torchcodec, seq_torchcodec))
    return found


# -- measuring --------------------------------------------------------------------------------
@dataclass
class Row:
    source: str
    method: str
    videos: int
    clips: int
    clip_seconds: float
    clip_cpu_seconds: float
    frames: int
    seq_seconds: float

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.clip_seconds if self.clip_seconds else 0.0

    @property
    def seq_fps(self) -> float:
        return self.frames / self.seq_seconds if self.seq_seconds else 0.0


def clip_plan(videos: list[Path], clips_per_video: int, seed: int) -> list[tuple[Path, int]]:
    rng = np.random.default_rng(seed)
    plan = []
    for path in videos:
        with VideoReader(path) as reader:
            count = reader.num_frames
        starts = rng.integers(0, max(count - CLIP_LEN, 0) + 1, size=clips_per_video)
        plan.extend((path, int(s)) for s in starts)
    return plan


def _timed(call: Callable, *args: object) -> tuple[object, float, float]:
    """``call(*args)`` with its wall-clock and process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure(
    source: str,
    videos: list[Path],
    found: list[Method],
    plan: list[tuple[Path, int]],
    seq_limit: int,
    naive_clips: int,
    progress: Progress,
) -> list[Row]:
    """Time every method on the same clips and videos, taking turns clip by clip (the order
    rotates), so that load from other processes falls on all of them alike."""
    clear_index_cache()
    rows = {m.name: Row(source, m.name, len(videos), 0, 0.0, 0.0, 0, 0.0) for m in found}
    task = progress.add_task(source, total=len(plan) + len(videos))
    for turn, (path, start) in enumerate(plan):
        for method in found[turn % len(found) :] + found[: turn % len(found)]:
            if method.name == "naive" and turn >= naive_clips:
                continue
            clip, wall, cpu = _timed(method.clip, path, start)
            shape = clip.shape
            assert shape[0] == CLIP_LEN and min(shape[1:3]) == SHORT_SIDE, (path, shape)
            row = rows[method.name]
            row.clips, row.clip_seconds, row.clip_cpu_seconds = (
                row.clips + 1,
                row.clip_seconds + wall,
                row.clip_cpu_seconds + cpu,
            )
        progress.advance(task)
    for turn, path in enumerate(videos):
        for method in found[turn % len(found) :] + found[: turn % len(found)]:
            count, wall, _ = _timed(method.sequential, path, seq_limit)
            rows[method.name].frames += count
            rows[method.name].seq_seconds += wall
        progress.advance(task)
    progress.remove_task(task)
    return list(rows.values())


def print_table(rows: list[Row], title: str) -> None:
    table = Table(title=title)
    columns = ["source", "method", "videos", "clips", "clips/s", "ms/clip", "cpu ms/clip"]
    columns += ["× naive", "× opencv", "seq fps", "seq × naive"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("source", "method") else "right")
    by_key = {(r.source, r.method): r for r in rows}
    for position, row in enumerate(rows):
        naive = by_key.get((row.source, "naive"))
        opencv = by_key.get((row.source, "opencv"))
        table.add_row(
            row.source,
            row.method,
            str(row.videos),
            str(row.clips),
            f"{row.clips_per_s:.2f}",
            f"{1000 / row.clips_per_s:.0f}" if row.clips_per_s else "-",
            f"{1000 * row.clip_cpu_seconds / row.clips:.0f}" if row.clips else "-",
            f"{row.clips_per_s / naive.clips_per_s:.1f}" if naive else "-",
            f"{row.clips_per_s / opencv.clips_per_s:.2f}" if opencv else "-",
            f"{row.seq_fps:.0f}",
            f"{row.seq_fps / naive.seq_fps:.2f}" if naive else "-",
            end_section=position + 1 < len(rows) and rows[position + 1].source != row.source,
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Fewer videos and clips, 20 s 1080p.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cv2.setNumThreads(2)

    per_dataset, real_clips = (1, 3) if args.quick else (4, 5)
    seconds = 20 if args.quick else 60
    big_clips, naive_big_clips = (3, 1) if args.quick else (10, 2)
    seq_real, seq_big = 10_000, (150 if args.quick else 600)

    sources: list[tuple[str, list[Path], int, int]] = []
    for dataset, videos in real_sample(per_dataset, args.seed).items():
        sources.append((f"real/{dataset}", videos, real_clips, seq_real))
    for fps, keyint in ((30, None), (25, 25)):
        video = generated_1080p(seconds, fps, keyint)
        label = f"1080p {seconds}s {fps}fps gop{keyint or 250}"
        sources.append((label, [video], big_clips, seq_big))

    found = methods()
    rows: list[Row] = []
    with Progress(console=console, transient=True) as progress:
        for source, videos, clips, seq_limit in sources:
            plan = clip_plan(videos, clips, args.seed)
            naive_clips = naive_big_clips if "1080p" in source else len(plan)
            rows += measure(source, videos, found, plan, seq_limit, naive_clips, progress)

    real_rows = [r for r in rows if r.source.startswith("real/")]
    for method in found:
        mine = [r for r in real_rows if r.method == method.name]
        rows.append(
            Row(
                "real (all)",
                method.name,
                sum(r.videos for r in mine),
                sum(r.clips for r in mine),
                sum(r.clip_seconds for r in mine),
                sum(r.clip_cpu_seconds for r in mine),
                sum(r.frames for r in mine),
                sum(r.seq_seconds for r in mine),
            )
        )
    print_table(
        rows, f"random {CLIP_LEN}-frame clips at {SHORT_SIDE} px short side; sequential decode"
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "decode.json"
    payload = {
        "settings": {
            "quick": args.quick,
            "clip_len": CLIP_LEN,
            "short_side": SHORT_SIDE,
            "seed": args.seed,
            "seconds_1080p": seconds,
        },
        "environment": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "av": av.__version__,
            "opencv": cv2.__version__,
            "load_average": os.getloadavg(),
        },
        "rows": [{**asdict(r), "clips_per_s": r.clips_per_s, "seq_fps": r.seq_fps} for r in rows],
    }
    out.write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
