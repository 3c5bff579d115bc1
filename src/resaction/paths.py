"""Where the shared data and reference files are."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """The ``shared/`` folder beside the checkout, or ``$RESACTION_SHARED``."""
    env = os.environ.get("RESACTION_SHARED")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared"
        if (candidate / "data").is_dir():
            return candidate
    return Path.cwd().parent / "shared"


def shared_videos_dir() -> Path:
    return shared_dir() / "data" / "videos"


def reference_dir() -> Path:
    return shared_dir() / "reference"
