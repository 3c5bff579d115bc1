"""The classic baseline the real-data results are compared with, measured on the same folds.

Motion history images (Bobick & Davis, 2001), as in Georgia Tech's CS4495 problem set 7 for which
`gt_cs4495_ps7` was recorded: grey frames, blurred, thresholded frame differences cleaned by a
morphological opening update a motion history image (MHI, the time since a pixel last moved) and
a motion energy image (MEI, where anything moved). Each video becomes the 7 log-scaled Hu moments
of its MHI and of its MEI (14 numbers), standardised on the training fold; a test video takes the
label of its nearest training video. The settings are fixed, not tuned on any test fold.

    python benchmarks/mhi_baseline.py DATA --folds 5 [--group-by REGEX] [--exclude-groups g44,g45]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from resaction.data.manifests import Manifest, read_manifest
from resaction.data.splits import kfold, without_groups
from resaction.io import VideoReader

THRESHOLD = 30  # grey levels (0-255) a pixel must change by to count as moving
BLUR = 5
SHORT_SIDE = 128


def motion_images(frames: np.ndarray, threshold: int = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) uint8 RGB frames -> (MHI in 0..1, MEI in {0, 1}), the MHI decaying over T."""
    grey = [
        cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (BLUR, BLUR), 0).astype(np.int16)
        for frame in frames
    ]
    tau = max(len(grey) - 1, 1)
    kernel = np.ones((3, 3), np.uint8)
    history = np.zeros(grey[0].shape, np.float32)
    for before, after in itertools.pairwise(grey):
        moving = (np.abs(after - before) >= threshold).astype(np.uint8)
        moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, kernel) > 0
        history = np.where(moving, tau, np.maximum(history - 1, 0))
    return history / tau, (history > 0).astype(np.float32)


def hu_features(frames: np.ndarray) -> np.ndarray:
    """The 14 log-scaled Hu moments of a video's MHI and MEI."""
    features = []
    for image in motion_images(frames):
        hu = cv2.HuMoments(cv2.moments(image)).ravel()
        features.append(-np.sign(hu) * np.log10(np.abs(hu) + 1e-30))
    return np.concatenate(features)


def video_features(manifest: Manifest) -> np.ndarray:
    rows = []
    for entry in tqdm(manifest.entries, desc="MHI features", leave=False, disable=None):
        with VideoReader(entry.path, short_side=SHORT_SIDE) as reader:
            frames = reader.get_frames(list(range(reader.num_frames))).numpy()
        rows.append(hu_features(frames))
    return np.stack(rows)


def nearest_neighbour(train: np.ndarray, labels: np.ndarray, test: np.ndarray) -> np.ndarray:
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-9
    a, b = (train - mean) / std, (test - mean) / std
    distances = ((b[:, None, :] - a[None, :, :]) ** 2).sum(axis=-1)
    return labels[distances.argmin(axis=1)]


def crossval_mhi(
    data: str | Path,
    folds: int,
    group_by: str | None = None,
    exclude_groups: tuple[str, ...] = (),
    seed: int = 0,
) -> dict:
    """Video-level top-1 per fold on the folds ``resaction crossval`` makes with the same
    arguments (same manifest, groups, exclusions and seed)."""
    manifest = without_groups(read_manifest(data), group_by, exclude_groups)
    features = video_features(manifest)
    row_of = {str(entry.path): row for row, entry in enumerate(manifest.entries)}
    labels = np.asarray(manifest.labels)
    accuracies = []
    for train, test in kfold(manifest, folds, group_by=group_by, seed=seed):
        a = np.array([row_of[str(e.path)] for e in train.entries])
        b = np.array([row_of[str(e.path)] for e in test.entries])
        predicted = nearest_neighbour(features[a], labels[a], features[b])
        accuracies.append(float((predicted == labels[b]).mean()))
    return {
        "method": "MHI + MEI Hu moments, 1-nearest neighbour",
        "videos": len(manifest),
        "top1_folds": accuracies,
        "top1_mean": float(np.mean(accuracies)),
        "top1_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--group-by")
    parser.add_argument("--exclude-groups", default="")
    args = parser.parse_args()
    exclude = tuple(g for g in args.exclude_groups.split(",") if g)
    print(json.dumps(crossval_mhi(args.data, args.folds, args.group_by, exclude), indent=2))


if __name__ == "__main__":
    main()
