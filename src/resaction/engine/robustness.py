"""Robustness: evaluate the same videos again with a difficulty added, and report the drop.

Each difficulty (``data.stress``: clutter, camera motion, occlusion...) is applied to the uint8 clip
before the transform, with a seed taken from the clip itself, so a rerun gives the same numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from rich.table import Table
from torch import nn

from resaction.data.manifests import VideoEntry
from resaction.data.stress import ORDER_KINDS, parse_stress_kinds
from resaction.engine.evaluate import EvalResult, evaluate
from resaction.engine.report import result_summary, write_json
from resaction.outputs import ensure_output_dir
from resaction.runtime.backends import Backend


@dataclass
class RobustnessResult:
    """The clean evaluation and one evaluation per difficulty, on the same videos."""

    baseline: EvalResult
    stressed: dict[str, EvalResult]
    severity: float

    def rows(self) -> list[dict[str, Any]]:
        """One row per condition: accuracy, and its drop from the clean videos (in points)."""
        clean = self.baseline.metrics
        rows = [_row("clean", self.baseline, clean)]
        rows += [_row(kind, result, clean) for kind, result in self.stressed.items()]
        return rows


def _row(kind: str, result: EvalResult, clean: dict[str, Any]) -> dict[str, Any]:
    metrics = result.metrics
    return {
        "condition": kind,
        "videos": metrics["num_samples"],
        "top1": metrics["top1"],
        "top1_drop": clean["top1"] - metrics["top1"],
        "mean_class_accuracy": metrics["mean_class_accuracy"],
        "mean_class_accuracy_drop": clean["mean_class_accuracy"] - metrics["mean_class_accuracy"],
        "clip_top1": result.clip_metrics["top1"],
    }


def run_robustness(
    model: nn.Module | Backend,
    entries: Sequence[VideoEntry],
    classes: Sequence[str],
    *,
    preprocess: dict[str, Any],
    protocol: dict[str, Any],
    kinds: Sequence[str],
    severity: float = 0.5,
    baseline: EvalResult | None = None,
    batch_size: int = 8,
    num_workers: int | None = None,
    progress: bool = True,
) -> RobustnessResult:
    """Evaluate ``entries`` clean (unless ``baseline`` is given) and once per stress kind."""

    kinds = parse_stress_kinds(",".join(kinds)) if kinds else []
    common = {
        "preprocess": preprocess,
        "protocol": protocol,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "progress": progress,
    }
    if baseline is None:
        baseline = evaluate(model, entries, classes, **common)
    stressed = {
        kind: evaluate(model, entries, classes, stress=kind, stress_severity=severity, **common)
        for kind in kinds
    }
    for result in stressed.values():
        result.protocol.update(
            {k: v for k, v in baseline.protocol.items() if k in ("checkpoint", "model", "data")}
        )
    return RobustnessResult(baseline=baseline, stressed=stressed, severity=severity)


def order_table(result: RobustnessResult) -> Table:
    """Per class, the share of its videos right as they are, time-reversed and frame-shuffled:
    a class that holds up under both is recognised by appearance, not motion."""
    conditions = {"as is": result.baseline} | {
        kind: r for kind, r in result.stressed.items() if kind in ORDER_KINDS
    }
    table = Table(title="temporal reliance: accuracy per class")
    table.add_column("class")
    for name in conditions:
        table.add_column(name, justify="right")
    for index, label in enumerate(result.baseline.classes):
        cells = []
        for r in conditions.values():
            support = r.metrics["support"][index]
            cells.append(f"{r.metrics['recall'][index]:.0%} of {support}" if support else "-")
        table.add_row(label, *cells)
    return table


def write_robustness_report(
    result: RobustnessResult, out_dir: str | Path, *, extra: dict[str, Any] | None = None
) -> dict[str, Path]:
    """``robustness.json`` (every condition in full), ``robustness.csv`` and ``robustness.png``."""
    out = ensure_output_dir(out_dir)
    rows = result.rows()
    payload = {
        **(extra or {}),
        "severity": result.severity,
        "protocol": result.baseline.protocol,
        "table": rows,
        "conditions": {
            "clean": result_summary(result.baseline),
            **{kind: result_summary(r) for kind, r in result.stressed.items()},
        },
    }
    csv_path = out / "robustness.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {
        "json": write_json(payload, out / "robustness.json"),
        "csv": csv_path,
        "png": plot_robustness(rows, out / "robustness.png", result.severity),
    }


def plot_robustness(rows: list[dict[str, Any]], path: Path, severity: float) -> Path:
    """Video-level top-1 per condition, with the drop written above each stressed bar."""
    figure = Figure(figsize=(1.4 * len(rows) + 2.5, 3.8))
    axes = figure.add_subplot()
    names = [row["condition"] for row in rows]
    values = [100 * row["top1"] for row in rows]
    colours = ["tab:green"] + ["tab:orange"] * (len(rows) - 1)
    bars = axes.bar(names, values, color=colours)
    for bar, row in zip(bars[1:], rows[1:], strict=True):
        axes.annotate(
            f"{0.0 - 100 * row['top1_drop']:+.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    axes.set_ylim(0, 105)
    axes.set_ylabel("video top-1 (%)")
    axes.set_title(f"Robustness (severity {severity:g})")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def robustness_table(result: RobustnessResult) -> Table:
    table = Table(title=f"Robustness (severity {result.severity:g}, video level)")
    for column in ("condition", "videos", "top-1", "change", "mean class acc.", "change "):
        table.add_column(column, justify="left" if column == "condition" else "right")
    for row in result.rows():
        table.add_row(
            row["condition"],
            str(row["videos"]),
            _pct(row["top1"]),
            _points(row["top1_drop"]) if row["condition"] != "clean" else "",
            _pct(row["mean_class_accuracy"]),
            _points(row["mean_class_accuracy_drop"]) if row["condition"] != "clean" else "",
        )
    return table


def _pct(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.1f}%"


def _points(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{0.0 - 100 * value:+.1f} pt"
