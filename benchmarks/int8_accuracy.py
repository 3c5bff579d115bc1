"""What int8 quantisation costs in accuracy on real held-out videos, pooled over every fold.

For each fold of a finished `resaction crossval` run: the fold's model (trained on the other folds)
is exported to ONNX, quantised to static int8 calibrated on its own training videos
(`fold_k/train.csv`), and both files are scored on the fold's held-out videos (`fold_k/test.csv`),
the way `resaction export` and `resaction quantize --calibrate ... --eval ...` do it. Pooling the
folds scores every video of the dataset once, so one video weighs 1/N of the accuracy, not 1/60.

    python benchmarks/int8_accuracy.py runs/real/fight/tsm_resnet18_scratch [...more runs]

Writes benchmarks/results/int8_accuracy.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from resaction.deploy.export import export_checkpoint
from resaction.deploy.quantize import quantize_onnx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "int8_accuracy.json"


def fold_dirs(run: Path) -> list[Path]:
    folds = sorted(run.glob("fold_*"), key=lambda p: int(p.name.split("_")[1]))
    if not folds:
        raise SystemExit(f"{run}: no fold_* folders (is it a `resaction crossval` output?)")
    return folds


def measure_run(run: Path, calib_videos: int) -> dict:
    rows = []
    for fold in fold_dirs(run):
        checkpoint = fold / "train" / "last.pt"
        artifacts = fold / "int8"
        onnx = artifacts / "model.onnx"
        if not onnx.is_file():
            export_checkpoint(checkpoint, onnx)
        result = quantize_onnx(
            onnx,
            fold / "train.csv",
            artifacts / "model.int8.onnx",
            calib_videos=calib_videos,
            eval_data=fold / "test.csv",
            progress=False,
        )
        comparison = result.comparison
        assert comparison is not None
        fp32, int8 = comparison.fp32.predictions, comparison.int8.predictions
        rows.append(
            {
                "fold": fold.name,
                "videos": comparison.num_videos,
                "fp32_correct": round(comparison.fp32.top1 * comparison.num_videos),
                "int8_correct": round(comparison.int8.top1 * comparison.num_videos),
                "same_label": sum(a == b for a, b in zip(fp32, int8, strict=True)),
                "fp32_ms": comparison.fp32.ms_per_clip,
                "int8_ms": comparison.int8.ms_per_clip,
            }
        )
        print(f"{run.name} {fold.name}: {rows[-1]}", flush=True)
    videos = sum(r["videos"] for r in rows)
    fp32_top1 = sum(r["fp32_correct"] for r in rows) / videos
    int8_top1 = sum(r["int8_correct"] for r in rows) / videos
    return {
        "run": str(run),
        "model": json.loads((run / "crossval.json").read_text())["protocol"].get("model"),
        "videos": videos,
        "fp32_top1": fp32_top1,
        "int8_top1": int8_top1,
        "points_lost": 100 * (fp32_top1 - int8_top1),
        "same_label": sum(r["same_label"] for r in rows) / videos,
        "speedup_onnx_fp32_to_int8": sum(r["fp32_ms"] for r in rows)
        / sum(r["int8_ms"] for r in rows),
        "folds": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--calib-videos", type=int, default=32)
    args = parser.parse_args()
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for run in args.runs:
        saved[str(run)] = measure_run(run, args.calib_videos)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(saved, indent=2))
    table = Table(title="fp32 vs int8 ONNX on every held-out video (all folds pooled)")
    for column in ("run", "model", "videos", "fp32 top-1", "int8 top-1", "lost", "same label"):
        table.add_column(column)
    for row in saved.values():
        table.add_row(
            Path(row["run"]).name,
            str(row["model"]),
            str(row["videos"]),
            f"{100 * row['fp32_top1']:.1f}%",
            f"{100 * row['int8_top1']:.1f}%",
            f"{row['points_lost']:+.1f} pts",
            f"{100 * row['same_label']:.0f}%",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
