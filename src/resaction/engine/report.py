"""Write an evaluation to files: results.json, confusion.csv/png, per_class.csv, predictions.csv,
pr_curves.png and, for two classes, roc.png.

Plots use matplotlib's object API (``Figure``), which needs no display and no global state.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.table import Table

from resaction.detection.curves import plot_curves, precision_recall_curve, roc_curve
from resaction.engine.evaluate import EvalResult
from resaction.outputs import ensure_output_dir

MAX_PR_CURVES = 10  # past this many classes, pr_curves.png shows the ones with the lowest AP


@dataclass(frozen=True)
class ReportFiles:
    results: Path
    confusion_csv: Path
    confusion_png: Path
    per_class: Path
    predictions: Path
    pr_curves_png: Path
    roc_png: Path | None = None

    def paths(self) -> list[Path]:
        """Every file written, in the order they are listed to a user."""
        return [value for value in vars(self).values() if value is not None]


def to_jsonable(value: Any) -> Any:
    """Numpy scalars and arrays to Python; NaN to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(to_jsonable(data), indent=2) + "\n")
    return path


def per_class_rows(metrics: dict[str, Any], classes: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "class": name,
            "support": metrics["support"][i],
            "precision": metrics["precision"][i],
            "recall": metrics["recall"][i],
            "f1": metrics["f1"][i],
            "average_precision": metrics["average_precision"][i],
        }
        for i, name in enumerate(classes)
    ]


def result_summary(result: EvalResult) -> dict[str, Any]:
    """The JSON-ready record of one evaluation (without per-video rows)."""
    return {
        "protocol": result.protocol,
        "classes": result.classes,
        "metrics": {"video": result.metrics, "clip": result.clip_metrics},
        "per_class": per_class_rows(result.metrics, result.classes),
        "skipped": result.skipped,
        "seconds": round(result.seconds, 3),
    }


def write_report(
    result: EvalResult, out_dir: str | Path, *, extra: dict[str, Any] | None = None
) -> ReportFiles:
    """Write every file of one evaluation into ``out_dir``; ``extra`` goes into results.json."""
    out = ensure_output_dir(out_dir)
    summary = {**(extra or {}), **result_summary(result)}
    summary["predictions"] = _prediction_rows(result)
    curves = write_score_curves(
        result.video_probs, result.labels, result.metrics, result.classes, out
    )
    files = ReportFiles(
        results=write_json(summary, out / "results.json"),
        confusion_csv=_write_confusion_csv(result, out / "confusion.csv"),
        confusion_png=plot_confusion(
            np.asarray(result.metrics["confusion"]), result.classes, out / "confusion.png"
        ),
        per_class=_write_rows(
            per_class_rows(result.metrics, result.classes), out / "per_class.csv"
        ),
        predictions=_write_rows(_prediction_rows(result), out / "predictions.csv"),
        pr_curves_png=curves["pr_curves"],
        roc_png=curves.get("roc"),
    )
    return files


def write_score_curves(
    probs: np.ndarray,
    labels: np.ndarray,
    metrics: dict[str, Any],
    classes: Sequence[str],
    out: Path,
    *,
    note: str = "",
) -> dict[str, Path]:
    """``pr_curves.png`` (each class against the rest) and, with two classes, ``roc.png``.

    ``metrics`` are ``classification_metrics`` of the same ``probs`` and ``labels``: they give the
    AP or AUC in the legend and the dot on each curve, where the argmax prediction operates.
    Classes absent from ``labels`` have no curve; past ``MAX_PR_CURVES`` classes the ones with the
    lowest AP are drawn. ``note`` goes into the titles (e.g. "all folds pooled").
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    figures = {"pr_curves": _pr_figure(probs, labels, metrics, classes)}
    if len(classes) == 2:
        figures["roc"] = _roc_figure(probs, labels, metrics, classes)
    return {
        name: plot_curves(
            path=out / f"{name}.png", **{**figure, "title": _titled(figure["title"], note)}
        )
        for name, figure in figures.items()
    }


def _pr_figure(
    probs: np.ndarray, labels: np.ndarray, metrics: dict[str, Any], classes: Sequence[str]
) -> dict[str, Any]:
    """``plot_curves``' keywords for the precision-recall curves (see ``write_score_curves``)."""
    ap = np.asarray(metrics["average_precision"], dtype=np.float64)
    present = [i for i in range(len(classes)) if np.isfinite(ap[i])]
    shown = sorted(present, key=lambda i: (ap[i], i))[:MAX_PR_CURVES]
    title = "Precision-recall, each class against the rest"
    if len(shown) < len(present):
        title = f"Precision-recall: the {len(shown)} of {len(present)} classes with the lowest AP"
    curves, points, values = {}, {}, {}
    for index in sorted(shown):
        precision, recall, _ = precision_recall_curve(probs[:, index], labels == index)
        name = classes[index]
        curves[name] = (np.r_[0.0, recall], np.r_[precision[:1], precision])
        points[name] = (metrics["recall"][index], metrics["precision"][index])
        values[name] = f"AP {ap[index]:.2f}"
    return {
        "curves": curves,
        "title": title,
        "xlabel": "recall (dot: where the argmax prediction operates)",
        "ylabel": "precision",
        "points": points,
        "legend_values": values,
    }


def _roc_figure(
    probs: np.ndarray, labels: np.ndarray, metrics: dict[str, Any], classes: Sequence[str]
) -> dict[str, Any]:
    """``plot_curves``' keywords for the ROC curve of two classes."""
    positive = int(metrics["roc_auc_positive"])
    name = classes[positive]
    fpr, tpr, _ = roc_curve(probs[:, positive], labels == positive)
    confusion = np.asarray(metrics["confusion"], dtype=np.float64)
    negatives, positives = confusion[1 - positive].sum(), confusion[positive].sum()
    curves = {name: (fpr, tpr)} if negatives and positives else {}
    points = {}
    if curves:
        points[name] = (confusion[1 - positive, positive] / negatives, metrics["recall"][positive])
    auc = metrics["roc_auc"]
    return {
        "curves": {**curves, "chance": (np.array([0.0, 1.0]), np.array([0.0, 1.0]))},
        "title": f"ROC, positive class {name!r}",
        "xlabel": "false-positive rate (dot: where the argmax prediction operates)",
        "ylabel": f"true-positive rate (recall of {name})",
        "points": points,
        "legend_values": {name: f"AUC {auc:.2f}"} if curves else {},
    }


def _titled(title: str, note: str) -> str:
    return f"{title} ({note})" if note else title


def _prediction_rows(result: EvalResult) -> list[dict[str, Any]]:
    predictions = result.predictions
    return [
        {
            "path": path,
            "label": result.classes[int(label)],
            "predicted": result.classes[int(predicted)],
            "confidence": round(float(result.video_probs[row, predicted]), 6),
            "correct": bool(label == predicted),
        }
        for row, (path, label, predicted) in enumerate(
            zip(result.paths, result.labels, predictions, strict=True)
        )
    ]


def _write_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def _write_confusion_csv(result: EvalResult, path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *result.classes])
        for name, row in zip(result.classes, result.metrics["confusion"], strict=True):
            writer.writerow([name, *row])
    return path


def plot_confusion(
    confusion: np.ndarray, classes: Sequence[str], path: Path, title: str = "Confusion matrix"
) -> Path:
    """Counts in each cell, colour by the fraction of the true class (row-normalised)."""
    size = max(4.0, 0.5 * len(classes) + 2.5)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    totals = confusion.sum(axis=1, keepdims=True)
    fraction = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    image = axes.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    if len(classes) <= 30:
        for (row, col), count in np.ndenumerate(confusion):
            colour = "white" if fraction[row, col] > 0.5 else "black"
            axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    ticks = np.arange(len(classes))
    axes.set_xticks(ticks, labels=list(classes), rotation=45, ha="right", fontsize=8)
    axes.set_yticks(ticks, labels=list(classes), fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def _percent(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def metrics_table(result: EvalResult, title: str = "Evaluation") -> Table:
    """Video- and clip-level summary for the terminal."""
    show_top5 = len(result.classes) > 5
    table = Table(title=title)
    table.add_column("level")
    table.add_column("samples", justify="right")
    table.add_column("top-1", justify="right")
    if show_top5:
        table.add_column("top-5", justify="right")
    table.add_column("mean class acc.", justify="right")
    table.add_column("macro F1", justify="right")
    table.add_column("mAP", justify="right")
    for level, metrics in (("video", result.metrics), ("clip", result.clip_metrics)):
        cells = [level, str(metrics["num_samples"]), _percent(metrics["top1"])]
        if show_top5:
            cells.append(_percent(metrics["top5"]))
        cells += [_percent(metrics["mean_class_accuracy"]), _percent(metrics["macro_f1"])]
        cells.append(_percent(metrics["mean_average_precision"]))
        table.add_row(*cells)
    return table


def per_class_table(result: EvalResult, title: str = "Per class (video level)") -> Table:
    table = Table(title=title)
    for column in ("class", "videos", "precision", "recall", "F1", "AP"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in per_class_rows(result.metrics, result.classes):
        table.add_row(
            row["class"],
            str(row["support"]),
            _percent(row["precision"]),
            _percent(row["recall"]),
            _percent(row["f1"]),
            _percent(row["average_precision"]),
        )
    return table


def protocol_line(protocol: dict[str, Any]) -> str:
    """One sentence that says how the numbers were measured."""
    timing = (
        f"at {protocol['target_fps']} fps"
        if protocol.get("target_fps")
        else f"every {protocol.get('frame_interval', 1)} frame(s)"
    )
    return (
        f"{protocol.get('num_evaluated')} of {protocol.get('num_videos')} videos "
        f"({protocol.get('num_skipped', 0)} skipped), {protocol.get('num_clips')} clip(s) x "
        f"{protocol.get('num_crops')} crop(s) of {protocol.get('clip_len')} frames "
        f"({protocol.get('sampling')}, {timing}), {protocol.get('crop')} px, softmax averaged"
    )
