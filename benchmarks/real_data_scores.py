"""Per-video test scores of a finished cross-validation, kept beside ``real_data.json``.

``runs/`` holds the models and is not committed, so without these files a row's fusion with a
later run, or a look at which groups it gets wrong, would need the whole cross-validation again.
``benchmarks/results/real_data_scores/<dataset>/<run>.json`` keeps, per fold, each test video
(its path inside the dataset folder), its group, its label and its probabilities (the mean softmax
over its test views, rounded to 5 decimals): a few tens of kilobytes a row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from resaction.data.manifests import read_manifest
from resaction.data.splits import entry_groups

SCORES = Path(__file__).resolve().parent / "results" / "real_data_scores"
DECIMALS = 5


def scores_path(dataset: str, run: str) -> Path:
    return SCORES / dataset / f"{run}.json"


def save_scores(run_dir: Path, data: Path, out: Path, group_by: str | None = None) -> Path:
    """Write the per-video scores of the cross-validation in ``run_dir`` (made on ``data``, its
    groups named by ``group_by`` as in crossval, or by the data's groups.csv)."""
    record = json.loads((run_dir / "crossval.json").read_text())
    folds = []
    for fold in record["folds"]:
        folder = run_dir / f"fold_{fold['fold']}"
        test = read_manifest(folder / "test.csv")
        scores = np.load(folder / "eval" / "scores.npz")
        folds.append(
            {
                "fold": fold["fold"],
                "videos": [Path(e.path).relative_to(data).as_posix() for e in test.entries],
                "groups": entry_groups(test, group_by) or [""] * len(test),
                "labels": scores["labels"].astype(int).tolist(),
                "probs": scores["video_probs"],
            }
        )
    return write_scores(record.get("classes"), folds, out)


def write_scores(classes: list[str] | None, folds: list[dict], out: Path) -> Path:
    """Write per-fold ``videos``, ``groups``, ``labels`` and ``probs`` (rounded) to ``out``."""
    rounded = [{**fold, "probs": np.round(fold["probs"], DECIMALS).tolist()} for fold in folds]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"classes": classes, "folds": rounded}, separators=(",", ":")))
    return out


def load_scores(path: Path) -> list[tuple[list[str], np.ndarray, np.ndarray]]:
    """Per fold: its test videos, their probabilities and their labels."""
    if not path.is_file():
        raise SystemExit(f"{path}: no saved scores; run that cross-validation first")
    saved = json.loads(path.read_text())
    return [
        (fold["videos"], np.asarray(fold["probs"], dtype=np.float64), np.asarray(fold["labels"]))
        for fold in saved["folds"]
    ]


def _hits_by_group(path: Path) -> tuple[dict[str, list[bool]], dict[str, list[str]]]:
    """Per group: whether each of its videos was right, and each video's class name."""
    saved = json.loads(path.read_text())
    classes = saved.get("classes") or []
    hits: dict[str, list[bool]] = {}
    names: dict[str, list[str]] = {}
    for fold in saved["folds"]:
        for group, label, probs in zip(fold["groups"], fold["labels"], fold["probs"], strict=True):
            hits.setdefault(group, []).append(int(np.argmax(probs)) == label)
            names.setdefault(group, []).append(classes[label] if classes else str(label))
    return hits, names


def group_table(dataset: str) -> str:
    """Markdown: per group of ``dataset``, its videos and each saved run's top-1 on them (every
    video is tested once, by the fold that holds its group), so a group every model gets wrong,
    or one a model gets right for the wrong reason, shows."""
    paths = sorted(SCORES.glob(f"{dataset}/*.json"))
    if not paths:
        raise SystemExit(f"{SCORES / dataset}: no saved scores; run a {dataset} row first")
    runs = {path.stem: _hits_by_group(path) for path in paths}
    names = next(iter(runs.values()))[1]
    lines = [
        "| group | videos | " + " | ".join(runs) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in runs) + " |",
    ]
    for group in sorted(names):
        mix = ", ".join(f"{names[group].count(n)} {n}" for n in sorted(set(names[group])))
        cells = [
            f"{100 * np.mean(hits[group]):.0f}%" if group in hits else "-"
            for hits, _ in runs.values()
        ]
        lines.append(f"| {group} | {mix} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
