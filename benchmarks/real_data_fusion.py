"""Two-stream rows for ``benchmarks/real_data.py``: late fusion of two finished cross-validations.

Both runs used the same folds (same data, seed and split), and each fold's test videos were
scored by each run (their saved scores, ``real_data_scores``: per video, the mean softmax over
its test views), so two rows fuse without their ``runs/`` folders. The fused score of a video is
the weighted sum of the two, which is what a checkpoint written by ``resaction fuse`` computes
(its softmax is the weighted sum of the parts' softmaxes); here each part sees its own test
views, where the fused checkpoint gives the one-frame part the middle frame of each of the other
part's segments.

Two weightings, each a row:

- ``equal``: 0.5 and 0.5, nothing chosen;
- ``chosen``: for fold k, ``engine.fusion.choose_weights`` (grid in steps of 0.05, best top-1,
  then lower loss, then the more even) on the pooled test scores of the *other* folds, then
  applied to fold k. Those are videos fold k never tests, scored by models that never trained on
  them; the models of the other folds did train on fold k's test videos, so the weight, one
  number, is chosen by models that saw them: a small leak that the equal row does not have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from real_data_scores import load_scores
from resaction.engine.fusion import choose_weights


def _top1(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def fuse_runs(first: Path, second: Path) -> dict[str, dict]:
    """Top-1 per fold of the two weightings, the weights each fold used, the videos tested;
    ``first`` and ``second`` are saved scores (``real_data_scores.scores_path``)."""
    a, b = load_scores(first), load_scores(second)
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
                "out": " + ".join(f"runs/real/{dataset}/{run.stem}" for run in runs),
            }
        )
    return rows
