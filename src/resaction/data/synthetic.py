"""A seeded generator of labelled action videos: shapes whose class is their motion over time.

A video shows one solid shape (the actor, with a dot on it so turning shows) that moves right,
left, down or up, turns clockwise or anticlockwise, grows or shrinks, bounces, or stays still.
Each class in ``REVERSED_PAIRS`` is literally the frames of its partner in reverse order, so a
model that ignores frame order cannot beat chance on those pairs: they test temporal modelling.
Shape, colour, size, speed, start position and easing vary per video.

Three knobs in [0, 1] add the classic difficulties with the effects of ``data/stress.py``:
``clutter`` (textured background and moving distractor shapes), ``camera_motion`` (pan, zoom,
shake of the whole frame) and ``occlusion`` (bars or blobs crossing the actor). A knob is both
the probability that a video gets the difficulty and its strength when it does.

The actor of video ``i`` depends only on the seed, its motion and ``i``, not on the knobs, so
the same seed at different knob settings shows the same actions under different conditions.
The generator also knows where it drew the actor: ``render_scene`` gives its box on every frame
(and how much of it an occluder hides), and ``generate_dataset`` writes them beside each video
(``data/synthetic_actor.py``: the format, ``read_boxes`` and ``read_occluded``).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resaction import __version__
from resaction.data.manifests import GROUPS_FILE
from resaction.data.stress import (
    add_distractors,
    add_occluders,
    camera_matrices,
    move_camera,
    random_colour,
    random_texture,
)
from resaction.data.synthetic_actor import (
    BOXES_SUFFIX,
    actor_boxes,
    actor_polygons,
    draw_actor,
    make_actor,
    occluded_fractions,
    write_boxes,
)
from resaction.data.synthetic_actor import read_boxes as read_boxes
from resaction.data.synthetic_actor import read_occluded as read_occluded
from resaction.errors import ConfigError
from resaction.io.writer import VideoWriter
from resaction.progress import progress_bar

_REVERSE_OF = {
    "move_left": "move_right",
    "move_up": "move_down",
    "rotate_anticlockwise": "rotate_clockwise",
    "shrink": "grow",
}
REVERSED_PAIRS: list[tuple[str, str]] = [
    (forward, backward) for backward, forward in _REVERSE_OF.items()
]
"""(class, the class that is its frames reversed)."""

SYNTHETIC_CLASSES: list[str] = sorted(
    [*(name for pair in REVERSED_PAIRS for name in pair), "bounce", "still"]
)
"""All class names, in label order (sorted)."""

MANIFEST_FILE = "manifest.csv"
CONFIG_FILE = "synth.json"
MIN_SIZE = 32
MIN_FRAMES = 2
VIDEO_CRF = 20
# "veryfast" halves encoding time against x264's default with the same size and quality on these
# videos (measured). Its macroblock-tree rate control gives different bytes from run to run at
# widths such as 112 or 320 (128 and 256 were stable); without it the output is reproducible.
_X264_PRESET = "veryfast"
_REPRODUCIBLE_X264 = {"x264-params": "no-mbtree=1"}


@dataclass(frozen=True)
class SynthOptions:
    """Everything that decides the generated videos; saved as ``synth.json``."""

    videos_per_class: int
    clutter: float
    camera_motion: float
    occlusion: float
    seed: int
    size: tuple[int, int]
    num_frames: int
    fps: float
    classes: tuple[str, ...]


@dataclass(frozen=True)
class SyntheticVideo:
    """One generated video: ``frames`` uint8 (T, H, W, 3), the actor's ``boxes`` int64 (T, 4)
    as x0, y0, x1, y1 pixels with exclusive ends, and the ``occluded`` share of it (T,)."""

    frames: np.ndarray
    boxes: np.ndarray
    occluded: np.ndarray


def render_video(cls: str, rng: np.random.Generator, **options: Any) -> np.ndarray:
    """Draw one video of class ``cls``: uint8 frames (T, H, W, 3), RGB; ``options`` are
    ``render_scene``'s (``size``, ``num_frames``, ``clutter``, ``camera_motion``, ``occlusion``).

    ``size`` is (height, width) or one side. The same ``rng`` state gives byte-identical
    frames, and the reversed class of a pair gives exactly the same frames in reverse order.
    """
    return render_scene(cls, rng, **options).frames


def render_scene(
    cls: str,
    rng: np.random.Generator,
    *,
    size: int | tuple[int, int] = (112, 112),
    num_frames: int = 32,
    clutter: float = 0.0,
    camera_motion: float = 0.0,
    occlusion: float = 0.0,
) -> SyntheticVideo:
    """``render_video``'s frames (the same ones) with the actor's box on every frame.

    The boxes are a by-product: working them out draws nothing from ``rng``.
    """
    check_classes([cls])
    height, width = _as_size(size)
    _check_frames(num_frames)
    _check_unit("clutter", clutter)
    _check_unit("camera motion", camera_motion)
    _check_unit("occlusion", occlusion)

    motion = _REVERSE_OF.get(cls, cls)
    actor_rng, scene_rng, clutter_rng, occlusion_rng, camera_rng = (
        np.random.default_rng(seed) for seed in rng.integers(0, 2**63, size=5)
    )
    actor = make_actor(motion, actor_rng, num_frames, height, width)
    background = _gradient(scene_rng, height, width)
    cluttered = clutter_rng.random() < clutter
    if cluttered:
        grey = np.full(3, 128.0, np.float32)
        texture = random_texture(clutter_rng, height, width, grey, contrast=clutter)
        background = np.clip(background + texture - grey, 0, 255)
    frames = np.repeat((background + 0.5).astype(np.uint8)[None], num_frames, axis=0)
    if cluttered:
        add_distractors(frames, clutter_rng, clutter)
    polygons = actor_polygons(actor)
    draw_actor(frames, actor, polygons)
    occluded = np.zeros(num_frames)
    if occlusion_rng.random() < occlusion:
        before = frames.copy()
        add_occluders(frames, occlusion_rng, occlusion, track=actor.centers)
        occluded = occluded_fractions([outline for outline, _ in polygons], before, frames)
    matrices = None
    if camera_rng.random() < camera_motion:
        # move_camera draws its path first: a copy of its generator gives the same matrices.
        matrices = camera_matrices(
            copy.deepcopy(camera_rng), num_frames, height, width, camera_motion
        )
        frames = move_camera(frames, camera_rng, camera_motion)
    boxes = actor_boxes(polygons, height, width, matrices)
    if motion != cls:
        frames, boxes, occluded = (np.ascontiguousarray(a[::-1]) for a in (frames, boxes, occluded))
    return SyntheticVideo(frames, boxes, occluded)


def generate_dataset(
    out_dir: str | os.PathLike[str],
    videos_per_class: int,
    *,
    clutter: float = 0.0,
    camera_motion: float = 0.0,
    occlusion: float = 0.0,
    seed: int = 0,
    size: int | tuple[int, int] = (112, 112),
    num_frames: int = 32,
    fps: float = 15,
    classes: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic dataset into ``out_dir`` and return its manifest CSV.

    Videos are H.264 MP4s in class folders (``<class>/<class>_0007.mp4``). ``manifest.csv``
    has ``path,label,group`` rows (paths relative to it, labels as class names) and
    ``groups.csv`` gives the same groups to the class-folder reader. Both videos of a reversed
    pair share a group, so a group-aware split never puts a video in training and its reverse
    in test. ``synth.json`` records the options. Beside each video, ``<name>.boxes.json`` holds
    the actor's box on every frame (``read_boxes``). ``out_dir`` must be new or empty, or hold
    an earlier synthetic dataset and ``overwrite`` be set.
    """
    options = _validated_options(
        videos_per_class, clutter, camera_motion, occlusion, seed, size, num_frames, fps, classes
    )
    out = Path(out_dir).expanduser()
    _prepare_output(out, overwrite)
    _write_atomically(out / CONFIG_FILE, json.dumps(_config_record(options), indent=2) + "\n")

    digits = max(4, len(str(options.videos_per_class - 1)))
    rows: list[tuple[str, str, str]] = []
    with progress_bar(
        total=options.videos_per_class * len(options.classes),
        desc="generating videos",
        unit="video",
        disable=not progress,
    ) as bar:
        for motion, members in _motion_plan(options.classes):
            pair_name = "+".join(sorted({motion, *_reversals(motion)}))
            for index in range(options.videos_per_class):
                scene = render_scene(
                    motion,
                    _video_rng(options.seed, motion, index),
                    size=options.size,
                    num_frames=options.num_frames,
                    clutter=options.clutter,
                    camera_motion=options.camera_motion,
                    occlusion=options.occlusion,
                )
                group = f"{pair_name}-{index:0{digits}d}"
                for cls in members:
                    relative = f"{cls}/{cls}_{index:0{digits}d}.mp4"
                    order = slice(None) if cls == motion else slice(None, None, -1)
                    with VideoWriter(
                        out / relative,
                        options.fps,
                        crf=VIDEO_CRF,
                        preset=_X264_PRESET,
                        threads=1,
                        options=_REPRODUCIBLE_X264,
                    ) as writer:
                        writer.write_many(scene.frames[order])
                    write_boxes(
                        out / relative, scene.boxes[order], scene.occluded[order], options.size
                    )
                    rows.append((relative, cls, group))
                    bar.update()
    rows.sort()
    _write_csv(out / GROUPS_FILE, ["file", "class", "group"], rows)
    return _write_csv(out / MANIFEST_FILE, ["path", "label", "group"], rows)


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """The requested class names without repeats; ``ConfigError`` for unknown or none."""
    unknown = [name for name in classes if name not in SYNTHETIC_CLASSES]
    if unknown:
        raise ConfigError(
            f"unknown synthetic class {unknown[0]!r}: choose from {', '.join(SYNTHETIC_CLASSES)}"
        )
    unique = tuple(dict.fromkeys(classes))
    if not unique:
        raise ConfigError(f"no synthetic classes given: choose from {', '.join(SYNTHETIC_CLASSES)}")
    return unique


def _reversals(motion: str) -> list[str]:
    return [backward for backward, forward in _REVERSE_OF.items() if forward == motion]


def _motion_plan(classes: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Which forward motions to render, each with the requested classes made from it."""
    plan: dict[str, list[str]] = {}
    for cls in classes:
        plan.setdefault(_REVERSE_OF.get(cls, cls), []).append(cls)
    return list(plan.items())


def _video_rng(seed: int, motion: str, index: int) -> np.random.Generator:
    """A generator for video ``index`` of ``motion`` that no other choice (classes, count) moves."""
    return np.random.default_rng([seed, zlib.crc32(motion.encode()), index])


def _gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A dim, low-saturation two-colour gradient (float32 H x W x 3) so camera motion shows."""
    first, second = (random_colour(rng, (0.0, 0.4), (0.05, 0.45)) for _ in range(2))
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = xs / max(width - 1, 1) * np.cos(theta) + ys / max(height - 1, 1) * np.sin(theta)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    return first + (second - first) * ramp[..., None]


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if min(height, width) < MIN_SIZE:
        raise ConfigError(f"--size {height}x{width} is too small: use {MIN_SIZE} or more")
    return int(height), int(width)


def _even(size: tuple[int, int]) -> tuple[int, int]:
    """A written video's size: H.264 in yuv420p needs even sides (the writer would pad an odd
    one, and the boxes and ``synth.json`` would not say so)."""
    if size[0] % 2 or size[1] % 2:
        raise ConfigError(f"--size {size[0]}x{size[1]}: give even sides (H.264 needs them)")
    return size


def _check_frames(num_frames: int) -> None:
    if num_frames < MIN_FRAMES:
        raise ConfigError(f"--frames {num_frames}: synthetic videos need {MIN_FRAMES} or more")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"--{name.replace(' ', '-')} must be between 0 and 1, got {value}")


def _validated_options(
    videos_per_class: int,
    clutter: float,
    camera_motion: float,
    occlusion: float,
    seed: int,
    size: int | tuple[int, int],
    num_frames: int,
    fps: float,
    classes: Sequence[str] | None,
) -> SynthOptions:
    if videos_per_class < 1:
        raise ConfigError(f"--videos-per-class must be at least 1, got {videos_per_class}")
    if not fps > 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    _check_unit("clutter", clutter)
    _check_unit("camera motion", camera_motion)
    _check_unit("occlusion", occlusion)
    _check_frames(num_frames)
    return SynthOptions(
        videos_per_class=int(videos_per_class),
        clutter=float(clutter),
        camera_motion=float(camera_motion),
        occlusion=float(occlusion),
        seed=int(seed),
        size=_even(_as_size(size)),
        num_frames=int(num_frames),
        fps=float(fps),
        classes=check_classes(SYNTHETIC_CLASSES if classes is None else list(classes)),
    )


def _config_record(options: SynthOptions) -> dict[str, object]:
    record = asdict(options)
    record["size"] = list(options.size)
    record["classes"] = list(options.classes)
    return {"generator": "resaction.data.synthetic", "version": __version__, **record}


def _prepare_output(out: Path, overwrite: bool) -> None:
    """Make sure ``out`` is a writable folder that holds nothing we might mix with."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file: give a folder path")
    if out.is_dir() and any(out.iterdir()):
        if not (out / CONFIG_FILE).is_file():
            raise ConfigError(
                f"output folder {out} is not empty and holds no synthetic dataset: "
                "choose a new or empty folder"
            )
        if not overwrite:
            raise ConfigError(
                f"output folder {out} already holds a synthetic dataset: choose another folder "
                "or replace it with --overwrite"
            )
        _remove_previous(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise ConfigError(
            f"cannot write to output folder {out}: {error.strerror or error}; "
            "choose a writable folder"
        ) from error


def _remove_previous(out: Path) -> None:
    """Delete the files an earlier run wrote (and only those), finished or interrupted."""
    for cls in SYNTHETIC_CLASSES:
        folder = out / cls
        if not folder.is_dir():
            continue
        name = rf"{re.escape(cls)}_\d+(?:\.mp4|{re.escape(BOXES_SUFFIX)})"
        ours = re.compile(rf"{name}|\.{name}(?:\.\w+)?\.partial")
        for file in folder.iterdir():
            if file.is_file() and ours.fullmatch(file.name):
                file.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()
    for name in (MANIFEST_FILE, GROUPS_FILE, CONFIG_FILE):
        (out / name).unlink(missing_ok=True)


def _write_csv(path: Path, header: list[str], rows: list[tuple[str, str, str]]) -> Path:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return _write_atomically(path, text.getvalue())


def _write_atomically(path: Path, text: str) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path
