"""Segment annotation files, parsed: what each row of an export says, before videos are found.

Three formats give labelled spans of long videos:

- CSV with a header naming ``video``, ``start``, ``end`` and ``label`` columns (``group``
  optional); times are seconds (``12.5``) or clock times (``1:02.5``, ``0:01:02.5``). A row
  with both times empty labels the whole video.
- Label Studio's JSON export of a ``<TimelineLabels>`` project (also JSON-MIN). Its ranges are
  frame numbers counted from 1, both ends included, at the ``frameRate`` of the labelling
  config, which the export does not carry: the task's ``fps`` (``frameRate``) data field when
  there is one, else the video's own rate. Regions of the older ``<Labels>``-on-audio template
  give ``start``/``end`` in seconds. Each task uses one annotation: the ground-truth one, else
  the last that was not cancelled; predictions are ignored.
- CVAT's "CVAT for video 1.1" XML. A track is labelled on the frames where it is inside (from a
  shape with ``outside="0"`` up to the next with ``outside="1"``, or to the task's last frame);
  frames are the video's, counted from 0. Tracks of one label are merged (two people walking are
  one "walk" span). That export has no tags.

A row that cannot be parsed is kept with its ``problem``, so that the reader can report it
with the others. A file that is not of its format at all is a ``DatasetError``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from resaction.errors import DatasetError

PATH_HEADERS = ("path", "file", "filename", "video", "file_name")
LABEL_HEADERS = ("label", "class", "category", "action")
GROUP_HEADERS = ("group", "subject", "person", "actor")
START_HEADERS = ("start", "start_s", "start_time", "begin")
END_HEADERS = ("end", "end_s", "end_time", "stop")
FPS_KEYS = ("fps", "frameRate", "framerate", "frame_rate")
_VIDEO_KEYS = ("video", "video_url", "videoUrl", "url")
_REGION_TYPES = ("timelinelabels", "labels")
_VIDEO_SUFFIX = re.compile(r"\.(mp4|avi|mkv|webm|mov|m4v|mpg|mpeg|wmv|flv|3gp|ts)$", re.I)


@dataclass(frozen=True)
class RawSegment:
    """One labelled span as a file states it.

    ``video`` is as written (a path, an upload URL or a file name). With ``frames`` the times
    are frame numbers from 0, ``end`` excluded, at ``fps`` (None: the video's rate); otherwise
    seconds. ``end`` None with a ``start`` runs to the end of the video; both None is the whole
    video. ``row`` says where the span is in its file, for messages.
    """

    video: str
    label: str
    row: str
    start: float | None = None
    end: float | None = None
    group: str | None = None
    frames: bool = False
    fps: float | None = None
    problem: str | None = None


def csv_table(path: Path) -> list[tuple[int, list[str]]]:
    """The non-empty rows of a CSV file with their line numbers (1-based)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [(i, row) for i, row in enumerate(csv.reader(handle), start=1) if any(row)]


def has_segment_header(path: Path) -> bool:
    """Whether a CSV's first row names a start and an end column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            first = next((row for row in csv.reader(handle) if any(row)), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    header = {cell.strip().lower() for cell in first}
    return bool(header & set(START_HEADERS)) and bool(header & set(END_HEADERS))


def read_segment_csv(path: Path) -> list[RawSegment]:
    """``video,start,end,label[,group]`` rows; ``row`` is the line number."""
    table = csv_table(path)
    header = [cell.strip().lower() for cell in table[0][1]]
    video, start, end, label = (
        _column(header, names, path)
        for names in (PATH_HEADERS, START_HEADERS, END_HEADERS, LABEL_HEADERS)
    )
    group = next((header.index(name) for name in GROUP_HEADERS if name in header), -1)
    rows = []
    for line, cells in table[1:]:
        cells = [cell.strip() for cell in cells] + [""] * len(header)
        times, problem = _times(cells[start], cells[end])
        rows.append(
            RawSegment(
                video=cells[video],
                label=cells[label],
                row=str(line),
                start=times[0],
                end=times[1],
                group=(cells[group] or None) if group >= 0 else None,
                problem=problem or (None if cells[video] else "the video cell is empty"),
            )
        )
    if not rows:
        raise DatasetError(f"annotation file {path} has a header but no rows")
    return rows


def _column(header: list[str], names: tuple[str, ...], path: Path) -> int:
    found = next((header.index(name) for name in names if name in header), None)
    if found is None:
        raise DatasetError(
            f"{path}: header {header} has no {names[0]!r} column (need video,start,end,label)"
        )
    return found


def _times(start: str, end: str) -> tuple[tuple[float | None, float | None], str | None]:
    if not start and not end:
        return (None, None), None
    values = []
    for name, text in (("start", start), ("end", end)):
        seconds = _seconds(text)
        if seconds is None:
            return (None, None), f"{name} {text!r} is not a time in seconds"
        values.append(seconds)
    return (values[0], values[1]), None


def _seconds(text: str) -> float | None:
    """``12.5``, ``1:02.5`` or ``0:01:02.5`` as seconds; None for anything else."""
    parts = text.split(":")
    if not text or len(parts) > 3:
        return None
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        return None
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds


def read_label_studio(path: Path) -> list[RawSegment]:
    """Label Studio JSON (or JSON-MIN) export; ``row`` is ``task[i]`` (0-based, with its id)
    and the region's position."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error})") from None
    tasks = [tasks] if isinstance(tasks, dict) else tasks
    if not isinstance(tasks, list) or not any(map(_is_task, tasks)):
        raise DatasetError(
            f"unknown dataset format {path}: a .json must be a Label Studio export (a list of "
            "tasks with data and annotations)"
        )
    rows = []
    for i, task in enumerate(tasks):
        where = f"task[{i}]"
        if not isinstance(task, dict):
            rows.append(RawSegment("", "", where, problem="the task is not a JSON object"))
            continue
        if task.get("id") is not None:
            where += f" id={task['id']}"
        data = task["data"] if isinstance(task.get("data"), dict) else task
        video, fps = _task_video(data, task), _task_fps(data)
        regions = list(_task_regions(task))
        if not regions:
            rows.append(RawSegment(video, "", where, problem="the task has no timeline labels"))
        for j, value in enumerate(regions):
            rows.extend(_region_segments(value, video, fps, f"{where} region {j}"))
    return rows


def _is_task(task: object) -> bool:
    if not isinstance(task, dict):
        return False
    return "data" in task or "annotations" in task or any(True for _ in _task_regions(task))


def _task_video(data: dict[str, Any], task: dict[str, Any]) -> str:
    strings = {key: value for key, value in data.items() if isinstance(value, str)}
    for key in _VIDEO_KEYS:
        if key in strings:
            return strings[key]
    for value in strings.values():
        if _VIDEO_SUFFIX.search(value.split("?")[0]) or _VIDEO_SUFFIX.search(value):
            return value
    upload = task.get("file_upload")
    return upload if isinstance(upload, str) else ""


def _task_fps(data: dict[str, Any]) -> float | None:
    for key in FPS_KEYS:
        try:
            fps = float(data[key])
        except (KeyError, TypeError, ValueError):
            continue
        if fps > 0:
            return fps
    return None


def _task_regions(task: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The region values of the task's one annotation (or of a JSON-MIN row)."""
    annotations = task.get("annotations")
    if isinstance(annotations, list):
        usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        chosen = next((a for a in usable if a.get("ground_truth")), usable[-1] if usable else {})
        for result in chosen.get("result") or []:
            typed = isinstance(result, dict) and result.get("type") in _REGION_TYPES
            if typed and isinstance(result.get("value"), dict):
                yield result["value"]
        return
    for value in task.values():  # JSON-MIN: {"<control name>": [{"ranges": ..., labels}]}
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and any(key in item for key in _REGION_TYPES):
                    yield item


def _region_segments(
    value: dict[str, Any], video: str, fps: float | None, where: str
) -> list[RawSegment]:
    labels = value.get("timelinelabels") or value.get("labels") or []
    labels = [labels] if isinstance(labels, str) else labels
    spans, problem = _region_spans(value)
    if not labels:
        problem = problem or "the region has no label"
        labels = [""]
    frames = "ranges" in value
    return [
        RawSegment(
            video,
            str(label),
            where,
            start=start,
            end=end,
            frames=frames,
            fps=fps if frames else None,
            problem=problem,
        )
        for label in labels
        for start, end in spans or [(None, None)]
    ]


def _region_spans(value: dict[str, Any]) -> tuple[list[tuple[float, float]], str | None]:
    """Frame ranges as 0-based, end-excluded numbers; or seconds for ``start``/``end``."""
    try:
        if "ranges" in value:
            spans = []
            for item in value["ranges"]:
                start = float(item["start"])
                end = float(item["end"] if item.get("end") is not None else start)
                spans.append((start - 1, end))
            return spans, None if spans else "the region has no ranges"
        return [(float(value["start"]), float(value["end"]))], None
    except (KeyError, TypeError, ValueError):
        return [], "the region's range is not a pair of numbers"


def read_cvat_video(path: Path) -> list[RawSegment]:
    """ "CVAT for video 1.1" XML; ``row`` names the track(s)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid XML ({error})") from None
    if root.tag != "annotations":
        raise DatasetError(f"{path}: expected a CVAT export (an <annotations> root)")
    tracks = root.findall("track")
    if not tracks and root.find("image") is not None:
        raise DatasetError(
            f"{path} is a 'CVAT for images' export: export the task as 'CVAT for video 1.1'"
        )
    meta = root.find("meta")
    meta = meta if meta is not None else ElementTree.Element("meta")
    source = next((el.text.strip() for el in meta.iter("source") if el.text), "")
    stop = meta.findtext(".//stop_frame")
    end = float(int(stop) + 1) if stop and stop.strip().isdigit() else None
    spans: dict[str, list[tuple[float, float | None, str]]] = {}
    rows = []
    for track in tracks:
        where, label = f"track {track.get('id', '?')}", track.get("label") or ""
        try:
            found = _track_spans(track, end)
        except ValueError:
            rows.append(RawSegment(source, label, where, problem="a shape's frame is not a number"))
            continue
        spans.setdefault(label, []).extend((a, b, where) for a, b in found)
        if not found:
            rows.append(RawSegment(source, label, where, problem="the track is never inside"))
    for label, items in spans.items():
        for start, stop_at, where in _merged(items):
            rows.append(RawSegment(source, label, where, start, stop_at, frames=True))
    if not rows:
        raise DatasetError(f"{path} has no tracks: label the actions as tracks and export again")
    if not source:
        return [RawSegment("", r.label, r.row, problem="no <source> video in <meta>") for r in rows]
    return rows


def _track_spans(track: ElementTree.Element, end: float | None) -> list[tuple[float, float | None]]:
    """The frames a track is inside, as ``[start, stop)`` pairs (stop None: to the end)."""
    shapes = sorted((int(el.get("frame", "")), _outside(el)) for el in track if el.get("frame"))
    spans, start = [], None
    for frame, outside in shapes:
        if not outside and start is None:
            start = frame
        elif outside and start is not None:
            spans.append((float(start), float(frame)))
            start = None
    if start is not None:
        spans.append((float(start), end))
    return spans


def _outside(shape: ElementTree.Element) -> bool:
    if "outside" in shape.attrib:
        return shape.get("outside") == "1"
    parts = [child.get("outside") for child in shape if "outside" in child.attrib]
    return bool(parts) and all(part == "1" for part in parts)  # a skeleton: all points outside


def _merged(
    items: list[tuple[float, float | None, str]],
) -> list[tuple[float, float | None, str]]:
    """Overlapping or touching spans of one label as one (None ends sort last)."""
    merged: list[tuple[float, float | None, str]] = []
    for start, stop, where in sorted(items, key=lambda item: item[0]):
        if merged:
            last_start, last_stop, last_where = merged[-1]
            if last_stop is None or start <= last_stop:
                longer = None if last_stop is None or stop is None else max(last_stop, stop)
                merged[-1] = (last_start, longer, f"{last_where}+{where.split()[-1]}")
                continue
        merged.append((start, stop, where))
    return merged
