"""K-fold cross-validation: train K times, test each model on the fold it never saw.

Honest by construction: folds keep groups (person, source video) whole, each fold's model trains on
the other folds with no validation split and no checkpoint selection (the model after the last
epoch is the one tested), and every video is tested exactly once. Results are the per-fold numbers,
their mean and sample standard deviation, and the metrics of all folds' predictions pooled (with
their confusion matrix, precision-recall curves and, for two classes, ROC curve).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from resaction.data.manifests import Manifest, read_manifest
from resaction.data.spec import DEFAULT_VIEWS
from resaction.data.splits import entry_groups, kfold, without_groups
from resaction.engine import trainer
from resaction.engine.config import TrainConfig
from resaction.engine.crossval_report import CrossValResult, FoldResult, write_crossval_files
from resaction.engine.evaluate import evaluate
from resaction.engine.metrics import classification_metrics, mean_and_std
from resaction.engine.report import (
    write_json,
    write_report,
)
from resaction.errors import ConfigError, DatasetError
from resaction.models.checkpoint import load_checkpoint
from resaction.outputs import check_output_dir, ensure_output_dir
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
    out = check_output_dir(out)
    found = read_manifest(
        config.data, background=config.background, skip_bad_rows=config.skip_bad_rows
    )
    manifest = without_groups(found, group_by, exclude_groups)
    splits = kfold(manifest, folds, group_by=group_by, seed=config.seed)
    groups = entry_groups(manifest, group_by) or [str(e.path.name) for e in manifest]
    group_of = {str(entry.path): group for entry, group in zip(manifest, groups, strict=True)}
    key = {
        **_config_key(config),
        "folds": folds,
        "group_by": group_by,
        "exclude_groups": list(exclude_groups),
    }
    wanted = only_folds or list(range(1, folds + 1))
    ensure_output_dir(out)  # the data and its folds are sound: nothing empty is left behind
    _prepare_folds(out, key, resume, wanted)
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
        resume=resume and _interrupted(fold_dir),
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


def _prepare_folds(out: Path, key: dict[str, Any], resume: bool, wanted: list[int]) -> None:
    """Without ``resume``, the wanted folds start over; with it, folds left by a run with other
    settings are refused (their results would be averaged with this run's), naming the first
    setting that differs."""
    now = _comparable(key)
    for fold in wanted:
        fold_dir = out / f"fold_{fold}"
        if fold_dir.is_dir() and not resume:
            shutil.rmtree(fold_dir)
            continue
        settings = fold_dir / "settings.json"
        if not settings.is_file():
            continue
        saved = _comparable(json.loads(settings.read_text()))
        changed = [name for name in (*now, *saved) if saved.get(name) != now.get(name)]
        if changed:
            name = changed[0]
            raise ConfigError(
                f"{out} holds folds made with {name}={saved.get(name)!r}, this run has "
                f"{name}={now.get(name)!r}: use the same settings to resume, pass --no-resume "
                "to start over, or choose another --out"
            )


def _interrupted(fold_dir: Path) -> bool:
    """Whether ``fold_dir`` holds a fold's training that stopped part-way, with its settings
    (``_prepare_folds`` has refused settings other than this run's)."""
    return (fold_dir / "settings.json").is_file() and (fold_dir / "train" / "last.pt").is_file()


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
    result.files = write_crossval_files(result)
    return result
