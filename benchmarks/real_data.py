"""Cross-validated accuracy on the real datasets in ../shared/data/videos, by `resaction` commands.

Runs, in order, and resumes where it stopped (each fold is read back once finished):
1. small copies of the datasets (short side 128 px, H.264) so that decoding does not dominate;
2. a synthetic dataset (`resaction synth`) and one pretraining run per model on it;
3. `resaction crossval` for every (dataset, model, start) row, from scratch and from the
   synthetic checkpoint, plus the fight data without groups g44 and g45.

Writes benchmarks/results/real_data.json and prints a table (mean and sample standard deviation of
video-level top-1 over folds, against the ~55% motion-history-image baseline). Every command it
runs is printed first, so the table can be reproduced command by command.

    python benchmarks/real_data.py [--only fight,ps7] [--models tsn_resnet18,...]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "videos"
RUNS = ROOT / "runs" / "real"
RESULTS = ROOT / "benchmarks" / "results" / "real_data.json"
BASELINE_TOP1 = 0.55
MODELS = ("tsn_resnet18", "tsm_resnet18", "r2plus1d_18")
PRETRAIN_EPOCHS = {"r2plus1d_18": 8}
INPUT = ["-p", "clip_len=8", "-p", "sampling=segments", "-p", "resize=56", "-p", "crop=48"]
RECIPE = ["--epochs", "12", "--batch-size", "8", "--lr", "0.003", "--workers", "1"]
VIEWS = ["--clips", "2", "--crops", "1"]
DATASETS = {
    "fight": {
        "source": "surveillance_camera_fight",
        "args": ["--folds", "5"],
        "split": "5-fold grouped by source video (groups.csv)",
    },
    "fight_no_g44_g45": {
        "source": "surveillance_camera_fight",
        "args": ["--folds", "5", "--exclude-groups", "g44,g45"],
        "split": "as fight, without groups g44 and g45",
    },
    "ps7": {
        "source": "gt_cs4495_ps7",
        "args": ["--folds", "3", "--group-by", r"P(\d)"],
        "split": "leave one person out",
    },
}


def run(command: list[str]) -> None:
    print("$ " + shlex.join(["resaction", *command[3:]]), flush=True)
    subprocess.run(command, check=True)


def resaction(*args: str) -> list[str]:
    return [sys.executable, "-m", "resaction.cli", *args]


def small_copy(name: str, short_side: int = 128) -> Path:
    """The dataset re-encoded at ``short_side`` px: decoding 1080p H.264 would dominate training."""
    from resaction.data.manifests import VIDEO_EXTENSIONS
    from resaction.io import VideoReader
    from resaction.io.writer import VideoWriter

    source, target = SHARED / name, RUNS / "data" / f"{name}_{short_side}"
    videos = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
    for video in tqdm(videos, desc=f"small copy of {name}"):
        out = (target / video.relative_to(source)).with_suffix(".mp4")
        if out.is_file():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with (
            VideoReader(video, short_side=short_side) as reader,
            VideoWriter(out, reader.fps, crf=18, threads=1) as writer,
        ):
            for _, _, frame in reader.iter_frames():
                writer.write(frame)
    if (source / "groups.csv").is_file():
        shutil.copy(source / "groups.csv", target / "groups.csv")
    return target


def pretrain(model: str) -> Path:
    synth = RUNS / "data" / "synth"
    if not (synth / "manifest.csv").is_file():
        run(resaction("synth", "--out", str(synth), "-n", "30", "--seed", "1", "--size", "64",
                      "--frames", "24", "--fps", "15", "--clutter", "0.5", "--camera-motion",
                      "0.5", "--occlusion", "0.5", "--no-progress"))  # fmt: skip
    out = RUNS / "pretrain" / model
    epochs = str(PRETRAIN_EPOCHS.get(model, 12))
    resume = ["--resume"] if (out / "config.yaml").is_file() else []
    if not _finished(out, int(epochs)):
        run(resaction("train", "--data", str(synth), "--model", model, "--weights", "none",
                      "--out", str(out), *RECIPE, "--epochs", epochs, "--val-split", "0",
                      "-p", "flip=0", *INPUT, *resume, "--no-progress"))  # fmt: skip
    return out / "last.pt"


def _finished(run_dir: Path, epochs: int) -> bool:
    metrics = run_dir / "metrics.csv"
    return metrics.is_file() and len(metrics.read_text().strip().splitlines()) > epochs


def crossval(dataset: str, data: Path, model: str, start: str, weights: str) -> dict:
    out = RUNS / dataset / f"{model}_{start}"
    run(resaction("crossval", "--data", str(data), *DATASETS[dataset]["args"], "--model", model,
                  "--weights", weights, *RECIPE, *VIEWS, *INPUT, "--out", str(out),
                  "--no-progress"))  # fmt: skip
    record = json.loads((out / "crossval.json").read_text())
    return {
        "dataset": dataset,
        "split": DATASETS[dataset]["split"],
        "model": model,
        "start": start,
        "videos": record["protocol"]["num_videos"],
        "top1_mean": record["summary"]["top1"]["mean"],
        "top1_std": record["summary"]["top1"]["std"],
        "top1_folds": record["summary"]["top1"]["folds"],
        "mean_class_accuracy": record["summary"]["mean_class_accuracy"]["mean"],
        "vs_baseline_points": 100 * (record["summary"]["top1"]["mean"] - BASELINE_TOP1),
        "train_seconds": sum(f.get("train_seconds", 0) for f in record.get("folds", [])),
        "out": str(out.relative_to(ROOT)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="fight,ps7,fight_no_g44_g45")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--starts", default="scratch,synthetic")
    parser.add_argument(
        "--markdown", action="store_true", help="print the saved results as a Markdown table"
    )
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(RESULTS.read_text())["rows"]))
        return
    datasets, models = args.only.split(","), args.models.split(",")
    starts = args.starts.split(",")
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []
    started = time.perf_counter()
    for start in starts:
        for dataset in datasets:
            source = DATASETS[dataset]["source"]
            data = small_copy(source)
            for model in models:
                if dataset == "fight_no_g44_g45" and (start != "scratch" or model != models[0]):
                    continue
                weights = "none" if start == "scratch" else str(pretrain(model))
                row = crossval(dataset, data, model, start, weights)
                rows = [r for r in rows if (r["dataset"], r["model"], r["start"]) != (
                    dataset, model, start)] + [row]  # fmt: skip
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(
                    json.dumps({"baseline_top1": BASELINE_TOP1, "rows": rows}, indent=2)
                )
    print_table(rows)
    print(f"{time.perf_counter() - started:.0f} s; results in {RESULTS}")


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| dataset | model | start | videos | top-1 mean ± std | folds | vs baseline (55%) |",
        "| --- | --- | --- | ---: | ---: | --- | ---: |",
    ]
    for row in sorted(rows, key=lambda r: (r["dataset"], r["model"], r["start"])):
        folds = ", ".join(f"{100 * value:.1f}" for value in row["top1_folds"])
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['start']} | {row['videos']} | "
            f"{100 * row['top1_mean']:.1f} ± {100 * row['top1_std']:.1f}% | {folds} | "
            f"{row['vs_baseline_points']:+.1f} pts |"
        )
    return "\n".join(lines)


def print_table(rows: list[dict]) -> None:
    table = Table(title="Video-level top-1 over folds (mean ± sample std); MHI baseline ~55%")
    for column in ("dataset", "split", "model", "start", "videos", "top-1 %", "vs baseline"):
        table.add_column(column)
    for row in sorted(rows, key=lambda r: (r["dataset"], r["start"], r["model"])):
        table.add_row(
            row["dataset"],
            row["split"],
            row["model"],
            row["start"],
            str(row["videos"]),
            f"{100 * row['top1_mean']:.1f} ± {100 * row['top1_std']:.1f}",
            f"{row['vs_baseline_points']:+.1f} pts",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
