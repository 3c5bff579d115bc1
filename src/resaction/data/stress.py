"""The three classic difficulties of action recognition, added to any clip.

Background clutter (moving textured distractors blended in), camera motion (pan, zoom and shake
as one smooth affine warp per frame) and occlusion (opaque bars or blobs crossing the frame).
``apply_stress`` adds one of them to a real clip for robustness evaluation; the synthetic
generator (``data/synthetic.py``) builds its scenes from the same functions, so a strength means
the same distractors, camera path or occluders in generated data and in a stress test (the
generator also textures its plain background, which a real video does not need).

Two more conditions test temporal reliance rather than difficulty (``ORDER_KINDS``):
``time-reversed`` plays the clip backwards and ``frame-shuffled`` puts its frames in a random
order. A model that uses motion loses accuracy on them; one that only sees appearance (or pools
frames without order, as TSN does) does not. They ignore the severity.

Every function takes a ``numpy.random.Generator`` and draws all its randomness from it, so a
seed fixes the result. ``strength`` is in [0, 1]; 0 adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from resaction.errors import ConfigError

STRESS_KINDS = ("clutter", "camera-motion", "occlusion")
"""The difficulties, what ``all`` means."""
ORDER_KINDS = ("time-reversed", "frame-shuffled")
"""The temporal-reliance conditions of ``evaluate --order-test``."""
KNOWN_KINDS = STRESS_KINDS + ORDER_KINDS
SHAPES = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "diamond")

_POLYGON_SIDES = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}
_CIRCLE_VERTICES = 32
_SUBPIXEL_BITS = 4


def parse_stress_kinds(kinds: str | Iterable[str] | None) -> tuple[str, ...]:
    """Turn ``"clutter,camera-motion"`` (or a list, or ``"all"``) into known kinds, in order.

    Underscores count as hyphens and repeats are dropped; an unknown kind is a ``ConfigError``
    that lists the valid ones.
    """
    if kinds is None:
        return ()
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    parsed: list[str] = []
    for item in items:
        name = item.strip().lower().replace("_", "-")
        if not name:
            continue
        if name == "all":
            names: tuple[str, ...] = STRESS_KINDS
        elif name in KNOWN_KINDS:
            names = (name,)
        else:
            raise ConfigError(
                f"unknown stress kind {item.strip()!r}: choose from {', '.join(KNOWN_KINDS)} "
                "(comma-separated) or 'all'"
            )
        parsed.extend(n for n in names if n not in parsed)
    return tuple(parsed)


def apply_stress(
    clip: torch.Tensor | np.ndarray, kind: str, severity: float = 0.5, seed: int = 0
) -> torch.Tensor | np.ndarray:
    """Return a copy of ``clip`` (uint8, (T, H, W, 3)) with one difficulty added.

    ``kind`` is one of ``STRESS_KINDS``, whose ``severity`` in [0, 1] scales how strong it is (0
    gives the clip back unchanged), or of ``ORDER_KINDS``, which reorder the frames whatever the
    severity. The same ``seed`` gives the same result; pass a different seed per
    video (its index, say) so videos are not all stressed alike. A tensor in gives a tensor out,
    an array in gives an array out.
    """
    name = str(kind).strip().lower().replace("_", "-")
    if name not in KNOWN_KINDS:
        raise ConfigError(f"unknown stress kind {kind!r}: choose from {', '.join(KNOWN_KINDS)}")
    if not 0.0 <= severity <= 1.0:
        raise ConfigError(f"stress severity must be in [0, 1], got {severity}")
    is_tensor = isinstance(clip, torch.Tensor)
    frames = clip.detach().cpu().numpy() if is_tensor else np.asarray(clip)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"apply_stress expects a uint8 clip of shape (T, H, W, 3), "
            f"got {frames.dtype} {tuple(frames.shape)}"
        )
    frames = np.array(frames, order="C", copy=True)
    if name in ORDER_KINDS:
        rng = np.random.default_rng([seed, KNOWN_KINDS.index(name)])
        order = rng.permutation(len(frames)) if name == "frame-shuffled" else slice(None, None, -1)
        frames = np.ascontiguousarray(frames[order])
    elif severity > 0:
        rng = np.random.default_rng([seed, STRESS_KINDS.index(name)])
        if name == "clutter":
            add_distractors(frames, rng, severity)
        elif name == "camera-motion":
            frames = move_camera(frames, rng, severity)
        else:
            add_occluders(frames, rng, severity)
    return torch.from_numpy(frames) if is_tensor else frames


def shape_points(
    shape: str, center: tuple[float, float], radius: float, angle: float = 0.0
) -> np.ndarray:
    """Vertices (N, 2) as (x, y) of ``shape`` inscribed in a circle of ``radius``.

    ``angle`` is in radians; in image coordinates (y down) a growing angle turns the shape
    clockwise on screen.
    """
    if shape == "circle":
        thetas = np.linspace(0.0, 2 * np.pi, _CIRCLE_VERTICES, endpoint=False)
        radii = np.full(_CIRCLE_VERTICES, radius)
    elif shape == "star":
        thetas = np.linspace(0.0, 2 * np.pi, 10, endpoint=False) - np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    elif shape == "diamond":
        thetas = np.array([0.0, 0.5, 1.0, 1.5]) * np.pi
        radii = radius * np.array([1.0, 0.6, 1.0, 0.6])
    elif shape in _POLYGON_SIDES:
        sides = _POLYGON_SIDES[shape]
        thetas = np.linspace(0.0, 2 * np.pi, sides, endpoint=False) - np.pi / 2 + np.pi / sides
        radii = np.full(sides, radius)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    thetas = thetas + angle
    return np.stack(
        [center[0] + radii * np.cos(thetas), center[1] + radii * np.sin(thetas)], axis=1
    )


def paste_shape(
    frame: np.ndarray,
    points: np.ndarray,
    fill: np.ndarray | tuple[float, float, float],
    alpha: float = 1.0,
    origin: tuple[int, int] = (0, 0),
) -> None:
    """Blend the polygon ``points`` into ``frame`` (uint8 H x W x 3) in place, anti-aliased.

    ``fill`` is an RGB colour, or a texture (h, w, 3) whose top-left pixel lies at frame
    position ``origin`` (x, y) and which must cover the polygon.
    """
    box = _bounds(points, frame.shape)
    if box is None or alpha <= 0:
        return
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    scaled = np.round((points - (x0, y0)) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [scaled], 255, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
    weight = mask[..., None].astype(np.float32) * np.float32(alpha / 255.0)
    fill = np.asarray(fill, np.float32)
    if fill.ndim == 3:
        fill = fill[y0 - origin[1] : y1 - origin[1], x0 - origin[0] : x1 - origin[0]]
    roi = frame[y0:y1, x0:x1]
    roi[:] = (roi * (1.0 - weight) + fill * weight + 0.5).astype(np.uint8)


def _bounds(points: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """The pixel box (x0, y0, x1, y1) around ``points``, clipped to a frame; None if outside."""
    x0 = max(math.floor(points[:, 0].min()) - 1, 0)
    y0 = max(math.floor(points[:, 1].min()) - 1, 0)
    x1 = min(math.ceil(points[:, 0].max()) + 2, shape[1])
    y1 = min(math.ceil(points[:, 1].max()) + 2, shape[0])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


@dataclass(frozen=True)
class Sprite:
    """A textured polygon in its own coordinates (origin at its centre), placed by a pose.

    The texture turns and travels with the outline, so a moving distractor or occluder looks
    like one object rather than a window onto a fixed pattern.
    """

    outline: np.ndarray
    texture: np.ndarray
    alpha: float = 1.0

    @classmethod
    def textured(
        cls,
        rng: np.random.Generator,
        outline: np.ndarray,
        alpha: float = 1.0,
        contrast: float = 1.0,
    ) -> Sprite:
        """A sprite for ``outline`` with a fresh ``random_texture`` just large enough for it."""
        half = np.abs(outline).max(axis=0)
        width, height = (2 * (math.ceil(extent) + 2) for extent in half)
        return cls(outline, random_texture(rng, height, width, contrast=contrast), alpha)

    def paste(self, frame: np.ndarray, center: np.ndarray, angle: float = 0.0) -> None:
        """Draw into ``frame`` in place, centred at ``center`` (x, y), turned by ``angle``."""
        cos, sin = math.cos(angle), math.sin(angle)
        rotation = np.array([[cos, -sin], [sin, cos]])
        points = self.outline @ rotation.T + center
        box = _bounds(points, frame.shape)
        if box is None:
            return
        x0, y0, x1, y1 = box
        height, width = self.texture.shape[:2]
        shift = np.asarray(center) - (x0, y0) - rotation @ (width / 2, height / 2)
        patch = cv2.warpAffine(
            self.texture,
            np.hstack([rotation, shift[:, None]]),
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        paste_shape(frame, points, patch, self.alpha, origin=(x0, y0))


def random_colour(
    rng: np.random.Generator,
    saturation: tuple[float, float] = (0.5, 1.0),
    value: tuple[float, float] = (0.5, 1.0),
) -> np.ndarray:
    """An RGB colour (0..255 float) with hue uniform and saturation/value in the given ranges."""
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]],
        np.float32,
    )
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def random_texture(
    rng: np.random.Generator,
    height: int,
    width: int,
    colour: np.ndarray | None = None,
    contrast: float = 1.0,
) -> np.ndarray:
    """A float32 (height, width, 3) texture in 0..255: blotchy noise plus stripes around ``colour``.

    The noise is coarse (a few pixels per blob) so it survives video compression, mostly light
    and dark with a weaker tint, and the stripes have a random angle and period so textures
    differ in orientation as well as colour.
    """
    if colour is None:
        colour = rng.uniform(40, 215, 3)
    cells = (max(2, height // 6), max(2, width // 6))
    shade = rng.uniform(-1.0, 1.0, (*cells, 1))
    tint = rng.uniform(-1.0, 1.0, (*cells, 1)) * rng.uniform(-1.0, 1.0, 3)
    noise = cv2.resize(
        (shade + 0.4 * tint).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    theta = rng.uniform(0.0, np.pi)
    wavenumber = 2 * math.pi / rng.uniform(4.0, 12.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = xs * (math.cos(theta) * wavenumber) + ys * (math.sin(theta) * wavenumber)
    stripes = np.sin(phase + rng.uniform(0, 2 * np.pi))[..., None]
    stripe_colour = rng.uniform(-1.0, 1.0, 3).astype(np.float32)
    variation = 55.0 * noise + 35.0 * stripes * stripe_colour
    texture = np.asarray(colour, np.float32) + np.float32(contrast) * variation
    return np.clip(texture, 0.0, 255.0).astype(np.float32, copy=False)


def add_distractors(frames: np.ndarray, rng: np.random.Generator, strength: float) -> None:
    """Blend moving, spinning, textured shapes into ``frames`` (T, H, W, 3) in place.

    More and more opaque distractors as ``strength`` grows: 8 at 1, each 68-85% opaque.
    """
    if strength <= 0:
        return
    num_frames, height, width = frames.shape[:3]
    short = min(height, width)
    count = max(1, round(8 * strength))
    steps = np.linspace(0.0, 1.0, num_frames)
    for _ in range(count):
        shape = SHAPES[rng.integers(len(SHAPES))]
        radius = rng.uniform(0.06, 0.18) * short
        start = rng.uniform((radius, radius), (width - radius, height - radius))
        heading = rng.uniform(0, 2 * np.pi)
        travel = rng.uniform(0.2, 0.8) * short
        spin = rng.uniform(-np.pi, np.pi)
        angle0 = rng.uniform(0, 2 * np.pi)
        alpha = (0.25 + 0.6 * strength) * rng.uniform(0.8, 1.0)
        sprite = Sprite.textured(rng, shape_points(shape, (0.0, 0.0), radius), alpha)
        direction = np.array([np.cos(heading), np.sin(heading)])
        for t, step in enumerate(steps):
            sprite.paste(frames[t], start + travel * step * direction, angle0 + spin * step)


def add_occluders(
    frames: np.ndarray,
    rng: np.random.Generator,
    strength: float,
    track: np.ndarray | None = None,
) -> None:
    """Draw opaque textured bars or blobs that cross the frame, in place.

    Each occluder passes over ``track[t]`` (T, 2) at some frame t in the middle half of the
    clip (the actor, in generated videos), or near the frame centre when no track is given.
    Bigger occluders, and more often a second one, as ``strength`` grows.
    """
    if strength <= 0:
        return
    num_frames, height, width = frames.shape[:3]
    short, long = min(height, width), max(height, width)
    count = 1 + int(rng.random() < 0.6 * strength)
    for _ in range(count):
        cross = rng.uniform(0.25, 0.75) * (num_frames - 1)
        if track is not None:
            target = np.asarray(track[round(cross)], np.float64)
        else:
            target = np.array([width, height]) * (0.5 + rng.uniform(-0.2, 0.2, 2))
        heading = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(heading), np.sin(heading)])
        speed = rng.uniform(1.5, 2.5) * long / max(num_frames - 1, 1)
        if rng.random() < 0.5:
            half_length = math.hypot(height, width) + 2
            half_thickness = 0.5 * (0.06 + 0.14 * strength) * short
            corners = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], np.float64)
            outline = corners * (half_length, half_thickness)
            angle = heading + np.pi / 2
        else:
            radius = (0.08 + 0.14 * strength) * short
            thetas = np.linspace(0, 2 * np.pi, 12, endpoint=False)
            radii = radius * rng.uniform(0.75, 1.15, 12)
            outline = np.stack([radii * np.cos(thetas), radii * np.sin(thetas)], axis=1)
            angle = 0.0
        sprite = Sprite.textured(rng, outline, contrast=0.6)
        for t in range(num_frames):
            sprite.paste(frames[t], target + (t - cross) * speed * direction, angle)


def camera_matrices(
    rng: np.random.Generator, num_frames: int, height: int, width: int, strength: float
) -> np.ndarray:
    """Per-frame affine matrices (T, 2, 3) of a camera that pans, zooms and shakes smoothly.

    Each of pan (up to 15% of the short side over the clip, with a slow sway), zoom (in or out
    by up to 25%) and shake (small jitter and roll) is present with probability 0.6, at least
    one. The camera zooms in just enough that panning and shaking stay inside the frame.
    """
    short = min(height, width)
    steps = np.linspace(0.0, 1.0, num_frames)
    use_pan, use_zoom, use_shake = rng.random(3) < 0.6
    if not (use_pan or use_zoom or use_shake):
        use_pan, use_zoom, use_shake = np.arange(3) == rng.integers(3)

    offset = np.zeros((num_frames, 2))
    zoom = np.ones(num_frames)
    roll = np.zeros(num_frames)
    if use_pan:
        heading = rng.uniform(0, 2 * np.pi)
        amplitude = strength * 0.15 * short * rng.uniform(0.5, 1.0)
        offset += np.outer(steps - 0.5, amplitude * np.array([np.cos(heading), np.sin(heading)]))
        sway = strength * 0.02 * short
        cycles = rng.uniform(0.5, 1.5, 2)
        phases = rng.uniform(0, 2 * np.pi, 2)
        offset += sway * np.sin(2 * np.pi * np.outer(steps, cycles) + phases)
    if use_zoom:
        ratio = 1.0 + strength * 0.25 * rng.uniform(0.5, 1.0)
        zoom = ratio ** (steps if rng.random() < 0.5 else 1.0 - steps)
    if use_shake:
        kernel = np.array([0.25, 0.5, 0.25])
        jitter = rng.normal(0.0, strength * 0.015 * short, (num_frames, 2))
        offset += np.stack([np.convolve(jitter[:, i], kernel, mode="same") for i in range(2)], 1)
        roll = np.convolve(rng.normal(0.0, strength * np.deg2rad(1.5), num_frames), kernel, "same")

    half = np.array([width, height]) / 2.0
    margin = float((half / np.maximum(half - np.abs(offset), 1.0)).max())
    zoom = zoom * margin
    cos, sin = np.cos(roll), np.sin(roll)
    matrices = np.empty((num_frames, 2, 3))
    matrices[:, 0, 0], matrices[:, 0, 1] = zoom * cos, -zoom * sin
    matrices[:, 1, 0], matrices[:, 1, 1] = zoom * sin, zoom * cos
    look_at = half + offset
    matrices[:, :, 2] = half - np.einsum("tij,tj->ti", matrices[:, :, :2], look_at)
    return matrices


def move_camera(frames: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """``frames`` (T, H, W, 3) as seen by a moving camera (``camera_matrices``), a new array."""
    if strength <= 0:
        return frames.copy()
    num_frames, height, width = frames.shape[:3]
    matrices = camera_matrices(rng, num_frames, height, width, strength)
    moved = np.empty_like(frames)
    for t in range(num_frames):
        cv2.warpAffine(
            frames[t],
            matrices[t],
            (width, height),
            dst=moved[t],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
    return moved
