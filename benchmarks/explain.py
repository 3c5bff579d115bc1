"""Are the explanations faithful? Saliency against the actor's box, deletion curves, overlays.

Runs, in order, and resumes where it stopped (trained models and per-video results are kept in
--out, default runs/explain):
1. a training and a held-out synthetic dataset (`resaction synth`, clutter, camera motion and
   occlusion at 0.5; held-out with another seed), each video with its actor's box per frame;
2. `resaction train` for each model (random init, no flips: left and right are classes);
3. on the held-out videos, per model and method (Grad-CAM, occlusion), for the true class: the
   pointing game and the saliency mass in the actor's box, for the trained model, for an
   untrained model of the same family (same architecture, random weights) and for a centre
   prior; deletion curves (most salient patches hidden first, against random order);
4. on the real fight data (small copy of ../shared/data/videos/surveillance_camera_fight), a
   tsn_diff_resnet18 (--fight-checkpoint, or trained with the docs/real-data.md recipe): the
   share of saliency on the picture's border band and its top and bottom caption strips, per
   group (groups.csv), for the class the model predicted.

The measures are defined in benchmarks/explain_data.py. Writes benchmarks/results/explain.json
and prints tables; every command it runs is printed first.

    python benchmarks/explain.py [--models r3d_18,...] [--epochs 30] [--videos 100] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from explain_data import fight_record, summarise_fight, summarise_synthetic, synthetic_record
from real_data import RECIPE, _finished, resaction, small_copy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "explain.json"
MODELS = ("r3d_18", "tsm_resnet18", "tsn_diff_resnet18")
KNOBS = ["--clutter", "0.5", "--camera-motion", "0.5", "--occlusion", "0.5"]
FIGHT_MODEL = "tsn_diff_resnet18"
FIGHT_INPUT = ["-p", "clip_len=24", "-p", "sampling=segments", "-p", "resize=64", "-p", "crop=56"]
TIME_SLABS = 4
"""Occlusion and deletion patches span a quarter of the clip's frames."""

COMMANDS: list[str] = []


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--models", default=",".join(MODELS), help="models trained on the synthetic videos")
    add("--epochs", type=int, default=30, help="training epochs of each synthetic model")
    add("--train-videos", type=int, default=30, help="training videos per class (10 classes)")
    add("--videos", type=int, default=100, help="held-out synthetic videos explained")
    add("--methods", default="gradcam,occlusion", help="explanation methods, comma-separated")
    add("--occlusion-videos", type=int, default=20, help="of those, explained by occlusion")
    add("--size", type=int, default=112, help="synthetic frame side; the models see it whole")
    add("--frames", type=int, default=24, help="frames per synthetic video")
    add("--patch", type=int, help="occlusion and deletion patch side (default: size / 7)")
    add("--deletion-steps", type=int, default=10, help="points of a deletion curve, less one")
    add("--out", type=Path, default=ROOT / "runs" / "explain", help="data, models, explanations")
    add("--parts", default="synthetic,fight", help="synthetic, fight or both")
    add("--fight-checkpoint", type=Path, help="tsn_diff_resnet18 trained on the fight data")
    add("--fight-crossval", type=Path, help="a `resaction crossval` run on the fight data: each "
        "fold's model explains that fold's test videos (all held out)")  # fmt: skip
    add("--fight-epochs", type=int, default=30, help="epochs when training the fight model")
    add("--fight-videos", type=int, default=0, help="fight videos explained (0: all)")
    add("--max-steps-per-epoch", type=int, help="passed to train (for a quick smoke run)")
    add("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add("--results", type=Path, default=RESULTS, help="the JSON written (and read by --markdown)")
    add("--markdown", action="store_true", help="print the saved results as Markdown tables")
    return parser.parse_args()


def run(command: list[str], done: bool = False, resume: bool = False) -> None:
    """Print the command as a user would type it and remember it for the JSON; run it unless
    ``done`` (a finished step of an earlier run), with ``--resume`` when ``resume``."""
    shown = shlex.join(["resaction", *command[3:]]).replace(f"{ROOT}/", "")
    COMMANDS.append(shown)
    print("$ " + shown + ("  # done before, skipped" if done else ""), flush=True)
    if not done:
        subprocess.run([*command, *(["--resume"] if resume else [])], check=True)


def synthetic_data(args: argparse.Namespace, split: str) -> Path:
    """The training (seed 1) or held-out (seed 2) videos, generated once per setting."""
    per_class = args.train_videos if split == "train" else math.ceil(args.videos / 10)
    seed = "1" if split == "train" else "2"
    out = args.out / "data" / f"{split}_{args.size}px_{args.frames}f_n{per_class}"
    run(resaction("synth", "--out", str(out), "-n", str(per_class), "--seed", seed,
                  "--size", str(args.size), "--frames", str(args.frames), "--fps", "15",
                  *KNOBS, "--overwrite", "--no-progress"),
        done=(out / "manifest.csv").is_file())  # fmt: skip
    return out


def train(
    args: argparse.Namespace, model: str, data: Path, out: Path, epochs: int, extra: list[str]
) -> Path:
    """Train ``model`` on ``data`` into ``out`` for ``epochs`` (resuming an unfinished run) with
    the recipe of benchmarks/real_data.py; returns the last checkpoint."""
    steps = ["--max-steps-per-epoch", str(args.max_steps_per_epoch)]
    run(resaction("train", "--data", str(data), "--model", model, "--weights", "none",
                  "--out", str(out), *RECIPE, "--epochs", str(epochs), *extra,
                  *(steps if args.max_steps_per_epoch else []), "--no-progress"),
        done=_finished(out, epochs), resume=(out / "last.pt").is_file())  # fmt: skip
    return out / "last.pt"


def epoch_seconds(run_dir: Path) -> float | None:
    """Mean training seconds per epoch from the run's metrics.csv."""
    import csv

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        seconds = [float(row["train_seconds"]) for row in csv.DictReader(handle)]
    return float(np.mean(seconds)) if seconds else None


def predictors(checkpoint: Path, device: str) -> tuple[Any, Any]:
    """The trained model and an untrained one of the same family, classes and input."""
    from resaction.inference import Predictor
    from resaction.models import create_model
    from resaction.runtime.backends import TorchBackend
    from resaction.runtime.loading import load_model

    loaded = load_model(checkpoint, device=device)
    trained = Predictor.from_loaded(loaded)
    torch.manual_seed(0)
    kwargs = dict(loaded.extra.get("model_kwargs", {}))
    network = create_model(loaded.model_name, num_classes=len(loaded.classes), **kwargs)
    untrained = Predictor(
        TorchBackend(network, device),
        loaded.classes,
        loaded.spec,
        loaded.views,
        model_name=f"{loaded.model_name} (untrained)",
    )
    return trained, untrained


def heldout(data: Path, count: int) -> list[tuple[Path, str]]:
    """``count`` held-out videos, the classes taking turns (so a short run still sees them all)."""
    from resaction.data import read_manifest

    manifest = read_manifest(data / "manifest.csv")
    by_class: dict[str, list[Path]] = {}
    for entry in sorted(manifest, key=lambda e: str(e.path)):
        by_class.setdefault(manifest.classes[entry.label], []).append(entry.path)
    turns = [
        (videos[i], name)
        for i in range(max(map(len, by_class.values())))
        for name, videos in sorted(by_class.items())
        if i < len(videos)
    ]
    return turns[:count]


class Cache:
    """Per-video results of one (model, method), kept beside the checkpoint they came from."""

    def __init__(self, path: Path, checkpoint: Path, settings: dict[str, Any]) -> None:
        self.path = path
        self.stamp = {"checkpoint": str(checkpoint), "mtime_ns": checkpoint.stat().st_mtime_ns}
        self.stamp.update(settings)
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.records: dict[str, Any] = saved.get("records", {}) if saved.get("stamp") == (
            json.loads(json.dumps(self.stamp))) else {}  # fmt: skip

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps({"stamp": self.stamp, "records": self.records}))
        partial.replace(self.path)


def explain_synthetic(
    args: argparse.Namespace, model: str, checkpoint: Path, videos: list[tuple[Path, str]]
) -> dict[str, Any]:
    """Every method on the held-out ``videos`` for one model: per-video records."""
    trained, untrained = predictors(checkpoint, args.device)
    patch = args.patch or math.ceil(args.size / 7)
    found: dict[str, Any] = {}
    for method in args.methods.split(","):
        settings = {"patch": patch, "steps": args.deletion_steps}
        cache = Cache(args.out / "explanations" / f"{checkpoint.parent.name}_{method}.json",
                      checkpoint, settings)  # fmt: skip
        chosen = videos[: args.occlusion_videos] if method == "occlusion" else videos
        for index, (video, label) in enumerate(chosen):
            key = video.relative_to(args.out).as_posix()
            if key not in cache.records:
                print(f"{model} {method}: {key}", flush=True)
                cache.records[key] = synthetic_record(
                    trained, untrained, video, label, method,
                    size=(args.size, args.size), patch=patch, steps=args.deletion_steps,
                    slabs=TIME_SLABS, seed=index,
                )  # fmt: skip
                cache.save()
        found[method] = [cache.records[v.relative_to(args.out).as_posix()] for v, _ in chosen]
    return found


def fight_checkpoint(args: argparse.Namespace, data: Path) -> Path:
    """The given fight checkpoint, or one trained here with the docs/real-data.md recipe (and a
    grouped 20% validation split, whose videos the tables mark as held out)."""
    if args.fight_checkpoint:
        return args.fight_checkpoint
    out = args.out / "fight" / FIGHT_MODEL
    return train(
        args, FIGHT_MODEL, data, out, args.fight_epochs, [*FIGHT_INPUT, "--val-split", "0.2"]
    )


def fight_videos(loaded: Any, data: Path, limit: int) -> list[dict[str, Any]]:
    """The fight videos (all, or ``limit`` of them spread evenly over the groups), each marked
    held out when the checkpoint's own validation split (read from its config) kept it out of
    training."""
    from resaction.data import read_manifest, train_test_split

    manifest = read_manifest(data)
    config = loaded.extra.get("config") or {}
    held: set[Path] = set()
    if config.get("val_split") and Path(str(config.get("data"))).resolve() == data.resolve():
        _, test = train_test_split(manifest, config["val_split"], config.get("group_by"),
                                   int(config.get("seed", 0)))  # fmt: skip
        held = {entry.path.resolve() for entry in test}
    rows = [
        {
            "video": entry.path,
            "label": manifest.classes[entry.label],
            "group": entry.group or "-",
            "held_out": entry.path.resolve() in held,
        }
        for entry in sorted(manifest, key=lambda e: (e.group or "", str(e.path)))
    ]
    if limit:  # spread over the groups: every n-th video
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    return rows


def fight_folds(
    args: argparse.Namespace, data: Path
) -> list[tuple[Path, list[dict[str, Any]] | None]]:
    """(checkpoint, the videos it explains) pairs: one per fold of ``--fight-crossval`` (the
    fold's test videos), else the one fight checkpoint with ``None`` (its ``fight_videos``, read
    once the model is loaded)."""
    from resaction.data import read_manifest

    if not args.fight_crossval:
        return [(fight_checkpoint(args, data), None)]
    folds = []
    for fold in sorted(args.fight_crossval.glob("fold_*"), key=lambda d: int(d.name[5:])):
        checkpoint = Path(json.loads((fold / "fold.json").read_text())["checkpoint"])
        test = read_manifest(fold / "test.csv")
        rows = [
            {"video": e.path, "label": test.classes[e.label], "group": e.group or "-",
             "held_out": True}
            for e in test
        ]  # fmt: skip
        folds.append((checkpoint, rows))
    return folds


def explain_fight(args: argparse.Namespace) -> dict[str, Any]:
    """Border and caption-strip shares of the fight model's saliency, per video and method."""
    from resaction.inference import Predictor
    from resaction.runtime.loading import load_model

    data = small_copy("surveillance_camera_fight")
    folds = fight_folds(args, data)
    source = args.fight_crossval or folds[0][0]
    found: dict[str, Any] = {"checkpoint": str(source), "model": FIGHT_MODEL}
    for number, (checkpoint, rows) in enumerate(folds, start=1):
        loaded = load_model(checkpoint, device=args.device)
        found["model"] = loaded.model_name
        predictor = Predictor.from_loaded(loaded)
        videos = rows if rows is not None else fight_videos(loaded, data, args.fight_videos)
        for method in args.methods.split(","):
            name = f"fight_{method}" + (f"_fold{number}" if args.fight_crossval else "")
            cache = Cache(args.out / "explanations" / f"{name}.json", checkpoint, {})
            for row in videos:
                key = row["video"].relative_to(data).as_posix()
                if key not in cache.records:
                    print(f"fight {method}: {key}", flush=True)
                    record = fight_record(predictor, row["video"], method, TIME_SLABS)
                    cache.records[key] = {**{k: v for k, v in row.items() if k != "video"},
                                          **record}  # fmt: skip
                    cache.save()
            keys = [r["video"].relative_to(data).as_posix() for r in videos]
            found.setdefault(method, []).extend(cache.records[key] for key in keys)
    return found


SYNTHETIC_COLUMNS = (
    "model", "method", "videos", "top-1", "pointing game: trained / untrained / centre",
    "trained vs centre", "mass in box: trained / untrained / centre / box area",
    "deletion AUC: salient / random (salient lower)", "s per map",
)  # fmt: skip
FIGHT_COLUMNS = (
    "group", "classes", "videos (held out)", "predicted",
    "share: border / top / bottom strip", "their area of the input",
)  # fmt: skip


def percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def joined(values: list[float | None], digits: int = 1) -> str:
    return " / ".join(percent(v, digits) for v in values) + "%"


def synthetic_cells(row: dict[str, Any]) -> list[str]:
    point, mass, auc = row["pointing"], row["mass_in_box"], row["deletion_auc"]
    sources = ("trained", "untrained", "centre")
    gap = row["pointing_vs_centre_points"]
    deletion = " / ".join("-" if auc[k] is None else f"{auc[k]:.3f}" for k in ("salient", "random"))
    return [
        row["model"], row["method"], str(row["videos"]), percent(row["top1"]) + "%",
        joined([point[k] for k in sources]), "-" if gap is None else f"{gap:+.1f} pts",
        joined([*(mass[k] for k in sources), row["box_area"]]),
        f"{deletion} ({percent(row['deletion_wins'], 0)}%)", f"{row['seconds']['trained']:.2f}",
    ]  # fmt: skip


def fight_cells(row: dict[str, Any]) -> list[str]:
    shares, areas = row["shares"], row["areas"]
    predicted = ", ".join(f"{k} {v}" for k, v in sorted(row["predicted"].items()))
    return [
        row["group"], row["classes"], f"{row['videos']} ({row['held_out']})", predicted,
        joined(list(shares.values())), joined(list(areas.values())),
    ]  # fmt: skip


def fight_rows(result: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    methods = result.get("fight", {}).get("methods", {})
    return [(m, [*found["overall"], *found["groups"]]) for m, found in methods.items()]


def print_tables(result: dict[str, Any]) -> None:
    console = Console()
    if "synthetic" in result:
        table = Table(title="Saliency on the actor (held-out synthetic videos, true class)")
        for column in SYNTHETIC_COLUMNS:
            table.add_column(column)
        for row in result["synthetic"]["rows"]:
            table.add_row(*synthetic_cells(row))
        console.print(table)
        for model, timing in result["synthetic"]["timing"].items():
            seconds = timing["train_seconds_per_epoch"]
            console.print(f"{model}: {seconds or 0:.0f} s per training epoch", highlight=False)
    for method, rows in fight_rows(result):
        table = Table(title=f"Fight data, {method}: saliency share on borders and caption strips")
        for column in FIGHT_COLUMNS:
            table.add_column(column)
        for row in rows:
            table.add_row(*fight_cells(row))
        console.print(table)


def markdown_tables(result: dict[str, Any]) -> str:
    def table(columns: tuple[str, ...], cells: list[list[str]]) -> list[str]:
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        return lines + ["| " + " | ".join(row) + " |" for row in cells]

    lines: list[str] = []
    if "synthetic" in result:
        cells = [synthetic_cells(row) for row in result["synthetic"]["rows"]]
        lines += [*table(SYNTHETIC_COLUMNS, cells), ""]
    for method, rows in fight_rows(result):
        lines += [f"Fight data, {method}:", ""]
        lines += [*table(FIGHT_COLUMNS, [fight_cells(row) for row in rows]), ""]
    return "\n".join(lines)


def run_part(args: argparse.Namespace, part: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One part's results with the settings, commands and seconds of this run."""
    started, first_command = time.perf_counter(), len(COMMANDS)
    found = part()
    found["settings"] = {k: str(v) for k, v in vars(args).items()}
    found["commands"] = COMMANDS[first_command:]
    found["seconds"] = round(time.perf_counter() - started, 1)
    return found


SYNTHETIC_SETTINGS = (
    "epochs", "train_videos", "videos", "methods", "occlusion_videos", "size", "frames", "patch",
    "deletion_steps",
)  # fmt: skip
"""The settings a synthetic row depends on: saved rows made with others are not kept."""


def run_synthetic(args: argparse.Namespace, saved: dict[str, Any]) -> dict[str, Any]:
    """The synthetic part for ``--models``, beside the saved rows of the other models when those
    were made with the same settings."""
    models = args.models.split(",")
    before = saved.get("settings", {})
    if any(before.get(key) != str(getattr(args, key)) for key in SYNTHETIC_SETTINGS):
        saved = {}

    def part() -> dict[str, Any]:
        train_data = synthetic_data(args, "train")
        videos = heldout(synthetic_data(args, "heldout"), args.videos)
        synthetic_input = ["--val-split", "0", "-p", "flip=0"]
        synthetic_input += ["-p", f"resize={args.size}", "-p", f"crop={args.size}"]
        rows = [row for row in saved.get("rows", []) if row["model"] not in models]
        timing = {k: v for k, v in saved.get("timing", {}).items() if k not in models}
        for model in models:
            out = args.out / "models" / f"{model}_{args.size}px"
            checkpoint = train(args, model, train_data, out, args.epochs, synthetic_input)
            timing[model] = {"train_seconds_per_epoch": epoch_seconds(checkpoint.parent)}
            for method, records in explain_synthetic(args, model, checkpoint, videos).items():
                rows.append(summarise_synthetic(model, method, records))
        return {"rows": rows, "timing": timing}

    return run_part(args, part)


def explain_fight_part(args: argparse.Namespace) -> dict[str, Any]:
    found = explain_fight(args)
    return {
        "checkpoint": found.pop("checkpoint"),
        "model": found.pop("model"),
        "methods": {method: summarise_fight(records) for method, records in found.items()},
    }


def main() -> None:
    args = parse_args()
    args.out = args.out.resolve()
    if args.markdown:
        print(markdown_tables(json.loads(args.results.read_text())))
        return
    parts = set(args.parts.split(","))
    # A run keeps what earlier runs saved of the other part and of models it does not run; each
    # part keeps the settings, commands and seconds of the run that made it.
    result: dict[str, Any] = json.loads(args.results.read_text()) if args.results.is_file() else {}
    if "synthetic" in parts:
        result["synthetic"] = run_synthetic(args, result.get("synthetic", {}))
    if "fight" in parts:
        result["fight"] = run_part(args, lambda: explain_fight_part(args))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    print(f"results in {args.results}")


if __name__ == "__main__":
    main()
