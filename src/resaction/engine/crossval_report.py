"""What a cross-validation produced: its folds' results, and the JSON, CSV, plots and table."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.table import Table

from resaction.engine.metrics import mean_and_spread
from resaction.engine.report import plot_confusion, protocol_line, write_json, write_score_curves


@dataclass
class FoldResult:
    """One fold: what it trained and tested on, and its test predictions."""

    fold: int
    train_videos: int
    test_videos: int
    test_groups: list[str]
    checkpoint: Path
    metrics: dict[str, Any]
    clip_top1: float
    video_probs: np.ndarray
    labels: np.ndarray
    paths: list[str]
    skipped: list[dict[str, str]]
    train_seconds: float
    eval_seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "train_videos": self.train_videos,
            "test_videos": self.test_videos,
            "test_groups": self.test_groups,
            "checkpoint": str(self.checkpoint),
            "top1": self.metrics["top1"],
            "mean_class_accuracy": self.metrics["mean_class_accuracy"],
            "macro_f1": self.metrics["macro_f1"],
            "clip_top1": self.clip_top1,
            "skipped": self.skipped,
            "train_seconds": round(self.train_seconds, 1),
            "eval_seconds": round(self.eval_seconds, 1),
        }


@dataclass
class CrossValResult:
    """All folds, their mean and standard deviation, and the pooled metrics."""

    folds: list[FoldResult]
    classes: list[str]
    out: Path
    summary: dict[str, dict[str, float]]
    pooled: dict[str, Any]
    protocol: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    @property
    def mean_top1(self) -> float:
        return self.summary["top1"]["mean"]

    @property
    def std_top1(self) -> float:
        return self.summary["top1"]["std"]


def write_crossval_files(result: CrossValResult) -> list[Path]:
    """``crossval.json``, ``folds.csv``, ``folds.png``, the pooled ``confusion.png`` and score
    curves in ``result.out``; the paths written."""
    out = result.out
    record = {
        "protocol": result.protocol,
        "summary": result.summary,
        "pooled": result.pooled,
        "classes": result.classes,
        "folds": [fold.summary() for fold in result.folds],
    }
    written = [
        write_json(record, out / "crossval.json"),
        _write_folds_csv(result, out / "folds.csv"),
    ]
    written.append(plot_folds(result, out / "folds.png"))
    written.append(
        plot_confusion(
            np.asarray(result.pooled["confusion"]),
            result.classes,
            out / "confusion.png",
            title="Confusion matrix (all folds pooled)",
        )
    )
    curves = write_score_curves(
        np.concatenate([fold.video_probs for fold in result.folds]),
        np.concatenate([fold.labels for fold in result.folds]),
        result.pooled,
        result.classes,
        out,
        note="all folds pooled",
    )
    return [*written, *curves.values()]


def _write_folds_csv(result: CrossValResult, path: Path) -> Path:
    rows = [fold.summary() for fold in result.folds]
    with path.open("w", newline="") as handle:
        fields = [k for k in rows[0] if k not in ("skipped", "test_groups")] + ["test_groups"]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "test_groups": " ".join(row["test_groups"])})
    return path


def plot_folds(result: CrossValResult, path: Path) -> Path:
    """Video top-1 per fold, with the mean as a line and ±1 standard deviation as a band."""
    figure = Figure(figsize=(max(4.0, 0.8 * len(result.folds) + 2.0), 3.6))
    axes = figure.add_subplot()
    names = [f"fold {fold.fold}" for fold in result.folds]
    values = [100 * fold.metrics["top1"] for fold in result.folds]
    axes.bar(names, values, color="tab:blue")
    mean, std = 100 * result.mean_top1, 100 * result.std_top1
    label = f"mean {mean_and_spread(result.summary['top1'])}"
    axes.axhline(mean, color="black", linewidth=1, label=label)
    axes.axhspan(mean - std, mean + std, color="grey", alpha=0.2)
    axes.set_ylim(0, 105)
    axes.set_ylabel("video top-1 (%)")
    axes.set_title(f"{result.protocol['model']}: {len(result.folds)}-fold cross-validation")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def crossval_table(result: CrossValResult) -> Table:
    table = Table(
        title=f"Cross-validation: {result.protocol['model']}",
        caption=protocol_line(
            {**result.protocol, "num_evaluated": sum(f.test_videos for f in result.folds)}
        ),
    )
    for column in ("fold", "train", "test", "top-1", "mean class acc.", "clip top-1"):
        table.add_column(column, justify="right")
    for fold in result.folds:
        table.add_row(
            str(fold.fold),
            str(fold.train_videos),
            str(fold.test_videos),
            f"{100 * fold.metrics['top1']:.1f}%",
            f"{100 * fold.metrics['mean_class_accuracy']:.1f}%",
            f"{100 * fold.clip_top1:.1f}%",
        )
    s = result.summary
    table.add_row(
        "mean ± std",
        "",
        "",
        *(mean_and_spread(s[name]) for name in ("top1", "mean_class_accuracy", "clip_top1")),
        style="bold",
    )
    return table
