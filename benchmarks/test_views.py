"""What more test views buy: a finished ``resaction crossval`` run re-scored under other protocols.

Each fold's model (the checkpoint its ``fold.json`` names) scores that fold's own test videos
(``test.csv``) once per protocol, ``CLIPSxCROPS``; the first protocol is the baseline the others
are compared with (the run's own, ``2x1`` for the ``benchmarks/real_data.py`` recipe). Nothing is
trained. The table gives mean ± std of video top-1 over the folds, the folds won, lost and tied
against the baseline, and the scoring seconds, since every view costs a forward pass.

    python benchmarks/test_views.py runs/real/fight/tsn_diff_resnet18_scratch_adamw
    python benchmarks/test_views.py RUN --views 2x1,10x1,10x3 --out results.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from resaction.data.manifests import read_manifest
from resaction.engine.evaluate import evaluate
from resaction.runtime.loading import load_model

RESULTS = Path(__file__).parent / "results"
console = Console(width=max(Console().width, 120))


def parse_views(text: str) -> list[tuple[int, int]]:
    views = []
    for item in text.split(","):
        clips, _, crops = item.strip().partition("x")
        views.append((int(clips), int(crops or 1)))
    return views


def score_fold(fold_dir: Path, views: list[tuple[int, int]]) -> dict[str, Any]:
    """Video top-1 and scoring seconds of one fold's model on its test videos, per protocol."""
    facts = json.loads((fold_dir / "fold.json").read_text())
    loaded = load_model(facts["checkpoint"])
    entries = read_manifest(fold_dir / "test.csv", classes=loaded.classes).entries
    scores = {}
    for clips, crops in views:
        started = time.perf_counter()
        result = evaluate(
            loaded.network,
            entries,
            loaded.classes,
            preprocess=loaded.spec.to_dict(),
            protocol={"num_clips": clips, "num_crops": crops},
            num_workers=0,
            progress=False,
        )
        seconds = time.perf_counter() - started
        scores[f"{clips}x{crops}"] = {"top1": result.metrics["top1"], "seconds": seconds}
        print(f"{fold_dir.name}: {clips}x{crops} views, top-1 {100 * result.metrics['top1']:.1f}%")
    return {"fold": fold_dir.name, "videos": len(entries), "scores": scores}


def summarise(folds: list[dict[str, Any]], views: list[str]) -> list[dict[str, Any]]:
    base = np.array([fold["scores"][views[0]]["top1"] for fold in folds])
    rows = []
    for view in views:
        top1 = np.array([fold["scores"][view]["top1"] for fold in folds])
        seconds = sum(fold["scores"][view]["seconds"] for fold in folds)
        rows.append(
            {
                "views": view,
                "top1_mean": float(top1.mean()),
                "top1_std": float(top1.std(ddof=1)) if len(top1) > 1 else 0.0,
                "folds": [round(100 * value, 1) for value in top1.tolist()],
                "won_lost_tied": [
                    int((top1 > base).sum()),
                    int((top1 < base).sum()),
                    int((top1 == base).sum()),
                ],
                "seconds": seconds,
                "seconds_vs_baseline": seconds / max(rows[0]["seconds"], 1e-9) if rows else 1.0,
            }
        )
    return rows


def print_table(run: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"{run}: test views (first row: baseline)")
    for column in ("views", "top-1 mean ± std", "folds", "vs baseline", "won/lost/tied", "time"):
        table.add_column(column, justify="left" if column in ("views", "folds") else "right")
    base = rows[0]["top1_mean"]
    for row in rows:
        table.add_row(
            row["views"],
            f"{100 * row['top1_mean']:.1f} ± {100 * row['top1_std']:.1f}%",
            ", ".join(f"{value:.1f}" for value in row["folds"]),
            f"{100 * (row['top1_mean'] - base):+.1f} pts",
            "/".join(str(n) for n in row["won_lost_tied"]),
            f"{row['seconds']:.0f} s ({row['seconds_vs_baseline']:.1f}x)",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a finished `resaction crossval` folder")
    parser.add_argument("--views", default="2x1,10x1,10x3", help="CLIPSxCROPS, baseline first")
    parser.add_argument("--out", type=Path, default=RESULTS / "test_views.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    views = parse_views(args.views)
    folds = [score_fold(path, views) for path in sorted(args.run.glob("fold_*"))]
    names = [f"{clips}x{crops}" for clips, crops in views]
    rows = summarise(folds, names)
    print_table(args.run.name, rows)
    saved = json.loads(args.out.read_text()) if args.out.is_file() else {}
    saved[args.run.name] = {
        "run": str(args.run),
        "command": f"python benchmarks/test_views.py {args.run} --views {args.views}",
        "threads": 1,
        "rows": rows,
        "folds": folds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(saved, indent=1) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
