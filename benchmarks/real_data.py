"""Cross-validated accuracy on the real datasets in ../shared/data/videos, by `resaction` commands.

Runs, in order, and resumes where it stopped (each fold is read back once finished):
1. small copies of the datasets (short side 128 px, H.264) so that decoding does not dominate;
2. the classic baseline (motion history images, Hu moments, nearest neighbour:
   `benchmarks/mhi_baseline.py`) on exactly the folds crossval makes, and a second one that sees
   only how much moves (motion-energy statistics, logistic regression; a row of the table);
3. a synthetic dataset (`resaction synth`) and one pretraining run per model on it;
4. for the "selfsup" and "contrastive" starts, one self-supervised run (`resaction pretrain`,
   `--method speed` or `--method contrastive`) per model on the unlabelled footage of every
   dataset in ../shared/data/videos that is not evaluated here (small copies; the fight data and
   PS7 are left out whole, so no fold's test videos are ever seen);
5. for the "hockey" start, one supervised run per model on the labelled fight / noFight clips of
   hockey_fight and hockey_fight_more (NHL broadcasts, another kind of footage than any evaluated
   dataset; what a user with labelled clips of a related task would start from);
6. `resaction crossval` for every (dataset, model, start) row, from scratch, from the synthetic
   checkpoint, from the self-supervised one and from the hockey one, plus the fight data without
   groups g44 and g45.

Writes benchmarks/results/real_data.json (and each row's per-video test scores under
benchmarks/results/real_data_scores/, which fusion reads) and prints a table (mean and sample
standard deviation of video-level top-1 over folds, against the baseline measured on the same
folds). Every command it runs is printed first, so the table can be reproduced command by command.

    python benchmarks/real_data.py [--only fight,ps7] [--models tsn_resnet18,...]
        [--starts scratch,synthetic,selfsup,contrastive,hockey] [--finetune sgd|adamw]
        [--size 56|80|112] [--device cuda]

``--size`` sets the cross-validation's crop (the short side is 8/7 of it; pretraining stays at
56 px): rows ``<start> 80px`` in folders ``<model>_<start>_80px``, the input-size study.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from real_data_fusion import fusion_rows
from real_data_report import markdown_table, plot, print_table
from real_data_scores import group_table, save_scores, scores_path, write_scores

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "videos"
RUNS = ROOT / "runs" / "real"
RESULTS = ROOT / "benchmarks" / "results" / "real_data.json"
MODELS = ("tsn_resnet18", "tsm_resnet18", "r2plus1d_18", "tsn_diff_resnet18", "tsm_diff_resnet18")
SEGMENTS = 8
SIZE = 56
"""The recipe's crop (from a short side of 64, for CPU time); ``--size`` measures others."""
EPOCHS = 30
RECIPE = ["--batch-size", "8", "--lr", "0.01", "--workers", "1"]
FINETUNE = {"sgd": [], "adamw": ["--optimizer", "adamw", "--lr", "0.001"]}
"""How crossval trains: the recipe's SGD at 0.01, or AdamW at 0.001 (rows ``<start> adamw``)."""
PRETRAIN_EPOCHS_DEFAULT = 12
PRETRAIN_EPOCHS = {"r2plus1d_18": 8}
SELFSUP_EPOCHS = 15
RELATED = ("hockey_fight", "hockey_fight_more")
"""Labelled fight / noFight clips of another kind, trained on for the ``hockey`` start."""
VIEWS = ["--clips", "2", "--crops", "1"]
ENERGY_BASELINE = "motion energy, logistic regression (baseline)"
DATASETS = {
    "fight": {
        "source": "surveillance_camera_fight",
        "folds": 5,
        "split": "5-fold grouped by source video (groups.csv)",
    },
    "fight_no_g44_g45": {
        "source": "surveillance_camera_fight",
        "folds": 5,
        "exclude": ("g44", "g45"),
        "split": "as fight, without groups g44 and g45",
    },
    "ps7": {
        "source": "gt_cs4495_ps7",
        "folds": 3,
        "group_by": r"P(\d)",
        "split": "leave one person out",
    },
}


def split_args(dataset: str) -> list[str]:
    spec = DATASETS[dataset]
    args = ["--folds", str(spec["folds"])]
    if spec.get("group_by"):
        args += ["--group-by", spec["group_by"]]
    if spec.get("exclude"):
        args += ["--exclude-groups", ",".join(spec["exclude"])]
    return args


def baseline(dataset: str, data: Path, method: str = "mhi") -> dict:
    """A classic baseline (``mhi_baseline.py --method``) on the folds crossval makes for
    ``dataset`` (seed, groups, exclusions); its per-video scores are saved like a model's
    (``<dataset>/<method>_baseline.json``)."""
    from mhi_baseline import crossval_baseline

    spec = DATASETS[dataset]
    args = shlex.join(split_args(dataset))
    print(f"$ python benchmarks/mhi_baseline.py {data} {args} --method {method}")
    result = crossval_baseline(
        data, spec["folds"], spec.get("group_by"), spec.get("exclude", ()), method=method
    )
    scores = scores_path(dataset, f"{method}_baseline")
    write_scores(result.pop("classes"), result.pop("scores"), scores)
    return {"dataset": dataset, "split": spec["split"], **result}


def energy_row(dataset: str, data: Path, reference: float) -> dict:
    """The motion-energy baseline as a row of the table, against the MHI baseline."""
    result = baseline(dataset, data, "energy")
    return {
        **result,
        "model": ENERGY_BASELINE,
        "start": "-",
        "vs_baseline_points": 100 * (result["top1_mean"] - reference),
    }


def model_input(model: str, size: int = SIZE) -> list[str]:
    """8 segments for every model (one frame each, or a run of frames for the difference
    models), cropped to ``size`` from a short side of ``size`` x 8/7 (56 from 64)."""
    from resaction.models import default_preprocess

    frames = SEGMENTS * int(default_preprocess(model).get("segment_len", 1))
    resize = round(size * 8 / 7)
    return ["-p", f"clip_len={frames}", "-p", "sampling=segments", "-p", f"resize={resize}",
            "-p", f"crop={size}"]  # fmt: skip


def row_variant(start: str, finetune: str, size: int) -> tuple[str, str]:
    """A row's start label (``scratch``, ``selfsup adamw``, ``scratch adamw 112px``) and the
    suffix of its run folder."""
    parts = [
        part
        for part in (finetune if finetune != "sgd" else "", f"{size}px" if size != SIZE else "")
        if part
    ]
    return " ".join([start, *parts]), "".join(f"_{part}" for part in parts)


def run(command: list[str]) -> None:
    print("$ " + shlex.join(["resaction", *command[3:]]), flush=True)
    subprocess.run(command, check=True)


def resaction(*args: str) -> list[str]:
    return [sys.executable, "-m", "resaction.cli", *args]


def small_copy(name: str, short_side: int = 128) -> Path:
    """The dataset re-encoded at ``short_side`` px: decoding 1080p H.264 would dominate training."""
    from resaction.io import VideoReader
    from resaction.io.video_files import VIDEO_EXTENSIONS
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


def synthetic_data() -> Path:
    synth = RUNS / "data" / "synth"
    if not (synth / "manifest.csv").is_file():
        run(resaction("synth", "--out", str(synth), "-n", "30", "--seed", "1", "--size", "64",
                      "--frames", "24", "--fps", "15", "--clutter", "0.5", "--camera-motion",
                      "0.5", "--occlusion", "0.5", "--no-progress"))  # fmt: skip
    return synth / "manifest.csv"


def related_data() -> Path:
    """A manifest of the ``RELATED`` datasets' small copies, labelled by their class folders."""
    videos = [video for name in RELATED for video in sorted(small_copy(name).rglob("*.mp4"))]
    manifest = RUNS / "data" / "hockey.csv"
    manifest.write_text("path,label\n" + "".join(f"{v},{v.parent.name}\n" for v in videos))
    return manifest


SUPERVISED_STARTS = {
    "synthetic": (synthetic_data, "pretrain", ["-p", "flip=0"]),
    "hockey": (related_data, "pretrain_hockey", []),
}
"""Per supervised start: its training data, its runs/ folder, extra train flags (left and right
are classes in the synthetic videos, so no flips there)."""


def pretrain(model: str, device: list[str], start: str = "synthetic") -> Path:
    """Supervised pretraining for ``start`` (``SUPERVISED_STARTS``); its last checkpoint."""
    data, folder, extra = SUPERVISED_STARTS[start]
    out = RUNS / folder / model
    epochs = str(PRETRAIN_EPOCHS.get(model, PRETRAIN_EPOCHS_DEFAULT))
    resume = ["--resume"] if (out / "config.yaml").is_file() else []
    if not _finished(out, int(epochs)):
        run(resaction("train", "--data", str(data()), "--model", model, "--weights", "none",
                      "--out", str(out), *RECIPE, "--epochs", epochs, "--val-split", "0",
                      *extra, *model_input(model), *device, *resume,
                      "--no-progress"))  # fmt: skip
    return out / "last.pt"


def footage() -> Path:
    """A list of every video of the datasets not evaluated here (small copies): unlabelled footage
    for self-supervised pretraining, with no video of any evaluated dataset in it."""
    evaluated = {spec["source"] for spec in DATASETS.values()}
    names = sorted(d.name for d in SHARED.iterdir() if d.is_dir() and d.name not in evaluated)
    videos = [video for name in names for video in sorted(small_copy(name).rglob("*.mp4"))]
    listing = RUNS / "footage" / "unlabelled.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{video}\n" for video in videos))
    return listing


def selfsup(model: str, device: list[str], method: str = "speed") -> Path:
    """``resaction pretrain --method METHOD`` on ``footage()``; its last checkpoint."""
    out = RUNS / ("selfsup" if method == "speed" else method) / model
    resume = ["--resume"] if (out / "config.yaml").is_file() else []
    if not _finished(out, SELFSUP_EPOCHS):
        run(resaction("pretrain", "--data", str(footage()), "--model", model, "--method", method,
                      "--out", str(out), "--epochs", str(SELFSUP_EPOCHS), "--batch-size", "8",
                      "--workers", "1", *model_input(model), *device, *resume,
                      "--no-progress"))  # fmt: skip
    return out / "last.pt"


def start_weights(start: str, model: str, device: list[str]) -> str:
    if start == "scratch":
        return "none"
    if start == "selfsup":
        return str(selfsup(model, device))
    if start == "contrastive":
        return str(selfsup(model, device, "contrastive"))
    if start in SUPERVISED_STARTS:
        return str(pretrain(model, device, start))
    raise SystemExit(f"unknown start {start!r}: scratch, synthetic, selfsup, contrastive or hockey")


def _finished(run_dir: Path, epochs: int) -> bool:
    metrics = run_dir / "metrics.csv"
    return metrics.is_file() and len(metrics.read_text().strip().splitlines()) > epochs


def crossval(
    dataset: str,
    data: Path,
    model: str,
    start: str,
    weights: str,
    reference: float,
    finetune: str = "sgd",
    size: int = SIZE,
    device: list[str] | None = None,
) -> dict:
    label, suffix = row_variant(start, finetune, size)
    out = RUNS / dataset / f"{model}_{start}{suffix}"
    run(resaction("crossval", "--data", str(data), *split_args(dataset), "--model", model,
                  "--epochs", str(EPOCHS), "--weights", weights, *RECIPE, *FINETUNE[finetune],
                  *VIEWS, *model_input(model, size), *(device or []), "--out", str(out),
                  "--no-progress"))  # fmt: skip
    record = json.loads((out / "crossval.json").read_text())
    save_scores(out, data, scores_path(dataset, out.name), DATASETS[dataset].get("group_by"))
    return {
        "dataset": dataset,
        "split": DATASETS[dataset]["split"],
        "model": model,
        "start": label,
        "finetune": finetune,
        "input_size": size,
        "videos": record["protocol"]["num_videos"],
        "top1_mean": record["summary"]["top1"]["mean"],
        "top1_std": record["summary"]["top1"]["std"],
        "top1_folds": record["summary"]["top1"]["folds"],
        "mean_class_accuracy": record["summary"]["mean_class_accuracy"]["mean"],
        "vs_baseline_points": 100 * (record["summary"]["top1"]["mean"] - reference),
        "train_seconds": sum(f.get("train_seconds", 0) for f in record.get("folds", [])),
        "out": str(out.relative_to(ROOT)),
    }


class Results:
    """real_data.json, read again and merged on every write, so that runners started apart (a
    fight row beside a PS7 row) never drop each other's rows."""

    def __init__(self, path: Path = RESULTS) -> None:
        self.path = path

    def read(self) -> dict:
        saved = json.loads(self.path.read_text()) if self.path.is_file() else {}
        return {"baselines": saved.get("baselines", {}), "rows": saved.get("rows", [])}

    def add(self, rows: Sequence[dict] = (), baselines: dict[str, dict] | None = None) -> dict:
        saved = self.read()
        saved["baselines"].update(baselines or {})
        keys = {(r["dataset"], r["model"], r["start"]) for r in rows}
        kept = [r for r in saved["rows"] if (r["dataset"], r["model"], r["start"]) not in keys]
        saved["rows"] = kept + list(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(saved, indent=2))
        partial.replace(self.path)
        return saved


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="fight,ps7,fight_no_g44_g45")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated; 'none': the baselines only"
    )
    parser.add_argument("--starts", default="scratch,synthetic")
    parser.add_argument("--finetune", default="sgd", choices=sorted(FINETUNE))
    parser.add_argument(
        "--size",
        type=int,
        default=SIZE,
        help="crop size of the cross-validation (rows '<start> Npx')",
    )
    parser.add_argument(
        "--device", help="passed to crossval and pretrain (cuda where a GPU is lent)"
    )
    parser.add_argument(
        "--fuse",
        metavar="RGB+MOTION",
        help="also late-fuse the two models' cross-validations, e.g. tsn_resnet18+tsn_diff_resnet18"
        " (from their saved scores; a model --models does not name runs only if it has none)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the saved results as a Markdown table"
    )
    parser.add_argument("--plot", type=Path, help="draw the saved results into this PNG")
    parser.add_argument(
        "--groups",
        metavar="DATASET",
        help="print each saved row's top-1 per group of DATASET (from its saved scores)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    results = Results()
    if args.groups:
        print(group_table(args.groups))
        return
    if args.markdown or args.plot:
        saved = results.read()
        if args.markdown:
            print(markdown_table(saved["rows"], saved["baselines"]))
        if args.plot:
            print(f"wrote {plot(saved['rows'], saved['baselines'], args.plot, DATASETS)}")
        return
    datasets = args.only.split(",")
    models = [model for model in args.models.split(",") if model not in ("", "none")]
    fused = tuple(args.fuse.split("+")) if args.fuse else ()
    if fused and len(fused) != 2:
        raise SystemExit("--fuse takes two models: RGB+MOTION")
    named = set(models)
    models += [model for model in fused if model not in models]
    device = ["--device", args.device] if args.device else []
    started = time.perf_counter()
    for start in args.starts.split(","):
        for dataset in datasets:
            data = small_copy(DATASETS[dataset]["source"])
            if dataset not in results.read()["baselines"]:
                results.add(baselines={dataset: baseline(dataset, data)})
            reference = results.read()["baselines"][dataset]["top1_mean"]
            if not any(
                r["dataset"] == dataset and r["model"] == ENERGY_BASELINE
                for r in results.read()["rows"]
            ):
                results.add([energy_row(dataset, data, reference)])
            if dataset == "fight_no_g44_g45" and start != "scratch":
                continue
            label, suffix = row_variant(start, args.finetune, args.size)
            for model in models:
                saved_scores = scores_path(dataset, f"{model}_{start}{suffix}")
                if model not in named and saved_scores.is_file():
                    continue
                weights = start_weights(start, model, device)
                row = crossval(
                    dataset, data, model, start, weights, reference, args.finetune, args.size,
                    device,
                )  # fmt: skip
                results.add([row])
            if fused:
                runs = tuple(scores_path(dataset, f"{model}_{start}{suffix}") for model in fused)
                split = DATASETS[dataset]["split"]
                results.add(fusion_rows(dataset, split, fused, runs, label, reference))
    saved = results.read()
    print_table(saved["rows"], saved["baselines"])
    print(f"{time.perf_counter() - started:.0f} s; results in {RESULTS}")


if __name__ == "__main__":
    main()
