"""The classic baselines the real-data results are compared with, measured on the same folds.

``--method mhi`` (the baseline of the results table): motion history images (Bobick & Davis, 2001),
as in Georgia Tech's CS4495 problem set 7 for which `gt_cs4495_ps7` was recorded: grey frames,
blurred, thresholded frame differences cleaned by a morphological opening update a motion history
image (MHI, the time since a pixel last moved) and a motion energy image (MEI, where anything
moved). Each video becomes the 7 log-scaled Hu moments of its MHI and of its MEI (14 numbers),
standardised on the training fold; a test video takes the label of its nearest training video.

``--method energy``: how much moves, and nothing of where or how. From the same grey, blurred
frames, per frame the mean absolute difference to the previous frame and the share of pixels that
changed by at least the MHI's threshold; each video becomes the mean, 90th percentile and standard
deviation over time of both (6 numbers, log-scaled, standardised on the training fold), classified
by an L2-regularised multinomial logistic regression. A network that sees frame differences could
learn just this; where it scores no higher, that is what it learned.

``--method vif``: Violent Flows (Hassner, Itcher & Kliper-Gross, 2012), the classic descriptor
for violence in crowds and fights. Dense optical flow (Farneback) between consecutive grey
frames; per pixel, whether the flow magnitude changed from one pair to the next by at least that
frame's mean change; the share of time each pixel did (the mean magnitude-change map), cut into
4 x 4 cells, each cell a 20-bin histogram of its values (320 numbers, standardised on the
training fold), classified by the same logistic regression as ``energy`` (the paper uses a
linear SVM). Where the energy statistics say how much moves, this says where motion changes
erratically, which is what a fight looks like from a fixed camera.

The settings are fixed, not tuned on any test fold.

    python benchmarks/mhi_baseline.py DATA --folds 5 [--group-by REGEX] [--exclude-groups g44,g45]
        [--method mhi|energy|vif]
"""

from __future__ import annotations

import argparse
import itertools
import json
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from resaction.data.manifests import Manifest, read_manifest
from resaction.data.splits import entry_groups, kfold, without_groups
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


def energy_features(frames: np.ndarray, threshold: int = THRESHOLD) -> np.ndarray:
    """The 6 log-scaled motion-energy statistics of a video (see the module doc)."""
    grey = np.stack(
        [cv2.GaussianBlur(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (BLUR, BLUR), 0) for f in frames]
    ).astype(np.int16)
    change = np.abs(np.diff(grey, axis=0))
    series = (change.mean(axis=(1, 2)), (change >= threshold).mean(axis=(1, 2)))
    stats = [f(x) for x in series for f in (np.mean, partial(np.percentile, q=90), np.std)]
    return np.log(np.asarray(stats, dtype=np.float64) + 1e-4)


VIF_CELLS = 4
VIF_BINS = 20


def vif_features(frames: np.ndarray) -> np.ndarray:
    """The 320-number Violent Flows descriptor of a video (see the module doc)."""
    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    magnitudes = []
    for before, after in itertools.pairwise(grey):
        flow = cv2.calcOpticalFlowFarneback(before, after, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        magnitudes.append(np.hypot(flow[..., 0], flow[..., 1]))
    change = np.abs(np.diff(np.stack(magnitudes), axis=0))
    erratic = (change >= change.mean(axis=(1, 2), keepdims=True)).mean(axis=0)
    rows = np.array_split(erratic, VIF_CELLS, axis=0)
    cells = [cell for row in rows for cell in np.array_split(row, VIF_CELLS, axis=1)]
    histograms = [np.histogram(cell, VIF_BINS, (0.0, 1.0))[0] / cell.size for cell in cells]
    return np.concatenate(histograms)


FEATURES = {"mhi": hu_features, "energy": energy_features, "vif": vif_features}


def video_features(manifest: Manifest, method: str) -> np.ndarray:
    rows = []
    for entry in tqdm(manifest.entries, desc=f"{method} features", leave=False, disable=None):
        with VideoReader(entry.path, short_side=SHORT_SIDE) as reader:
            frames = reader.get_frames(list(range(reader.num_frames))).numpy()
        rows.append(FEATURES[method](frames))
    return np.stack(rows)


def _standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-9
    return (train - mean) / std, (test - mean) / std


def nearest_neighbour(train: np.ndarray, labels: np.ndarray, test: np.ndarray) -> np.ndarray:
    """One-hot scores of ``test``: the label of its nearest training video."""
    a, b = _standardised(train, test)
    distances = ((b[:, None, :] - a[None, :, :]) ** 2).sum(axis=-1)
    return np.eye(int(labels.max()) + 1)[labels[distances.argmin(axis=1)]]


def logistic_regression(
    train: np.ndarray, labels: np.ndarray, test: np.ndarray, l2: float = 1e-2, steps: int = 3000
) -> np.ndarray:
    """Multinomial logistic regression by full-batch gradient descent (lr 0.1) on standardised
    features; the class probabilities of ``test``."""
    a, b = _standardised(train, test)
    classes = int(labels.max()) + 1
    onehot = np.eye(classes)[labels]
    weights, bias = np.zeros((a.shape[1], classes)), np.zeros(classes)
    for _ in range(steps):
        error = _softmax(a @ weights + bias) - onehot
        weights -= 0.1 * (a.T @ error / len(a) + l2 * weights)
        bias -= 0.1 * error.mean(axis=0)
    return _softmax(b @ weights + bias)


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


CLASSIFIERS = {"mhi": nearest_neighbour, "energy": logistic_regression, "vif": logistic_regression}
METHODS = {
    "mhi": "MHI + MEI Hu moments, 1-nearest neighbour",
    "energy": "motion energy statistics, logistic regression",
    "vif": "Violent Flows descriptor, logistic regression",
}


def crossval_baseline(
    data: str | Path,
    folds: int,
    group_by: str | None = None,
    exclude_groups: tuple[str, ...] = (),
    seed: int = 0,
    method: str = "mhi",
) -> dict:
    """Video-level top-1 per fold on the folds ``resaction crossval`` makes with the same
    arguments (same manifest, groups, exclusions and seed), and under ``scores`` each fold's test
    videos (paths relative to ``data``), groups, labels and class scores."""
    manifest = without_groups(read_manifest(data), group_by, exclude_groups)
    features = video_features(manifest, method)
    row_of = {str(entry.path): row for row, entry in enumerate(manifest.entries)}
    labels = np.asarray(manifest.labels)
    accuracies, scores = [], []
    for fold, (train, test) in enumerate(kfold(manifest, folds, group_by=group_by, seed=seed)):
        a = np.array([row_of[str(e.path)] for e in train.entries])
        b = np.array([row_of[str(e.path)] for e in test.entries])
        probs = CLASSIFIERS[method](features[a], labels[a], features[b])
        accuracies.append(float((probs.argmax(axis=1) == labels[b]).mean()))
        scores.append(
            {
                "fold": fold + 1,
                "videos": [Path(e.path).relative_to(data).as_posix() for e in test.entries],
                "groups": entry_groups(test, group_by) or [""] * len(test),
                "labels": labels[b].tolist(),
                "probs": probs.tolist(),
            }
        )
    return {
        "method": METHODS[method],
        "videos": len(manifest),
        "top1_folds": accuracies,
        "top1_mean": float(np.mean(accuracies)),
        "top1_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
        "classes": list(manifest.classes),
        "scores": scores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--group-by")
    parser.add_argument("--exclude-groups", default="")
    parser.add_argument("--method", default="mhi", choices=sorted(METHODS))
    args = parser.parse_args()
    exclude = tuple(g for g in args.exclude_groups.split(",") if g)
    result = crossval_baseline(args.data, args.folds, args.group_by, exclude, method=args.method)
    print(json.dumps({k: v for k, v in result.items() if k != "scores"}, indent=2))


if __name__ == "__main__":
    main()
