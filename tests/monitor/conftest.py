"""Fixtures for the monitor tests: real clips served live on loopback (see ``streams``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from .streams import LoopbackSource, loopback_source, surveillance_clips

StartStream = Callable[..., LoopbackSource]


@pytest.fixture(scope="session")
def quiet_clips(videos_dir: Path) -> list[Path]:
    """Three non-fight surveillance clips, 640x360 H.264 at 30 fps, about 2 s each."""
    return surveillance_clips(videos_dir, "noFight", 3)


@pytest.fixture(scope="session")
def fight_clips(videos_dir: Path) -> list[Path]:
    """Three fight surveillance clips, 640x360 H.264 at 30 fps, about 2 s each."""
    return surveillance_clips(videos_dir, "fight", 3)


@pytest.fixture
def start_stream() -> Iterator[StartStream]:
    """``start_stream(kind, files, *, loop=True, start=True) -> LoopbackSource``: ``files``
    played in order at real time as a live "udp", "http" or "rtsp" source on loopback; its
    ``url`` stays the same across ``stop()`` and ``start()``. All are closed after the test."""
    sources: list[LoopbackSource] = []

    def start(
        kind: str, files: Sequence[Path], *, loop: bool = True, start: bool = True
    ) -> LoopbackSource:
        source = loopback_source(kind, files, loop=loop, start=start)
        sources.append(source)
        return source

    yield start
    for source in sources:
        source.close()
