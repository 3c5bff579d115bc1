from __future__ import annotations

import os

# Before torch loads OpenMP: with the default policy its threads spin at every barrier, which makes
# a shared 2-core machine (CI, parallel jobs) several times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under pytest-xdist (-n 2: a worker per core) two threads per worker would oversubscribe the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1" if "PYTEST_XDIST_WORKER" in os.environ else "2")

from pathlib import Path

import pytest

from resaction.paths import reference_dir, shared_dir, shared_videos_dir

LONGEST_FIRST = (
    "engine/test_quickstart.py",
    "io/test_real_videos.py",
    "inference/test_training_windows.py",
    "monitor/test_watch_events.py",
    "monitor/test_cluster.py",
    "inference/test_batch.py",
    "engine/test_ddp.py",
    "models/test_compile.py",
)
"""Test files that take minutes on CI's two one-thread workers (``--durations``), longest first.

Collected first, ``--dist loadfile`` starts them at once and the short files fill the other worker
beside them, rather than a long file starting late and running alone at the end (CI has 20 minutes
and took 18 on 2026-12-08 in path order)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix()
        found = [index for index, name in enumerate(LONGEST_FIRST) if path.endswith(name)]
        return found[0] if found else len(LONGEST_FIRST)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    assert path.is_dir(), f"shared/ not found at {path}: tests need ../shared beside the checkout"
    return path


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    path = shared_videos_dir()
    assert path.is_dir(), f"shared videos not found at {path}"
    return path


@pytest.fixture(scope="session")
def reference() -> Path:
    return reference_dir()


@pytest.fixture(scope="session")
def all_shared_videos(videos_dir: Path) -> list[Path]:
    exts = {".mp4", ".avi", ".mkv", ".webm", ".mov"}
    return sorted(p for p in videos_dir.rglob("*") if p.suffix.lower() in exts)
