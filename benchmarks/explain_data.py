"""The measures of benchmarks/explain.py: saliency against the actor's box, deletion curves, and
the share of saliency on a picture's borders and caption strips.

Everything works in model input space, where ``explain_video`` gives its map (T, H, W): an actor
box (source pixels, ``resaction.data.synthetic_actor``) is carried there through the clip's
source frame indices and the crop's place in the picture (``ExplainClip.box``).

- Pointing game: on each frame whose box is not empty, a hit when the map's peak lies in the
  box. The peak is the centroid of the pixels at the frame's maximum (an occlusion patch is a
  plateau; its centre, not its corner); a frame whose map is all zeros is a miss (``empty``).
- Mass in box: the map's sum inside the boxes over its sum, over the whole clip; a map spread
  evenly scores the boxes' share of the frame (``box_area``), the chance level.
- Centre prior: a Gaussian centred in the frame, sigma a quarter of each side, the same on
  every frame: what "look at the middle" scores.
- Deletion: the clip's space-time patches hidden (set to the normalisation mean, as occlusion
  does) most salient first, in ``steps`` equal steps, the target's probability after each; the
  area under that curve (x from 0 to 1) against the same with the patches in random order.
  Lower is more faithful: the map found what the score needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resaction.data.synthetic_actor import read_boxes
from resaction.explain import ExplainClip, explain_video
from resaction.inference import Predictor

Scorer = Callable[[torch.Tensor], np.ndarray]
Patch = tuple[slice, slice, slice]

CENTRE_SIGMA = 0.25
"""Sigma of the centre prior as a fraction of the frame's height and width."""
BORDER = 0.10
"""The border band: the outer 10% of the picture on each side."""
OVERLAY = 0.08
"""The top and bottom strips where timestamps and captions usually sit (8% of the height)."""
REGIONS = ("border", "top_strip", "bottom_strip")


def input_boxes(
    boxes: np.ndarray, clip: ExplainClip, source_size: tuple[int, int], input_size: tuple[int, int]
) -> np.ndarray:
    """The actor boxes of the clip's frames (T, 4: x0, y0, x1, y1, ends exclusive) in model
    input pixels, from ``boxes`` (one per source frame) of a picture of ``source_size`` (H, W)."""
    top, left, bottom, right = clip.box
    (height, width), (rows, columns) = source_size, input_size
    chosen = boxes[np.asarray(clip.indices)].astype(np.float64)
    x = (chosen[:, [0, 2]] / width - left) / (right - left) * columns
    y = (chosen[:, [1, 3]] / height - top) / (bottom - top) * rows
    mapped = np.stack([np.floor(x[:, 0]), np.floor(y[:, 0]), np.ceil(x[:, 1]), np.ceil(y[:, 1])], 1)
    mapped[:, [0, 2]] = mapped[:, [0, 2]].clip(0, columns)
    mapped[:, [1, 3]] = mapped[:, [1, 3]].clip(0, rows)
    return mapped.astype(np.int64)


def box_masks(boxes: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Boolean (T, H, W): inside each frame's box."""
    masks = np.zeros(shape, bool)
    for t, (x0, y0, x1, y1) in enumerate(boxes):
        masks[t, y0:y1, x0:x1] = True
    return masks


def peaks(saliency: np.ndarray) -> np.ndarray:
    """(T, 2) row, column of each frame's peak (centroid of its maximum); NaN where all zero."""
    found = np.full((len(saliency), 2), np.nan)
    for t, frame in enumerate(saliency):
        top = float(frame.max())
        if top > 0:
            rows, columns = np.nonzero(frame >= top - 1e-6 * top)
            found[t] = rows.mean(), columns.mean()
    return found


def box_measures(saliency: np.ndarray, boxes: np.ndarray) -> dict[str, float | int]:
    """Pointing game counts and mass in box of one map (T, H, W) against boxes (T, 4)."""
    masks = box_masks(boxes, saliency.shape)
    visible = masks.any(axis=(1, 2))
    points = peaks(saliency)
    hits = 0
    for t in np.flatnonzero(visible):
        row, column = points[t]
        if np.isfinite(row):
            hits += bool(masks[t, int(row), int(column)])
    total = float(saliency.sum())
    return {
        "hits": int(hits),
        "frames": int(visible.sum()),
        "empty": int((~np.isfinite(points[visible, 0])).sum()),
        "mass": float(saliency[masks].sum()) / total if total > 0 else float("nan"),
    }


def box_area(boxes: np.ndarray, shape: tuple[int, int, int]) -> float:
    """The boxes' share of the clip's pixels: the mass a uniform map would put in them."""
    return float(box_masks(boxes, shape).mean())


def centre_prior(shape: tuple[int, int, int]) -> np.ndarray:
    """A Gaussian (T, H, W) centred in every frame, sigma ``CENTRE_SIGMA`` of each side."""
    frames, height, width = shape
    ys = (np.arange(height) + 0.5 - height / 2) / (CENTRE_SIGMA * height)
    xs = (np.arange(width) + 0.5 - width / 2) / (CENTRE_SIGMA * width)
    plane = np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))
    return np.repeat((plane / plane.max())[None], frames, axis=0).astype(np.float32)


def patches(shape: tuple[int, int, int], patch: int, patch_frames: int) -> list[Patch]:
    """The clip's space-time patches, tiling it without overlap (as occlusion does)."""
    frames, height, width = shape

    def cuts(length: int, size: int) -> list[slice]:
        return [slice(start, min(start + size, length)) for start in range(0, length, size)]

    return [
        (t, y, x)
        for t in cuts(frames, patch_frames)
        for y in cuts(height, patch)
        for x in cuts(width, patch)
    ]


def salient_order(saliency: np.ndarray, tiles: list[Patch], rng: np.random.Generator) -> list[int]:
    """Patch indices by mean saliency, highest first; ties (zeros, mostly) in random order."""
    means = np.array([float(saliency[t, y, x].mean()) for t, y, x in tiles])
    return np.lexsort((rng.random(len(tiles)), -means)).tolist()


def deletion_curve(
    score: Scorer,
    inputs: torch.Tensor,
    target: int,
    tiles: list[Patch],
    order: list[int],
    steps: int,
    batch_size: int = 16,
) -> np.ndarray:
    """The target's probability (steps + 1,) as the patches are hidden in ``order``: none, then
    1/steps of them, ..., then all."""
    counts = np.round(np.linspace(0, len(tiles), steps + 1)).astype(int)
    clips = []
    for count in counts:
        clip = inputs.clone()
        for index in order[:count]:
            t, y, x = tiles[index]
            clip[:, t, y, x] = 0.0
        clips.append(clip)
    scores = [
        np.asarray(score(torch.stack(clips[start : start + batch_size])))[:, target]
        for start in range(0, len(clips), batch_size)
    ]
    return np.concatenate(scores).astype(np.float64)


def area_under(curve: np.ndarray) -> float:
    """The area under a curve sampled evenly on [0, 1] (trapezoids)."""
    return float(np.trapezoid(curve, dx=1.0 / max(len(curve) - 1, 1)))


def region_masks(clip: ExplainClip, input_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean (H, W) masks of the model input over the picture's border band (outer ``BORDER``
    on every side) and its top and bottom ``OVERLAY`` strips; input pixels past the picture's
    edges (padding) count as border."""
    top, left, bottom, right = clip.box
    rows, columns = input_size
    ys = top + (np.arange(rows) + 0.5) / rows * (bottom - top)
    xs = left + (np.arange(columns) + 0.5) / columns * (right - left)
    y, x = ys[:, None], xs[None, :]
    border = (x < BORDER) | (x > 1 - BORDER) | (y < BORDER) | (y > 1 - BORDER)
    return {
        "border": border,
        "top_strip": np.broadcast_to(y < OVERLAY, (rows, columns)),
        "bottom_strip": np.broadcast_to(y > 1 - OVERLAY, (rows, columns)),
    }


def region_shares(saliency: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Each region's share of the map's mass over the clip (NaN for an all-zero map)."""
    total = float(saliency.sum())
    per_pixel = saliency.sum(axis=0)
    return {
        name: float(per_pixel[mask].sum()) / total if total > 0 else float("nan")
        for name, mask in masks.items()
    }


def region_areas(masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Each region's share of the model input: what a map spread evenly would give it."""
    return {name: float(mask.mean()) for name, mask in masks.items()}


def nanmean(values: list[float]) -> float | None:
    """The mean of the finite values, None when there are none (JSON-friendly)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def synthetic_record(
    trained: Predictor,
    untrained: Predictor,
    video: Path,
    label: str,
    method: str,
    *,
    size: tuple[int, int],
    patch: int,
    steps: int,
    slabs: int,
    seed: int,
) -> dict[str, Any]:
    """One held-out video explained for its true class by the trained and the untrained model,
    with the centre prior and the trained model's deletion curves."""
    frames = trained.clip_len
    options = {"target": label, "method": method, "patch": patch}
    options["patch_frames"] = max(1, frames // slabs)
    started = time.perf_counter()
    found = explain_video(trained, video, **options)
    explained = time.perf_counter()
    blank = explain_video(untrained, video, **options)
    blank_s = time.perf_counter() - explained
    shape = found.saliency.shape
    boxes = input_boxes(read_boxes(video), found.clip, size, shape[1:])
    rng = np.random.default_rng(seed)
    tiles = patches(shape, patch, options["patch_frames"])
    orders = {"salient": salient_order(found.saliency, tiles, rng)}
    orders["random"] = rng.permutation(len(tiles)).tolist()
    deleting = time.perf_counter()
    curves = {
        name: deletion_curve(
            trained.predict_clips, found.clip.inputs, found.target_index, tiles, order, steps
        )
        for name, order in orders.items()
    }
    return {
        "label": label,
        "top": found.top,
        "probability": found.probability,
        "box_area": box_area(boxes, shape),
        "trained": box_measures(found.saliency, boxes),
        "untrained": box_measures(blank.saliency, boxes),
        "centre": box_measures(centre_prior(shape), boxes),
        "deletion": {name: [round(v, 5) for v in curve] for name, curve in curves.items()},
        "deletion_auc": {name: area_under(curve) for name, curve in curves.items()},
        "seconds": {
            "trained": explained - started,
            "untrained": blank_s,
            "deletion": time.perf_counter() - deleting,
        },
    }


def fight_record(predictor: Predictor, video: Path, method: str, slabs: int) -> dict[str, Any]:
    """One fight video explained for the class the model predicted: region shares and areas."""
    started = time.perf_counter()
    options = {"method": method, "patch_frames": max(1, predictor.clip_len // slabs)}
    found = explain_video(predictor, video, **options)
    masks = region_masks(found.clip, found.saliency.shape[1:])
    return {
        "top": found.top,
        "probability": found.probability,
        "shares": region_shares(found.saliency, masks),
        "areas": region_areas(masks),
        "seconds": time.perf_counter() - started,
    }


def summarise_synthetic(model: str, method: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the videos of one (model, method): pointing game (each video's share of hit
    frames), mass in box, deletion areas, accuracy and time."""

    def pointing(source: str) -> float | None:
        return nanmean([_ratio(r[source]["hits"], r[source]["frames"]) for r in records])

    def mean(values: list[float]) -> float | None:
        return nanmean(list(values))

    sources = ("trained", "untrained", "centre")
    row: dict[str, Any] = {
        "model": model,
        "method": method,
        "videos": len(records),
        "frames": int(sum(r["trained"]["frames"] for r in records)),
        "top1": mean([float(r["top"] == r["label"]) for r in records]),
        "pointing": {source: pointing(source) for source in sources},
        "mass_in_box": {source: mean([r[source]["mass"] for r in records]) for source in sources},
        "box_area": mean([r["box_area"] for r in records]),
        "empty_frames": {
            source: int(sum(r[source]["empty"] for r in records)) for source in sources[:2]
        },
        "deletion_auc": {
            order: mean([r["deletion_auc"][order] for r in records])
            for order in ("salient", "random")
        },
        "deletion_wins": mean(
            [float(r["deletion_auc"]["salient"] < r["deletion_auc"]["random"]) for r in records]
        ),
        "seconds": {
            part: mean([r["seconds"][part] for r in records])
            for part in ("trained", "untrained", "deletion")
        },
    }
    trained, centre = row["pointing"]["trained"], row["pointing"]["centre"]
    both = trained is not None and centre is not None
    row["pointing_vs_centre_points"] = 100 * (trained - centre) if both else None
    return row


def summarise_fight(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean region shares (and areas, the even-spread level) per group, held out and overall."""

    def summary(name: str, chosen: list[dict[str, Any]]) -> dict[str, Any]:
        labels = sorted({r["label"] for r in chosen})
        tops = sorted({r["top"] for r in chosen})
        return {
            "group": name,
            "classes": ",".join(labels),
            "videos": len(chosen),
            "held_out": sum(bool(r["held_out"]) for r in chosen),
            "predicted": {top: sum(r["top"] == top for r in chosen) for top in tops},
            "shares": {k: nanmean([r["shares"][k] for r in chosen]) for k in REGIONS},
            "areas": {k: nanmean([r["areas"][k] for r in chosen]) for k in REGIONS},
            "seconds": nanmean([r["seconds"] for r in chosen]),
        }

    groups = sorted({r["group"] for r in records})
    rows = [summary(g, [r for r in records if r["group"] == g]) for g in groups]
    held = [r for r in records if r["held_out"]]
    overall = [summary("all", records)] + ([summary("held out", held)] if held else [])
    return {"overall": overall, "groups": rows}


def _ratio(hits: int, frames: int) -> float:
    return hits / frames if frames else float("nan")
