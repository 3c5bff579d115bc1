"""Decoding speed on the real datasets: random 16-frame clips, ours against TorchCodec and others.

Per dataset in ../shared/data/videos, a seeded sample of videos and random clip starts; every
method reads the same clips, one thread each, taking turns clip by clip (the order rotates, so
load from other processes falls on all alike). Each video is opened once per method and the
clips are read from it (as a dataset worker does once the file's index is cached); opening costs
are measured apart, on a cold cache. Methods:

- ``resaction``: ``VideoReader(threads=1).get_frames(start..start+15)`` at full resolution;
  ``resaction@128`` resizes to a 128-pixel short side during colour conversion.
- ``torchcodec``: ``VideoDecoder(seek_mode="exact", num_ffmpeg_threads=1).get_frames_at`` (when
  torchcodec is importable: install Debian's FFmpeg 5.1 libraries and ``torchcodec==0.13.0`` for
  the benchmark run, never as a dependency); ``torchcodec@128`` with its decoder-side ``Resize``.
- ``opencv``: ``cv2.VideoCapture`` with ``CAP_PROP_POS_FRAMES`` set to the clip start, 16 reads.
- ``whole``: PyAV decodes the video from its start to the clip's end, converting every frame
  (what ``read_video``-style loaders do); timed on the first clips of each video only.

Ratios come with a 95% bootstrap interval over the paired clips, so a dataset with few videos
(KTH has two) shows how far its ratio can be trusted; ``--min-clips`` reads more clips there.

    python benchmarks/decode.py [--videos 6] [--clips 8] [--min-clips 0] [--out FILE.json]
    python benchmarks/decode.py --markdown benchmarks/results/decode.json   # the docs table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from resaction.io import VideoReader, clear_index_cache
from resaction.io.geometry import output_size
from resaction.paths import shared_videos_dir

RESULTS = Path(__file__).parent / "results"
CLIP_LEN = 16
SHORT_SIDE = 128
WHOLE_CLIPS = 2
console = Console(width=max(Console().width, 150))
Reader = Callable[[list[int]], Any]


def sample_videos(per_dataset: int, seed: int) -> dict[str, list[Path]]:
    rng = np.random.default_rng(seed)
    groups: dict[str, list[Path]] = {}
    for folder in sorted(p for p in shared_videos_dir().iterdir() if p.is_dir()):
        videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".mp4", ".avi"})
        chosen = rng.choice(len(videos), size=min(per_dataset, len(videos)), replace=False)
        groups[folder.name] = [videos[i] for i in sorted(chosen)]
    return groups


def torchcodec_available() -> bool:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except (ImportError, RuntimeError, OSError):
        return False
    return True


def open_readers(path: Path, size: tuple[int, int], with_tc: bool) -> dict[str, Reader]:
    """One reader per method for ``path``; ``size`` is the resized (height, width)."""
    ours = VideoReader(path, threads=1)
    small = VideoReader(path, threads=1, short_side=SHORT_SIDE)
    capture = cv2.VideoCapture(str(path))

    def opencv(indices: list[int]) -> np.ndarray:
        capture.set(cv2.CAP_PROP_POS_FRAMES, indices[0])
        frames = [capture.read()[1] for _ in indices]
        return np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames if f is not None])

    def whole(indices: list[int]) -> np.ndarray:
        frames = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) > indices[-1]:
                    break
        return np.stack(frames[indices[0] :])

    readers: dict[str, Reader] = {
        "resaction": ours.get_frames,
        "resaction@128": small.get_frames,
        "opencv": opencv,
        "whole": whole,
    }
    if with_tc:
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize

        common = {"seek_mode": "exact", "num_ffmpeg_threads": 1, "dimension_order": "NHWC"}
        full = VideoDecoder(str(path), **common)
        resized = VideoDecoder(str(path), transforms=[Resize(list(size))], **common)
        readers["torchcodec"] = lambda indices: full.get_frames_at(indices).data
        readers["torchcodec@128"] = lambda indices: resized.get_frames_at(indices).data
    return readers


def open_costs(path: Path, with_tc: bool) -> dict[str, float]:
    """Milliseconds to open ``path`` from a cold cache: our index, TorchCodec's exact scan."""
    clear_index_cache()
    started = time.perf_counter()
    VideoReader(path, threads=1).close()
    costs = {"resaction": 1000 * (time.perf_counter() - started)}
    if with_tc:
        from torchcodec.decoders import VideoDecoder

        started = time.perf_counter()
        VideoDecoder(str(path), seek_mode="exact", num_ffmpeg_threads=1)
        costs["torchcodec"] = 1000 * (time.perf_counter() - started)
    return costs


def measure_video(
    path: Path, clips: int, rng: np.random.Generator, with_tc: bool
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Milliseconds per clip for each method on ``clips`` random clips of ``path``."""
    costs = open_costs(path, with_tc)
    with VideoReader(path) as probe:
        count, (height, width) = probe.num_frames, (probe.metadata.height, probe.metadata.width)
    size = output_size(height, width, short_side=SHORT_SIDE)
    readers = open_readers(path, size, with_tc)
    times: dict[str, list[float]] = {name: [] for name in readers}
    names = list(readers)
    for turn in range(clips):
        start = int(rng.integers(0, max(count - CLIP_LEN, 0) + 1))
        indices = [min(i, count - 1) for i in range(start, start + CLIP_LEN)]
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            if name == "whole" and turn >= WHOLE_CLIPS:
                continue
            started = time.perf_counter()
            frames = readers[name](indices)
            times[name].append(1000 * (time.perf_counter() - started))
            assert len(frames) == CLIP_LEN, (name, path, len(frames))
    return times, costs


def ratio_interval(
    slower: np.ndarray, faster: np.ndarray, seed: int = 0, draws: int = 2000
) -> list[float]:
    """95% bootstrap interval of ``sum(slower) / sum(faster)``, resampling the paired clips."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(slower), size=(draws, len(slower)))
    ratios = slower[picks].sum(axis=1) / faster[picks].sum(axis=1)
    return [float(v) for v in np.percentile(ratios, [2.5, 97.5])]


def summarise(dataset: str, per_video: list[tuple[dict, dict]]) -> dict[str, Any]:
    methods = list(per_video[0][0])
    clip_ms = {m: np.array([t for times, _ in per_video for t in times[m]]) for m in methods}
    ms = {m: float(np.mean([t for times, _ in per_video for t in times[m]])) for m in methods}
    opens = {m: float(np.mean([c[m] for _, c in per_video])) for m in per_video[0][1]}
    row: dict[str, Any] = {"dataset": dataset, "videos": len(per_video), "ms_per_clip": ms}
    row["open_ms"] = opens
    row["clips"] = sum(len(times["resaction"]) for times, _ in per_video)
    ratios = {"resized_speedup": ("resaction", "resaction@128")}
    if "torchcodec" in ms:
        ratios["vs_torchcodec"] = ("torchcodec", "resaction")
        ratios["vs_torchcodec_resized"] = ("torchcodec@128", "resaction@128")
    for key, (slower, faster) in ratios.items():
        row[key] = ms[slower] / ms[faster]
        row[f"{key}_ci95"] = ratio_interval(clip_ms[slower], clip_ms[faster])
    return row


def with_interval(row: dict[str, Any], key: str) -> str:
    """``row[key]`` with its 95% interval where the results file has one (older files do not)."""
    low_high = row.get(f"{key}_ci95")
    return f"{row[key]:.2f}" + (f" ({low_high[0]:.2f}-{low_high[1]:.2f})" if low_high else "")


def print_table(rows: list[dict[str, Any]], with_tc: bool) -> None:
    title = f"random {CLIP_LEN}-frame clips, one thread, ms per clip (resized: {SHORT_SIDE} px)"
    table = Table(title=title)
    methods = list(rows[0]["ms_per_clip"])
    columns = ["dataset", "clips", *methods, "resized speed-up"]
    if with_tc:
        columns += ["× TorchCodec", "× TorchCodec resized", "open ms ours / TC"]
    for column in columns:
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for row in rows:
        cells = [row["dataset"], str(row["clips"])]
        cells += [f"{row['ms_per_clip'][m]:.1f}" for m in methods]
        cells.append(with_interval(row, "resized_speedup"))
        if with_tc:
            opens = row["open_ms"]
            cells += [
                with_interval(row, "vs_torchcodec"),
                with_interval(row, "vs_torchcodec_resized"),
            ]
            cells.append(f"{opens['resaction']:.0f} / {opens['torchcodec']:.0f}")
        table.add_row(*cells)
    console.print(table)


def markdown_table(payload: dict[str, Any]) -> str:
    """The table of ``docs/decoding.md``, from a results file."""
    head = "| dataset | clips | ours | TorchCodec | × TC | ours 128 px | TC 128 px | × TC 128 px "
    head += "| resized speed-up | OpenCV | whole video | open ms ours / TC |"
    lines = [head, "|" + " --- |" * 1 + " ---: |" * 11]
    for row in payload["rows"]:
        ms, opens = row["ms_per_clip"], row["open_ms"]
        cells = [row["dataset"], str(row["clips"]), f"{ms['resaction']:.1f}"]
        cells += [f"{ms['torchcodec']:.1f}", with_interval(row, "vs_torchcodec")]
        cells += [f"{ms['resaction@128']:.1f}", f"{ms['torchcodec@128']:.1f}"]
        cells += [
            with_interval(row, "vs_torchcodec_resized"),
            with_interval(row, "resized_speedup"),
        ]
        cells += [f"{ms['opencv']:.1f}", f"{ms['whole']:.1f}"]
        cells.append(f"{opens['resaction']:.0f} / {opens['torchcodec']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=6, help="Videos per dataset.")
    parser.add_argument("--clips", type=int, default=8, help="Random clips per video.")
    parser.add_argument(
        "--min-clips",
        type=int,
        default=0,
        help="At least this many clips per dataset (more per video where it has few videos).",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "decode.json")
    parser.add_argument("--markdown", type=Path, help="Print the table of a results file.")
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(args.markdown.read_text())))
        return
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with_tc = torchcodec_available()
    if not with_tc:
        console.print("torchcodec is not importable: its columns are left out", style="dim")
    groups = sample_videos(args.videos, args.seed)
    rng = np.random.default_rng(args.seed)
    rows = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("decoding", total=sum(len(v) for v in groups.values()))
        for dataset, videos in groups.items():
            per_video = []
            clips = max(args.clips, -(-args.min_clips // len(videos)))
            for path in videos:
                per_video.append(measure_video(path, clips, rng, with_tc))
                progress.advance(task)
            rows.append(summarise(dataset, per_video))
    print_table(rows, with_tc)
    payload = {
        "settings": {**vars(args), "out": str(args.out), "markdown": None, "clip_len": CLIP_LEN},
        "environment": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "av": av.__version__,
            "ffmpeg_pyav": av.library_versions.get("libavcodec"),
            "opencv": cv2.__version__,
            "torchcodec": _torchcodec_version() if with_tc else None,
            "load_average_after": os.getloadavg(),
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {args.out}")


def _torchcodec_version() -> str:
    import torchcodec

    return torchcodec.__version__


if __name__ == "__main__":
    main()
