"""Two-stream rows for ``benchmarks/real_data.py``: late fusion of two finished cross-validations.

Both runs used the same folds (same data, seed and split), and each fold's test videos were
scored by each run (``fold_k/eval/scores.npz``: per video, the mean softmax over its test
views). The fused score of a video is the weighted sum of the two, which is what a checkpoint
written by ``resaction fuse`` computes (its softmax is the weighted sum of the parts' softmaxes);
here each part sees its own test views, where the fused checkpoint gives the one-frame part the
middle frame of each of the other part's segments.

Two weightings, each a row:

- ``equal``: 0.5 and 0.5, nothing chosen;
- ``chosen``: for fold k, ``engine.fusion.choose_weights`` (grid in steps of 0.05, best top-1,
  then lower loss, then the more even) on the pooled test scores of the *other* folds, then
  applied to fold k. Those are videos fold k never tests, scored by models that never trained on
  them; the models of the other folds did train on fold k's test videos, so the weight, one
  number, is chosen by models that saw them: a small leak that the equal row does not have.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from resaction.engine.fusion import choose_weights


def fold_scores(run: Path) -> list[tuple[list[str], np.ndarray, np.ndarray]]:
    """Per fold of a finished cross-validation: its test videos, their probabilities, labels."""
    record = json.loads((run / "crossval.json").read_text())
    folds = []
    for fold in record["folds"]:
        folder = run / f"fold_{fold['fold']}"
        with (folder / "test.csv").open(newline="") as handle:
            videos = [row["path"] for row in csv.DictReader(handle)]
        scores = np.load(folder / "eval" / "scores.npz")
        folds.append((videos, scores["video_probs"], scores["labels"]))
    return folds


def _top1(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def fuse_runs(first: Path, second: Path) -> dict[str, dict]:
    """Top-1 per fold of the two weightings, the weights each fold used, the videos tested."""
    a, b = fold_scores(first), fold_scores(second)
    if len(a) != len(b) or any(x[0] != y[0] for x, y in zip(a, b, strict=False)):
        raise SystemExit(f"{first} and {second} did not test the same videos in the same folds")
    for (_, probs_a, labels_a), (_, probs_b, labels_b) in zip(a, b, strict=True):
        if probs_a.shape != probs_b.shape or not np.array_equal(labels_a, labels_b):
            raise SystemExit(f"{first} and {second} have different classes or labels")
    equal = [
        _top1(0.5 * pa + 0.5 * pb, labels) for (_, pa, labels), (_, pb, _) in zip(a, b, strict=True)
    ]
    chosen, weights = [], []
    for k in range(len(a)):
        others = [i for i in range(len(a)) if i != k]
        parts = [np.concatenate([run[i][1] for i in others]) for run in (a, b)]
        labels = np.concatenate([a[i][2] for i in others])
        (wa, wb), _ = choose_weights(parts, labels)
        weights.append([wa, wb])
        chosen.append(_top1(wa * a[k][1] + wb * b[k][1], a[k][2]))
    videos = sum(len(fold[0]) for fold in a)
    return {
        "equal": {"folds": equal, "weights": [[0.5, 0.5]] * len(a), "videos": videos},
        "chosen": {"folds": chosen, "weights": weights, "videos": videos},
    }


def fusion_rows(
    dataset: str,
    split: str,
    models: tuple[str, str],
    runs: tuple[Path, Path],
    label: str,
    reference: float,
    root: Path,
) -> list[dict]:
    """The two rows (``<label> fused equal``, ``<label> fused chosen``) for real_data.json."""
    fused = fuse_runs(*runs)
    rows = []
    for name, result in fused.items():
        folds = result["folds"]
        mean = float(np.mean(folds))
        rows.append(
            {
                "dataset": dataset,
                "split": split,
                "model": "+".join(models),
                "start": f"{label} fused {name}",
                "fusion": name,
                "fusion_weights": result["weights"],
                "videos": result["videos"],
                "top1_mean": mean,
                "top1_std": float(np.std(folds, ddof=1)) if len(folds) > 1 else 0.0,
                "top1_folds": folds,
                "vs_baseline_points": 100 * (mean - reference),
                "out": " + ".join(str(run.relative_to(root)) for run in runs),
            }
        )
    return rows
