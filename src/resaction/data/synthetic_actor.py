"""The actor of a synthetic video: how it moves for each class, how it is drawn, where it is.

A video's actor is one solid shape with a dot on it (so turning shows); ``make_actor`` gives its
path for a forward motion (right, down, bounce, grow, rotate clockwise, still; the other classes
are those frames reversed, ``data/synthetic.py``).

The generator knows the actor's outline on every frame, so its box is exact rather than
detected: the bounding box of the drawn polygons (shape and marker dot), moved by the camera's
affine warp when the camera moves, in pixels of the written video. Explanations can then be
scored against it (does the saliency peak fall on the actor?) without labelling.

A box is ``(x0, y0, x1, y1)`` integers with exclusive ends, ``frame[y0:y1, x0:x1]`` covering
every pixel the actor's drawing touches (its anti-aliased fringe included: about a pixel of faint
edge on each side, a pixel or two more where the camera's warp blurs it), clipped to the frame;
a box with ``x0 == x1`` or ``y0 == y1`` means the camera moved the actor out of view.
``occluded`` is the fraction of the actor's pixels an occluder covers on that frame (0 where none
does), measured before the camera warp.

Each video gets a sidecar JSON beside it, ``<name>.boxes.json`` (``move_left_0003.mp4`` ->
``move_left_0003.boxes.json``), read back with ``read_boxes`` and ``read_occluded``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from resaction.data.stress import SHAPES, paste_shape, random_colour, shape_points
from resaction.errors import DatasetError

BOXES_SUFFIX = ".boxes.json"
BOX_FORMAT = (
    "x0, y0, x1, y1 in pixels of the video, ends exclusive: frame[y0:y1, x0:x1] holds the actor"
)
_SUBPIXEL_BITS = 4
_MARKER_OFFSET = 0.35
_MARKER_RADIUS = 0.2

Polygons = Sequence[np.ndarray]
"""The (N, 2) vertex arrays, (x, y) in pixels, that make up the actor on one frame."""


@dataclass(frozen=True)
class Actor:
    """The actor's look (shape, colour, marker colour) and its path: per frame a centre (x, y),
    a radius and an angle, in pixels and radians."""

    shape: str
    colour: np.ndarray
    marker: np.ndarray
    centers: np.ndarray
    radii: np.ndarray
    angles: np.ndarray


def make_actor(
    motion: str, rng: np.random.Generator, num_frames: int, height: int, width: int
) -> Actor:
    """The actor of a video of forward ``motion``: its look and its path, all drawn from ``rng``."""
    short = min(height, width)
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = random_colour(rng, saturation=(0.5, 1.0), value=(0.6, 1.0))
    luminance = float(colour @ np.array([0.299, 0.587, 0.114]))
    marker = np.zeros(3, np.float32) if luminance > 140 else np.full(3, 255.0, np.float32)
    steps = np.linspace(0.0, 1.0, num_frames)
    ease = rng.uniform(0.0, 1.0)
    progress = (1 - ease) * steps + ease * steps * steps * (3 - 2 * steps)
    angles = np.full(num_frames, rng.uniform(0, 2 * np.pi))
    extent = np.array([width, height], np.float64)

    if motion in ("move_right", "move_down"):
        axis = 0 if motion == "move_right" else 1
        radius = rng.uniform(0.09, 0.15) * short
        pad = radius + 2
        travel = min(rng.uniform(0.35, 0.6) * extent[axis], extent[axis] - 2 * pad)
        along = rng.uniform(pad, extent[axis] - pad - travel) + travel * progress
        drift = rng.uniform(-0.1, 0.1) * travel
        across_extent = extent[1 - axis]
        across = np.clip(
            rng.uniform(pad, across_extent - pad) + drift * progress, pad, across_extent - pad
        )
        centers = np.stack([along, across] if axis == 0 else [across, along], axis=1)
        radii = np.full(num_frames, radius)
    elif motion == "bounce":
        radius = rng.uniform(0.08, 0.13) * short
        pad = radius + 2
        floor = height - pad - rng.uniform(0.0, 0.1) * height
        rise = min(rng.uniform(0.3, 0.55) * height, floor - pad)
        bounces = rng.uniform(1.5, 3.0)
        ys = floor - rise * np.abs(np.sin(np.pi * bounces * steps + rng.uniform(0, np.pi)))
        xs = np.full(num_frames, rng.uniform(pad, width - pad))
        centers = np.stack([xs, ys], axis=1)
        radii = np.full(num_frames, radius)
    else:
        if motion == "grow":
            start = rng.uniform(0.05, 0.08) * short
            end = min(start * rng.uniform(1.8, 2.8), 0.3 * short)
            radii = start + (end - start) * progress
        else:
            radii = np.full(num_frames, rng.uniform(0.12, 0.2) * short)
        if motion == "rotate_clockwise":
            angles = angles + rng.uniform(2 * np.pi / 3, 2 * np.pi) * progress
        pad = radii.max() + 2
        centers = np.repeat(rng.uniform(pad, extent - pad)[None], num_frames, axis=0)
    return Actor(shape, colour, marker, centers, radii, angles)


def actor_polygons(actor: Actor) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame, the vertices of the actor's outline and of its marker dot, in pixels."""
    polygons = []
    for center, radius, angle in zip(actor.centers, actor.radii, actor.angles, strict=True):
        outline = shape_points(actor.shape, tuple(center), radius, angle)
        dot = center + _MARKER_OFFSET * radius * np.array([np.cos(angle), np.sin(angle)])
        polygons.append((outline, shape_points("circle", tuple(dot), _MARKER_RADIUS * radius)))
    return polygons


def draw_actor(
    frames: np.ndarray, actor: Actor, polygons: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    """Paste the actor's ``actor_polygons`` into ``frames`` (T, H, W, 3) in place."""
    for frame, (outline, dot) in zip(frames, polygons, strict=True):
        paste_shape(frame, outline, actor.colour)
        paste_shape(frame, dot, actor.marker)


def boxes_path(video: str | os.PathLike[str]) -> Path:
    """The sidecar file that holds the actor boxes of ``video``."""
    path = Path(video)
    return path.with_name(path.stem + BOXES_SUFFIX)


def actor_boxes(
    polygons: Sequence[Polygons],
    height: int,
    width: int,
    matrices: np.ndarray | None = None,
) -> np.ndarray:
    """Boxes (T, 4) int64 around each frame's polygons, moved by the camera's affine
    ``matrices`` (T, 2, 3) when given: OpenCV's forward warp, a source point p lands on
    ``M[:, :2] @ p + M[:, 2]``."""
    boxes = np.zeros((len(polygons), 4), np.int64)
    for t, frame_polygons in enumerate(polygons):
        points = np.concatenate(list(frame_polygons), axis=0)
        pad = 0.0
        if matrices is not None:
            points = points @ matrices[t, :, :2].T + matrices[t, :, 2]
            # The warp interpolates: the actor's edge pixel bleeds a source pixel further.
            pad = math.sqrt(abs(np.linalg.det(matrices[t, :, :2])))
        # OpenCV's anti-aliased fill paints a pixel past the outline on each side (the box
        # ``paste_shape`` draws into, ``stress._bounds``).
        x0 = min(max(math.floor(points[:, 0].min() - pad) - 1, 0), width)
        y0 = min(max(math.floor(points[:, 1].min() - pad) - 1, 0), height)
        x1 = max(min(math.ceil(points[:, 0].max() + pad) + 2, width), x0)
        y1 = max(min(math.ceil(points[:, 1].max() + pad) + 2, height), y0)
        boxes[t] = (x0, y0, x1, y1)
    return boxes


def occluded_fractions(
    outlines: Sequence[np.ndarray], before: np.ndarray, after: np.ndarray
) -> np.ndarray:
    """Per frame, the share of the actor's pixels (inside its ``outlines[t]``) that differ
    between the frames ``before`` and ``after`` the occluders were drawn (T, H, W, 3)."""
    fractions = np.zeros(len(outlines), np.float64)
    height, width = before.shape[1:3]
    scale = 1 << _SUBPIXEL_BITS
    for t, outline in enumerate(outlines):
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(outline * scale).astype(np.int32)], 1, shift=_SUBPIXEL_BITS)
        inside = mask.astype(bool)
        area = int(inside.sum())
        if area:
            changed = (before[t] != after[t]).any(axis=2)
            fractions[t] = float((changed & inside).sum()) / area
    return fractions


def write_boxes(
    video: str | os.PathLike[str], boxes: np.ndarray, occluded: np.ndarray, size: tuple[int, int]
) -> Path:
    """Write the sidecar of ``video`` (atomically) and return its path."""
    path = boxes_path(video)
    record = {
        "video": Path(video).name,
        "size": [int(size[0]), int(size[1])],
        "format": BOX_FORMAT,
        "boxes": [[int(v) for v in box] for box in boxes],
        "occluded": [round(float(v), 4) for v in occluded],
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def read_boxes(video: str | os.PathLike[str]) -> np.ndarray:
    """The actor's box on every frame of a synthetic ``video``: int64 (T, 4) as x0, y0, x1, y1
    in its pixels, ends exclusive (see the module docstring)."""
    return np.asarray(_record(video)["boxes"], dtype=np.int64).reshape(-1, 4)


def read_occluded(video: str | os.PathLike[str]) -> np.ndarray:
    """The fraction (T,) of the actor hidden by occluders on every frame of ``video``."""
    return np.asarray(_record(video)["occluded"], dtype=np.float64)


def _record(video: str | os.PathLike[str]) -> dict:
    path = boxes_path(video)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"no actor boxes for {video}: {path.name} is missing beside it; "
            "generate the dataset again with this version of resaction synth"
        ) from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read actor boxes {path}: {error}") from None
