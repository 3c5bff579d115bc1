"""Segment annotations of long videos, checked: rows become labelled spans in seconds.

Each row of an annotation file (see ``annotation_formats``) is found, probed and checked: its
video must exist and open, its label be known (when ``classes`` fixes the set) and its times lie
inside the video with the end after the start. A row that fails is a ``BadRow`` (file, row,
reason): the first one is a one-line ``DatasetError``, or with ``skip_bad_rows`` every one is
skipped, logged and listed, never dropped silently.

Videos named by upload URLs or bare names are found under the video root (the annotation
file's folder unless given): the path as written (absolute, or relative to the root), then the
file name in the root, then that name without Label Studio's 8-hex upload prefix
(``/data/upload/1/3f2a9c1d-walk.mp4`` -> ``walk.mp4``), then the one file of that name anywhere
under the root.

``background`` names a class for what lies between the labelled segments of each annotated
video: the gaps are cut into equal pieces no longer than the median labelled segment (at least
``MIN_BACKGROUND_S``), so one long gap does not become one entry drawn once an epoch, and
pieces shorter than ``MIN_BACKGROUND_S`` are dropped.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlparse

from resaction.data.annotation_formats import (
    RawSegment,
    read_cvat_video,
    read_label_studio,
    read_segment_csv,
)
from resaction.data.entries import BadRow
from resaction.data.spans import VideoFacts, video_facts
from resaction.errors import DatasetError, ResactionError
from resaction.io.video_files import files_under

log = logging.getLogger(__name__)

MIN_BACKGROUND_S = 0.5
SHOWN_BAD_ROWS = 20
READERS: dict[str, Callable[[Path], list[RawSegment]]] = {
    "segments_csv": read_segment_csv,
    "label_studio": read_label_studio,
    "cvat": read_cvat_video,
}
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


@dataclass(frozen=True)
class Segment:
    """A checked, labelled span of a video in seconds (``start``/``end`` None: all of it)."""

    video: Path
    label: str
    group: str
    start: float | None = None
    end: float | None = None


@dataclass
class Annotations:
    """The usable segments of an annotation file and the rows that were skipped."""

    segments: list[Segment]
    bad_rows: list[BadRow]


def read_annotations(
    path: Path,
    kind: str,
    *,
    root: Path,
    classes: Sequence[str] | None = None,
    background: str | None = None,
    skip_bad_rows: bool = False,
) -> Annotations:
    """The checked segments of annotation file ``path`` of format ``kind`` (a key of
    ``READERS``), with ``background`` pieces added when it names a class."""
    rows = READERS[kind](path)
    known = None if classes is None else set(classes)
    finder = _VideoFinder(root)
    segments, bad = [], []
    for raw in rows:
        checked = _check(raw, finder, known)
        if isinstance(checked, str):
            bad.append(BadRow(path, raw.row, checked))
        else:
            segments.append(checked)
    _report(path, bad, skip_bad_rows)
    if not segments:
        raise DatasetError(f"no usable segments in {path} ({len(bad)} bad rows skipped)")
    if background is not None:
        segments += background_segments(segments, background, path, classes)
    return Annotations(segments, bad)


def _report(path: Path, bad: list[BadRow], skip: bool) -> None:
    if bad and not skip:
        more = f" ({len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise DatasetError(
            f"{bad[0]}{more}; fix the file or skip such rows (skip_bad_rows, --skip-bad-rows)"
        )
    for row in bad[:SHOWN_BAD_ROWS]:
        log.warning("skipping annotation row %s", row)
    if len(bad) > SHOWN_BAD_ROWS:
        log.warning("... and %d more bad rows of %s", len(bad) - SHOWN_BAD_ROWS, path)


def _check(raw: RawSegment, finder: _VideoFinder, known: set[str] | None) -> Segment | str:
    """The segment ``raw`` describes, or why it cannot be used."""
    if raw.problem:
        return raw.problem
    if not raw.label:
        return "the label is empty"
    if known is not None and raw.label not in known:
        return f"label {raw.label!r} is not one of the given classes"
    video = finder.find(raw.video)
    if isinstance(video, str):
        return video
    try:
        facts = video_facts(video)
    except ResactionError as error:
        reason = str(error).removeprefix(f"{video.resolve()}: ").removeprefix(f"{video}: ")
        return f"video {video} cannot be read ({reason})"
    group = raw.group or str(video)
    if raw.start is None and raw.end is None:
        return Segment(video, raw.label, group)
    span = _seconds(raw, facts, video.name)
    return span if isinstance(span, str) else Segment(video, raw.label, group, *span)


def _seconds(raw: RawSegment, facts: VideoFacts, name: str) -> tuple[float, float] | str:
    """``raw``'s times in seconds, the end held to the video's; or what is wrong with them."""
    fps = (raw.fps or facts.fps) if raw.frames else 1.0
    start = (raw.start or 0.0) / fps
    end = facts.duration if raw.end is None else raw.end / fps
    shown = _shown(raw, start, end, fps)
    if start < 0:
        return f"{shown} starts before the video"
    if end < start:
        return f"{shown} ends before it starts"
    if end == start:
        return f"{shown} is empty (start = end)"
    if start >= facts.duration or end > facts.duration + 1.0 / facts.fps:
        return f"{shown} is outside video {name} ({facts.duration:.2f} s long)"
    return start, min(end, facts.duration)


def _shown(raw: RawSegment, start: float, end: float, fps: float) -> str:
    if raw.frames:
        first, last = raw.start or 0.0, (raw.end if raw.end is not None else end * fps)
        return f"frames {first:g} to {last:g} ({start:.2f} s to {end:.2f} s at {fps:g} fps)"
    return f"segment {start:g} s to {end:g} s"


class _VideoFinder:
    """Videos named in annotation files, found under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, list[Path]] | None = None

    def find(self, written: str) -> Path | str:
        """The video ``written`` names, or why none was found."""
        if not written:
            return "the row names no video"
        relative = _local_path(written)
        direct = Path(relative).expanduser()
        candidates = [direct if direct.is_absolute() else self.root / direct]
        name = PurePosixPath(relative).name
        names = [name, _UPLOAD_PREFIX.sub("", name)]
        candidates += [self.root / each for each in names]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        for each in dict.fromkeys(names):
            found = self._index().get(each, [])
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                return (
                    f"video {each} is ambiguous: {len(found)} files of that name under {self.root}"
                )
        return f"video {written} not found (looked in {self.root} for {name})"

    def _index(self) -> dict[str, list[Path]]:
        if self._by_name is None:
            self._by_name = {}
            if self.root.is_dir():
                for path in sorted(files_under(self.root)):
                    self._by_name.setdefault(path.name, []).append(path)
        return self._by_name


def _local_path(written: str) -> str:
    """The file path inside a URL (Label Studio's ``?d=`` local-files parameter, or its path);
    other text as it is."""
    if "://" not in written and not written.startswith("/data/"):
        return written
    parsed = urlparse(written)
    local = parse_qs(parsed.query).get("d")
    return unquote(local[0] if local else parsed.path)


def background_segments(
    segments: list[Segment], name: str, source: Path, classes: Sequence[str] | None = None
) -> list[Segment]:
    """Pieces of every annotated video outside its labelled segments, labelled ``name``."""
    if name in {segment.label for segment in segments}:
        raise DatasetError(
            f"background class {name!r} is also a label in {source}: pick another name"
        )
    if classes is not None and name not in classes:
        raise DatasetError(f"background class {name!r} is not one of the given classes")
    ranged = [s for s in segments if s.start is not None and s.end is not None]
    if not ranged:
        return []
    piece = max(statistics.median(s.end - s.start for s in ranged), MIN_BACKGROUND_S)
    whole = {s.video for s in segments if s.start is None}
    pieces = []
    for video in dict.fromkeys(s.video for s in ranged):
        if video in whole:
            continue
        own = [s for s in ranged if s.video == video]
        template = replace(own[0], label=name)
        for start, end in _gaps(own, video_facts(video).duration):
            count = math.ceil((end - start) / piece - 1e-9)
            length = (end - start) / count
            if length >= MIN_BACKGROUND_S:
                pieces += [
                    replace(template, start=start + k * length, end=start + (k + 1) * length)
                    for k in range(count)
                ]
    return pieces


def _gaps(segments: list[Segment], duration: float) -> list[tuple[float, float]]:
    """The stretches of ``[0, duration]`` outside every segment."""
    gaps, covered = [], 0.0
    for segment in sorted(segments, key=lambda s: s.start):
        if segment.start > covered:
            gaps.append((covered, segment.start))
        covered = max(covered, segment.end)
    if duration > covered:
        gaps.append((covered, duration))
    return gaps
