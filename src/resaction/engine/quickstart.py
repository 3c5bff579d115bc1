"""The quick start: generate a dataset, train a temporal model and a frame-order-blind one, compare.

The synthetic classes come in reversed pairs (``move_left`` is ``move_right`` played backwards).
A model that ignores frame order (TSN averages per-frame scores) can at best tell which pair a
video belongs to, so it scores 50% on those classes at most, while a temporal model (a 3D ResNet,
whose convolutions span time) can tell the two apart. Everything runs on a CPU in a few minutes
with no download: weights start from scratch, inputs are small, and horizontal flips are off
because a flip turns ``move_left`` into ``move_right``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.table import Table

from resaction.engine.evaluate import EvalResult, evaluate
from resaction.engine.report import ReportFiles, ensure_output_dir, write_json, write_report

TEMPORAL_MODEL = "r3d_10"
ORDERLESS_MODEL = "tsn_resnet18"
ORDER_BLIND_CEILING = "best a frame-order-blind model can do on a pair"


@dataclass(frozen=True)
class QuickstartSize:
    """How big the quick start is: data, input and training length."""

    videos_per_class: int
    frame_size: int
    num_frames: int
    clip_len: int
    crop: int
    epochs: int
    batch_size: int = 8
    lr: float = 0.003
    test_size: float = 0.25
    clutter: float = 0.3
    camera_motion: float = 0.3
    occlusion: float = 0.3
    classes: tuple[str, ...] | None = None


FULL = QuickstartSize(
    videos_per_class=32, frame_size=32, num_frames=16, clip_len=8, crop=32, epochs=12
)
QUICK = QuickstartSize(
    videos_per_class=48,
    frame_size=32,
    num_frames=16,
    clip_len=8,
    crop=32,
    epochs=6,
    classes=("move_left", "move_right", "rotate_anticlockwise", "rotate_clockwise", "still"),
)


@dataclass
class ModelOutcome:
    """One trained model and how it did on the test videos."""

    model: str
    checkpoint: Path
    result: EvalResult
    reversed_pair_accuracy: float
    train_seconds: float
    report: ReportFiles

    @property
    def accuracy(self) -> float:
        return self.result.top1


@dataclass
class QuickstartResult:
    out: Path
    outcomes: list[ModelOutcome]
    prediction: dict[str, Any]
    plots: list[Path]
    seconds: float
    classes: list[str]
    reversed_pairs: list[tuple[str, str]]
    train_videos: int
    test_videos: int

    @property
    def chance(self) -> float:
        """Accuracy of guessing among all classes."""
        return 1.0 / len(self.classes)


def quickstart_preprocess(size: QuickstartSize) -> dict[str, Any]:
    """Small input, no flips (a flip swaps left and right, clockwise and anticlockwise)."""
    return {
        "clip_len": size.clip_len,
        "sampling": "segments",
        "resize": size.crop,
        "crop": size.crop,
        "flip": 0.0,
    }


def run_quickstart(
    out: str | Path = "runs/quickstart",
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    num_workers: int | None = None,
) -> QuickstartResult:
    """Generate, split (groups whole), train R3D-10 and TSN, evaluate both, predict one video."""
    from resaction.data.synthetic import REVERSED_PAIRS

    started = time.perf_counter()
    size = QUICK if quick else FULL
    out = ensure_output_dir(out)
    classes, train_csv, test_entries, train_videos = _make_data(out, size, seed, progress)
    pairs = [pair for pair in REVERSED_PAIRS if set(pair) <= set(classes)]
    reversed_classes = [name for pair in pairs for name in pair]
    outcomes = [
        _train_and_test(
            name,
            train_csv,
            test_entries,
            classes,
            reversed_classes,
            size,
            out,
            seed=seed,
            progress=progress,
            num_workers=num_workers,
        )
        for name in (TEMPORAL_MODEL, ORDERLESS_MODEL)
    ]
    held_out = next(e for e in test_entries if classes[e.label] in reversed_classes)
    prediction = predict_one(outcomes[0].checkpoint, held_out.path, classes[held_out.label])
    result = QuickstartResult(
        out=out,
        outcomes=outcomes,
        prediction=prediction,
        plots=[
            plot_comparison(outcomes, 1.0 / len(classes), out / "quickstart.png"),
            *(o.report.confusion_png for o in outcomes),
        ],
        seconds=time.perf_counter() - started,
        classes=classes,
        reversed_pairs=pairs,
        train_videos=train_videos,
        test_videos=len(test_entries),
    )
    write_json(_summary(result, size), out / "quickstart.json")
    return result


def _make_data(
    out: Path, size: QuickstartSize, seed: int, progress: bool
) -> tuple[list[str], Path, list[Any], int]:
    """Generate the videos and split them with every video and its reverse on one side."""
    from resaction.data.manifests import read_manifest
    from resaction.data.splits import train_test_split
    from resaction.data.synthetic import generate_dataset

    manifest_path = generate_dataset(
        out / "data",
        size.videos_per_class,
        clutter=size.clutter,
        camera_motion=size.camera_motion,
        occlusion=size.occlusion,
        seed=seed,
        size=size.frame_size,
        num_frames=size.num_frames,
        classes=size.classes,
        overwrite=True,
        progress=progress,
    )
    manifest = read_manifest(manifest_path)
    train_part, test_part = train_test_split(manifest, test_size=size.test_size, seed=seed)
    test_part.to_csv(out / "test.csv")
    return (
        manifest.classes,
        train_part.to_csv(out / "train.csv"),
        test_part.entries,
        len(train_part),
    )


def _train_and_test(
    model: str,
    train_csv: Path,
    test_entries: list[Any],
    classes: list[str],
    reversed_classes: list[str],
    size: QuickstartSize,
    out: Path,
    *,
    seed: int,
    progress: bool,
    num_workers: int | None,
) -> ModelOutcome:
    from resaction.engine.config import TrainConfig
    from resaction.engine.trainer import train
    from resaction.models.checkpoint import load_checkpoint
    from resaction.models.registry import default_preprocess

    config = TrainConfig(
        data=str(train_csv),
        model=model,
        weights="none",
        out=str(out / model),
        epochs=size.epochs,
        batch_size=size.batch_size,
        val_split=0.0,
        preprocess=quickstart_preprocess(size),
        protocol={"num_clips": 1, "num_crops": 1},
        lr=size.lr,
        seed=seed,
        num_workers=num_workers,
        select="last",
        monitor="train_loss",
        progress=progress,
    )
    started = time.perf_counter()
    trained = train(config)
    train_seconds = time.perf_counter() - started
    bundle = load_checkpoint(trained.last_checkpoint)
    result = evaluate(
        bundle.model,
        test_entries,
        classes,
        preprocess={**default_preprocess(model), **bundle.preprocess},
        protocol={"num_clips": 1, "num_crops": 1},
        batch_size=16,
        num_workers=num_workers,
        progress=progress,
    )
    result.protocol.update(checkpoint=str(trained.last_checkpoint), model=model)
    report = write_report(result, out / model / "eval")
    return ModelOutcome(
        model=model,
        checkpoint=Path(trained.last_checkpoint),
        result=result,
        reversed_pair_accuracy=result.accuracy_on(reversed_classes),
        train_seconds=train_seconds,
        report=report,
    )


def predict_one(checkpoint: Path, video: Path, true_class: str) -> dict[str, Any]:
    """Run the trained model on one held-out video with the inference API."""
    from resaction.inference import Predictor

    prediction = Predictor.from_checkpoint(checkpoint).predict(video, topk=3)
    top = [(name, float(p)) for name, p in zip(prediction.labels, prediction.probs, strict=True)]
    return {"video": str(video), "true": true_class, "top": top}


def plot_comparison(outcomes: list[ModelOutcome], chance: float, path: Path) -> Path:
    """Overall and reversed-pair accuracy of each model, with chance and the order-blind ceiling."""
    figure = Figure(figsize=(6.0, 3.8))
    axes = figure.add_subplot()
    positions = np.arange(len(outcomes))
    width = 0.38
    overall = [100 * o.accuracy for o in outcomes]
    pairs = [100 * o.reversed_pair_accuracy for o in outcomes]
    axes.bar(positions - width / 2, overall, width, label="all classes")
    axes.bar(positions + width / 2, pairs, width, label="reversed-pair classes")
    axes.axhline(50, color="tab:red", linestyle="--", linewidth=1, label=ORDER_BLIND_CEILING)
    axes.axhline(100 * chance, color="grey", linestyle=":", linewidth=1, label="chance")
    axes.set_xticks(positions, labels=[o.model for o in outcomes])
    axes.set_ylim(0, 105)
    axes.set_ylabel("video top-1 on test videos (%)")
    axes.set_title("Frame order matters: 3D CNN vs TSN")
    axes.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def _summary(result: QuickstartResult, size: QuickstartSize) -> dict[str, Any]:
    return {
        "seconds": round(result.seconds, 1),
        "size": asdict(size),
        "classes": result.classes,
        "reversed_pairs": result.reversed_pairs,
        "train_videos": result.train_videos,
        "test_videos": result.test_videos,
        "chance": result.chance,
        "models": [
            {
                "model": o.model,
                "accuracy": o.accuracy,
                "reversed_pair_accuracy": o.reversed_pair_accuracy,
                "mean_class_accuracy": o.result.metrics["mean_class_accuracy"],
                "train_seconds": round(o.train_seconds, 1),
                "checkpoint": str(o.checkpoint),
                "protocol": o.result.protocol,
            }
            for o in result.outcomes
        ],
        "prediction": result.prediction,
        "plots": [str(p) for p in result.plots],
    }


def quickstart_table(result: QuickstartResult) -> Table:
    table = Table(
        title=f"Quick start: accuracy on {result.test_videos} test videos",
        caption=f"chance {100 * result.chance:.0f}%; on reversed pairs a frame-order-blind "
        "model can reach 50% at best",
    )
    table.add_column("model")
    table.add_column("all classes", justify="right")
    table.add_column("reversed pairs", justify="right")
    table.add_column("train time", justify="right")
    for outcome in result.outcomes:
        table.add_row(
            outcome.model,
            f"{100 * outcome.accuracy:.1f}%",
            f"{100 * outcome.reversed_pair_accuracy:.1f}%",
            f"{outcome.train_seconds:.0f} s",
        )
    return table
