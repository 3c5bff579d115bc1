"""Fixtures of the engine tests: unlabelled footage for pretraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resaction.io.writer import VideoWriter


@pytest.fixture(scope="session")
def footage(tmp_path_factory) -> Path:
    """Unlabelled footage in which speed and direction are plain to see: random textures that
    scroll to the right by 2 pixels a frame (so played backwards they scroll left)."""
    root = tmp_path_factory.mktemp("footage")
    rng = np.random.default_rng(0)
    for number in range(16):
        texture = (rng.random((16, 48, 3)) * 255).astype(np.uint8).repeat(2, 0).repeat(2, 1)
        with VideoWriter(root / f"camera{number % 4}" / f"{number}.mp4", 15, crf=18) as writer:
            for frame in range(40):
                writer.write(np.roll(texture, 2 * frame, axis=1)[:, :32].copy())
    return root


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    """Unlabelled footage of 16 scenes, each its own pattern of coloured blocks that shakes by a
    pixel or two: two clips of a scene look alike, clips of two scenes do not."""
    root = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    for number in range(16):
        pattern = (rng.random((8, 8, 3)) * 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
        with VideoWriter(root / f"scene{number}.mp4", 15, crf=18) as writer:
            for frame in range(24):
                writer.write(np.roll(pattern, frame % 3, axis=1).copy())
    return root
