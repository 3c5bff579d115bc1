"""Annotated truth of long videos, as event spans per video.

Any segment annotation ``read_manifest`` reads (a CSV ``video,start,end,label``, a Label Studio
export, a CVAT video XML) gives the truth; its rows are checked the same way (one-line errors
naming file and row, or skipped and listed with ``skip_bad_rows``). A row without times labels
the whole video; a video with no incident is listed by such a row labelled with the background
class, so its footage counts towards false alarms per hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from resaction.data.manifests import read_manifest
from resaction.data.spans import video_facts
from resaction.detection.event_metrics import Span
from resaction.inference.event_eval import Truth, video_key


def read_truth(
    path: str | Path, classes: Sequence[str], *, skip_bad_rows: bool = False
) -> tuple[list[Path], Truth]:
    """The annotated videos (in file order) and their truth spans, keyed by ``video_key``."""
    manifest = read_manifest(path, classes=list(classes), skip_bad_rows=skip_bad_rows)
    videos: list[Path] = []
    truth: dict[str, list[Span]] = {}
    for entry in manifest:
        key = video_key(entry.path)
        if key not in truth:
            videos.append(Path(entry.path))
            truth[key] = []
        start = 0.0 if entry.start is None else float(entry.start)
        end = video_facts(entry.path).duration if entry.end is None else float(entry.end)
        truth[key].append(Span(manifest.classes[entry.label], start, end))
    return videos, truth
