"""Which videos a folder, a video file, a CSV or a text list names, labels or not.

Batch inference reads its archive this way, and self-supervised pretraining its unlabelled
footage: both take whatever a user already has, with no class folders and no label column.
"""

from __future__ import annotations

import csv
from pathlib import Path

from resaction.errors import DatasetError
from resaction.io.video_files import VIDEO_EXTENSIONS, videos_under

LIST_SUFFIXES = {".txt", ".lst", ".list"}
_PATH_COLUMNS = ("path", "file", "filename", "video", "file_name")


def list_videos(source: str | Path) -> list[Path]:
    """The videos ``source`` names, in a stable order and without repeats.

    ``source`` is a folder (searched recursively through symlinked folders, hidden files
    skipped), one video file, a CSV
    whose ``path`` column (or first column) names videos, or a text list with one video per line
    (an optional label after the path is ignored). Relative paths in a list start at the list's
    folder. Listed files that do not exist are kept: the run reports them as failures.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} not found: give a folder of videos, a video, a CSV or a list")
    if path.is_dir():
        videos = videos_under(path)
    elif path.suffix.lower() in VIDEO_EXTENSIONS:
        videos = [path]
    elif path.suffix.lower() == ".csv":
        videos = [_under(path.parent, name) for name in _csv_paths(path)]
    elif path.suffix.lower() in LIST_SUFFIXES:
        videos = [_under(path.parent, name) for name in _list_paths(path)]
    else:
        raise DatasetError(
            f"cannot read videos from {path}: give a folder, a video, a .csv or a .txt list"
        )
    unique = list({str(video.resolve()): video for video in videos}.values())
    if not unique:
        raise DatasetError(f"no video files found in {path}")
    return unique


def _under(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


def _csv_paths(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in _PATH_COLUMNS if name in header), None)
    if column is None:
        column = 0
    else:
        rows = rows[1:]
    return [row[column].strip() for row in rows if len(row) > column and row[column].strip()]


def _list_paths(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if Path(text).suffix.lower() not in VIDEO_EXTENSIONS and len(text.split()) > 1:
            text = text.rsplit(maxsplit=1)[0]  # "path label"
        names.append(text)
    return names
