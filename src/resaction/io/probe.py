"""Check that videos decode, and how fast: the library side of ``resaction probe``.

Each video is opened (which builds its frame index), then ``clips`` random clips of ``clip_len``
consecutive frames are decoded at ``short_side`` resolution, one ``get_frames`` call per clip as a
training step would. Each file reports how its frames are found after a seek (``pts``: by the
container's timestamps; ``packet``: by the packet each picture came from, for containers whose
timestamps are guessed), and with ``verify`` whether random reads equal a sequential decode.
Results are grouped per dataset: the first folder level under the folder given, or the parent
folder of a file given directly.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resaction.errors import VideoError, VideoNotFoundError
from resaction.io.exactness import check_exactness
from resaction.io.metadata import VideoMetadata
from resaction.io.video_files import videos_under
from resaction.io.video_reader import VideoReader


@dataclass
class VideoProbe:
    """What probing one video found; ``error`` is set (and the rest empty) if it is unreadable,
    ``problem`` where it reads but not all of it, or not exactly (``exact`` False)."""

    path: str
    dataset: str
    metadata: VideoMetadata | None = None
    open_ms: float = 0.0
    clip_ms: list[float] = field(default_factory=list)
    seek_mode: str | None = None
    exact: bool | None = None
    damaged: int = 0
    problem: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metadata"] = self.metadata.to_dict() if self.metadata else None
        return data


@dataclass
class DatasetSummary:
    name: str
    videos: int
    unreadable: int
    codecs: dict[str, int]
    seek_modes: dict[str, int]
    verified: int
    exact: int
    resolutions: dict[str, int]
    fps_range: tuple[float, float] | None
    frames_range: tuple[int, int] | None
    open_ms: float | None
    clip_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_videos(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """``(video, dataset name)`` for every path: files as given, folders searched recursively
    for video suffixes. A path that does not exist is a ``VideoNotFoundError``."""
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for video in videos_under(path):
                if video.is_file():
                    relative = video.relative_to(path).parts
                    dataset = relative[0] if len(relative) > 1 else path.name
                    found.append((video, dataset))
        elif path.exists():
            found.append((path, path.parent.name or "."))
        else:
            raise VideoNotFoundError(f"{path}: no such file or folder")
    return found


def clip_starts(num_frames: int, clips: int, clip_len: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, max(num_frames - clip_len, 0) + 1, size=clips)


def probe_video(
    path: Path,
    dataset: str,
    *,
    clips: int = 10,
    clip_len: int = 16,
    short_side: int | None = 128,
    seed: int = 0,
    verify: bool = False,
) -> VideoProbe:
    """Open ``path`` and time ``clips`` random clips; with ``verify``, compare random reads with a
    sequential decode. Decoding errors are recorded, not raised: ``error`` where the file cannot be
    read at all, ``problem`` where it opens but some frames cannot be read (a damaged stretch) or
    the check finds random reads that differ."""
    result = VideoProbe(path=str(path), dataset=dataset)
    rng = np.random.default_rng(seed)
    try:
        started = time.perf_counter()
        with VideoReader(path, short_side=short_side) as reader:
            result.open_ms = 1000 * (time.perf_counter() - started)
            result.metadata = reader.metadata
            result.seek_mode = reader.seek_mode
            starts = clip_starts(reader.num_frames, clips, clip_len, rng)
            failed = _time_clips(reader, starts, clip_len, result)
    except VideoError as error:
        result.error = str(error)
        return result
    problems = []
    if failed:
        reason = failed[0].removeprefix(f"{path}: ")
        problems.append(f"damaged, {len(failed)} of {clips} clips could not be read ({reason})")
    if verify:
        report = check_exactness(path, seed=seed)
        result.exact = report.exact
        result.damaged = len(report.damaged)
        if report.error:
            problems.append(f"not exact, {report.error.removeprefix(f'{path}: ')}")
    if problems:
        result.problem = f"{path}: " + "; ".join(problems)
    return result


def _time_clips(
    reader: VideoReader, starts: np.ndarray, clip_len: int, result: VideoProbe
) -> list[str]:
    """Read a clip from each start into ``result.clip_ms``; the errors of those that fail."""
    failed = []
    for start in starts:
        indices = (start + np.arange(clip_len)) % reader.num_frames
        started = time.perf_counter()
        try:
            reader.get_frames(indices)
        except VideoError as error:
            failed.append(str(error))
            continue
        result.clip_ms.append(1000 * (time.perf_counter() - started))
    return failed


def probe_videos(
    videos: list[tuple[Path, str]],
    *,
    on_result: Callable[[VideoProbe], None] | None = None,
    **options: Any,
) -> list[VideoProbe]:
    """Probe each ``(path, dataset)``; ``on_result`` sees every result as it comes."""
    results = []
    for path, dataset in videos:
        result = probe_video(path, dataset, **options)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def summarise(results: list[VideoProbe]) -> list[DatasetSummary]:
    """One summary per dataset, in order of first appearance."""
    groups: dict[str, list[VideoProbe]] = {}
    for result in results:
        groups.setdefault(result.dataset, []).append(result)
    return [_summary(name, group) for name, group in groups.items()]


def _summary(name: str, group: list[VideoProbe]) -> DatasetSummary:
    metas = [r.metadata for r in group if r.metadata is not None and r.error is None]
    good = [r for r in group if r.error is None]
    clip_times = [t for r in good for t in r.clip_ms]
    fps = [m.fps for m in metas]
    frames = [m.num_frames for m in metas]
    return DatasetSummary(
        name=name,
        videos=len(group),
        unreadable=len(group) - len(good),
        codecs=dict(Counter(m.codec for m in metas).most_common()),
        seek_modes=dict(Counter(r.seek_mode for r in good).most_common()),
        verified=sum(r.exact is not None for r in group),
        exact=sum(bool(r.exact) for r in group),
        resolutions=dict(Counter(f"{m.width}x{m.height}" for m in metas).most_common()),
        fps_range=(min(fps), max(fps)) if fps else None,
        frames_range=(min(frames), max(frames)) if frames else None,
        open_ms=float(np.mean([r.open_ms for r in good])) if good else None,
        clip_ms=float(np.mean(clip_times)) if clip_times else None,
    )
