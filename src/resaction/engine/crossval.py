"""K-fold cross-validation: train K times, test each model on the fold it never saw.

Honest by construction: folds keep groups (person, source video) whole, each fold's model trains on
the other folds with no validation split and no checkpoint selection (the model after the last
epoch is the one tested), and every video is tested exactly once. Results are the per-fold numbers,
their mean and sample standard deviation, and the metrics of all folds' predictions pooled (with
their confusion matrix, precision-recall curves and, for two classes, ROC curve).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.table import Table
from tqdm.auto import tqdm

from resaction.data.manifests import Manifest, read_manifest
from resaction.data.spec import DEFAULT_VIEWS
from resaction.data.splits import entry_groups, kfold, without_groups
from resaction.engine import trainer
from resaction.engine.config import TrainConfig
from resaction.engine.evaluate import evaluate
from resaction.engine.metrics import classification_metrics, mean_and_spread, mean_and_std
from resaction.engine.report import (
    ensure_output_dir,
    plot_confusion,
    protocol_line,
    write_json,
    write_report,
    write_score_curves,
)
from resaction.errors import DatasetError
from resaction.models.checkpoint import load_checkpoint
from resaction.runtime.loading import resolve_spec

log = logging.getLogger(__name__)

SUMMARY_METRICS = ("top1", "mean_class_accuracy", "macro_f1", "clip_top1")
_RECORDED = (
    "test_videos",
    "metrics",
    "clip_top1",
    "paths",
    "skipped",
    "train_seconds",
    "eval_seconds",
)
"""``FoldResult`` fields a finished fold's ``fold.json`` gives back as they were written."""


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

    @property
    def mean_top1(self) -> float:
        return self.summary["top1"]["mean"]

    @property
    def std_top1(self) -> float:
        return self.summary["top1"]["std"]


def run_crossval(
    config: TrainConfig,
    folds: int,
    group_by: str | None,
    out: str | Path,
    *,
    exclude_groups: tuple[str, ...] | list[str] = (),
    only_folds: list[int] | None = None,
    eval_batch_size: int | None = None,
    resume: bool = True,
) -> CrossValResult:
    """Train and test ``folds`` times on ``config.data`` split into folds by ``group_by``.

    ``group_by`` is a regex on file names (``P(\\d)`` leaves one person out) or None to use the
    dataset's own groups (``groups.csv``) or, without any, one group per video. Videos in
    ``exclude_groups`` are left out entirely. Each fold writes ``fold_<k>/`` (its train and test
    CSVs, training run and evaluation report); with ``resume`` a fold whose report exists is read
    back instead of rerun. ``only_folds`` (1-based) runs a subset, e.g. for a smoke test.
    """
    out = ensure_output_dir(out)
    found = read_manifest(
        config.data, background=config.background, skip_bad_rows=config.skip_bad_rows
    )
    manifest = without_groups(found, group_by, exclude_groups)
    splits = kfold(manifest, folds, group_by=group_by, seed=config.seed)
    groups = entry_groups(manifest, group_by) or [str(e.path.name) for e in manifest]
    group_of = {str(entry.path): group for entry, group in zip(manifest, groups, strict=True)}
    key = _config_key(config)
    wanted = only_folds or list(range(1, folds + 1))
    results: list[FoldResult] = []
    for fold, (train_part, test_part) in enumerate(splits, start=1):
        if fold not in wanted:
            continue
        fold_dir = out / f"fold_{fold}"
        test_groups = sorted({group_of[str(e.path)] for e in test_part})
        cached = _read_fold(fold_dir, fold, len(train_part), test_groups, key) if resume else None
        if cached is not None:
            tqdm.write(f"fold {fold}/{folds}: read back from {fold_dir}")
            results.append(cached)
            continue
        _check_fold(train_part, test_part, manifest.classes, fold)
        tqdm.write(
            f"fold {fold}/{folds}: training on {len(train_part)} videos, "
            f"testing on {len(test_part)} (groups {', '.join(test_groups)})"
        )
        result = _run_fold(
            config, fold, train_part, test_part, test_groups, fold_dir, key, eval_batch_size, resume
        )
        tqdm.write(f"fold {fold}/{folds}: video top-1 {100 * result.metrics['top1']:.1f}%")
        results.append(result)
    if not results:
        raise DatasetError(f"no fold ran: --only-folds {only_folds} is outside 1..{folds}")
    record = json.loads((out / f"fold_{results[0].fold}" / "fold.json").read_text())
    return _summarise(
        results, manifest, config, folds, group_by, exclude_groups, out, record["protocol"]
    )


def _run_fold(
    config: TrainConfig,
    fold: int,
    train_part: Manifest,
    test_part: Manifest,
    test_groups: list[str],
    fold_dir: Path,
    key: dict[str, Any],
    eval_batch_size: int | None,
    resume: bool = True,
) -> FoldResult:
    """Train on ``train_part`` (all of it, last epoch kept), test once on ``test_part``.

    A fold whose training was interrupted continues from its last checkpoint when ``resume`` and
    it was started with the same settings (``fold_dir/settings.json``)."""

    fold_config = dataclasses.replace(
        config,
        data=str(train_part.to_csv(fold_dir / "train.csv")),
        background=None,  # the fold's CSV holds the background pieces already
        val_data=None,
        val_split=0.0,
        early_stopping=None,
        monitor="train_loss",
        select="last",
        out=str(fold_dir / "train"),
        resume=resume and _same_settings(fold_dir, key),
    )
    test_part.to_csv(fold_dir / "test.csv")
    write_json(key, fold_dir / "settings.json")
    started = time.perf_counter()
    trained = trainer.train(fold_config)
    train_seconds = time.perf_counter() - started
    bundle = load_checkpoint(trained.last_checkpoint)
    if list(bundle.classes) != list(test_part.classes):
        raise DatasetError(
            f"fold {fold} trained on classes {bundle.classes}, expected {test_part.classes}"
        )
    result = evaluate(
        bundle.model,
        test_part.entries,
        test_part.classes,
        preprocess=resolve_spec(bundle.model_name, bundle.preprocess).to_dict(),
        protocol=DEFAULT_VIEWS.updated(config.protocol).to_dict(),
        batch_size=eval_batch_size or config.batch_size,
        num_workers=config.num_workers,
        progress=config.progress,
    )
    result.protocol.update(
        checkpoint=str(trained.last_checkpoint), model=bundle.model_name, data=config.data
    )
    write_report(result, fold_dir / "eval", extra={"fold": fold, "test_groups": test_groups})
    np.savez(fold_dir / "eval" / "scores.npz", video_probs=result.video_probs, labels=result.labels)
    fold_result = FoldResult(
        fold=fold,
        train_videos=len(train_part),
        test_videos=len(test_part),
        test_groups=test_groups,
        checkpoint=Path(trained.last_checkpoint),
        metrics=result.metrics,
        clip_top1=result.clip_metrics["top1"],
        video_probs=result.video_probs,
        labels=result.labels,
        paths=result.paths,
        skipped=result.skipped,
        train_seconds=train_seconds,
        eval_seconds=result.seconds,
    )
    _write_fold_record(fold_dir, fold_result, result.protocol, key)
    return fold_result


def _comparable(key: dict[str, Any]) -> Any:
    """``key`` as it reads back from JSON (tuples become lists), with a weights file named by
    its absolute path, so that a run resumed with the same file spelled another way (relative,
    absolute, ``~``) is recognised."""
    saved = json.loads(json.dumps(key))
    weights = saved.get("weights")
    if isinstance(weights, str) and Path(weights).expanduser().is_file():
        saved["weights"] = str(Path(weights).expanduser().resolve())
    return saved


def _same_settings(fold_dir: Path, key: dict[str, Any]) -> bool:
    """Whether an interrupted fold in ``fold_dir`` was started with the settings ``key``."""
    settings, last = fold_dir / "settings.json", fold_dir / "train" / "last.pt"
    if not (settings.is_file() and last.is_file()):
        return False
    return _comparable(json.loads(settings.read_text())) == _comparable(key)


def _check_fold(train_part: Manifest, test_part: Manifest, classes: list[str], fold: int) -> None:
    missing = [name for i, name in enumerate(classes) if i not in set(train_part.labels)]
    if missing:
        raise DatasetError(
            f"fold {fold} has no training videos of class {missing[0]!r}: use fewer folds"
        )
    if not test_part.entries:
        raise DatasetError(f"fold {fold} has no test videos: use fewer folds")


def _config_key(config: TrainConfig) -> dict[str, Any]:
    """The settings that change a fold's result (not where it is written or how it shows)."""
    ignored = {"data", "out", "progress", "num_workers", "resume"}
    return {k: v for k, v in config.to_dict().items() if k not in ignored}


def _write_fold_record(
    fold_dir: Path, fold: FoldResult, protocol: dict[str, Any], key: dict[str, Any]
) -> None:
    write_json(
        {
            **fold.summary(),
            "metrics": fold.metrics,
            "paths": fold.paths,
            "protocol": protocol,
            "config": key,
        },
        fold_dir / "fold.json",
    )


def _read_fold(
    fold_dir: Path, fold: int, train_videos: int, test_groups: list[str], key: dict[str, Any]
) -> FoldResult | None:
    """A finished fold's record, if it exists and was made from the same split."""
    record_path, scores_path = fold_dir / "fold.json", fold_dir / "eval" / "scores.npz"
    if not (record_path.is_file() and scores_path.is_file()):
        return None
    record = json.loads(record_path.read_text())
    same_split = record.get("test_groups") == test_groups
    same_split = same_split and record.get("train_videos") == train_videos
    if not same_split or _comparable(record.get("config") or {}) != _comparable(key):
        return None
    scores = np.load(scores_path)
    return FoldResult(
        fold=fold,
        train_videos=train_videos,
        test_groups=test_groups,
        checkpoint=Path(record["checkpoint"]),
        video_probs=scores["video_probs"],
        labels=scores["labels"],
        **{name: record[name] for name in _RECORDED},
    )


def _summarise(
    results: list[FoldResult],
    manifest: Manifest,
    config: TrainConfig,
    folds: int,
    group_by: str | None,
    exclude_groups: tuple[str, ...] | list[str],
    out: Path,
    fold_protocol: dict[str, Any],
) -> CrossValResult:
    summary = {}
    for name in SUMMARY_METRICS:
        values = [r.clip_top1 if name == "clip_top1" else r.metrics[name] for r in results]
        mean, std = mean_and_std(values)
        summary[name] = {"mean": mean, "std": std, "folds": values}
    pooled = classification_metrics(
        np.concatenate([r.video_probs for r in results]),
        np.concatenate([r.labels for r in results]),
    )
    protocol = {
        **{k: v for k, v in fold_protocol.items() if k not in ("checkpoint", "num_videos")},
        "data": str(config.data),
        "model": config.model,
        "weights": config.weights,
        "folds": folds,
        "folds_run": [r.fold for r in results],
        "group_by": group_by or "groups of the data (groups.csv) or one per video",
        "excluded_groups": list(exclude_groups),
        "num_videos": len(manifest),
        "selection": "last epoch (no model selection on the test fold)",
        "std": "sample standard deviation over folds (ddof=1)",
        "epochs": config.epochs,
        "seed": config.seed,
    }
    result = CrossValResult(
        folds=results,
        classes=list(manifest.classes),
        out=out,
        summary=summary,
        pooled=pooled,
        protocol=protocol,
    )
    _write_crossval_files(result)
    return result


def _write_crossval_files(result: CrossValResult) -> None:
    out = result.out
    write_json(
        {
            "protocol": result.protocol,
            "summary": result.summary,
            "pooled": result.pooled,
            "classes": result.classes,
            "folds": [fold.summary() for fold in result.folds],
        },
        out / "crossval.json",
    )
    rows = [fold.summary() for fold in result.folds]
    with (out / "folds.csv").open("w", newline="") as handle:
        fields = [k for k in rows[0] if k not in ("skipped", "test_groups")] + ["test_groups"]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "test_groups": " ".join(row["test_groups"])})
    plot_folds(result, out / "folds.png")
    plot_confusion(
        np.asarray(result.pooled["confusion"]),
        result.classes,
        out / "confusion.png",
        title="Confusion matrix (all folds pooled)",
    )
    write_score_curves(
        np.concatenate([fold.video_probs for fold in result.folds]),
        np.concatenate([fold.labels for fold in result.folds]),
        result.pooled,
        result.classes,
        out,
        note="all folds pooled",
    )


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
