"""Which files are videos, and the videos under a folder.

One suffix list and one walk for every command that takes a folder (predict, batch, probe,
pretrain, class folders, annotation lookups). The walk follows symlinked folders, as a user
who links footage in from another disk expects, and visits each real folder once, so a link
back up the tree cannot loop. Hidden files and folders (a leading dot) are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
        ".ts",
    }
)  # fmt: skip


def is_video_file(path: Path) -> bool:
    """A video by its suffix, not hidden."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def files_under(folder: Path) -> Iterator[Path]:
    """Every file under ``folder``, not hidden, through symlinked folders (each real folder
    once), folder by folder (each one's files sorted; ``sorted()`` for one order overall)."""
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if not name.startswith(".") and path.is_file():
                yield path


def videos_under(folder: Path) -> list[Path]:
    """The video files under ``folder`` (``files_under``), sorted."""
    return sorted(path for path in files_under(folder) if is_video_file(path))
