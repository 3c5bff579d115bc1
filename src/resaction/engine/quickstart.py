"""The quick start: generate a dataset, train a temporal model and a frame-order-blind one, compare.

The synthetic classes come in reversed pairs (``move_left`` is ``move_right`` played backwards),
so a model that ignores frame order (TSN averages per-frame scores) cannot beat chance on them,
while a temporal model (a 3D ResNet, whose convolutions span time) can. Everything runs on a CPU in a few
minutes with no download: weights start from scratch, inputs are small, and horizontal flips are
off because they would turn ``move_left`` into ``move_right``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.table import Table

from resaction.engine.evaluate import EvalResult, evaluate
from resaction.engine.report import ReportFiles, ensure_output_dir, write_json, write_report

TEMPORAL_MODEL = "r3d_10"
ORDERLESS_MODEL = "tsn_resnet18"


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
    videos_per_class=24,
    frame_size=32,
    num_frames=16,
    clip_len=8,
    crop=32,
    epochs=10,
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
    chance: float
    extra: dict[str, Any] = field(default_factory=dict)


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
    from resaction.data.manifests import read_manifest
    from resaction.data.splits import train_test_split
    from resaction.data.synthetic import REVERSED_PAIRS, generate_dataset

    started = time.perf_counter()
    size = QUICK if quick else FULL
    out = ensure_output_dir(out)
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
    train_csv = train_part.to_csv(out / "train.csv")
    test_part.to_csv(out / "test.csv")
    reversed_classes = [
        name for pair in REVERSED_PAIRS for name in pair if name in manifest.classes
    ]
    outcomes = [
        _train_and_test(
            name,
            train_csv,
            test_part.entries,
            manifest.classes,
            reversed_classes,
            size,
            out,
            seed=seed,
            progress=progress,
            num_workers=num_workers,
        )
        for name in (TEMPORAL_MODEL, ORDERLESS_MODEL)
    ]
    held_out = test_part.entries[0]
    prediction = predict_one(
        outcomes[0].checkpoint, held_out.path, manifest.classes[held_out.label]
    )
    plot = plot_comparison(outcomes, 1.0 / 2, out / "quickstart.png")
    result = QuickstartResult(
        out=out,
        outcomes=outcomes,
        prediction=prediction,
        plots=[plot, *(o.report.confusion_png for o in outcomes)],
        seconds=time.perf_counter() - started,
        chance=0.5,
        extra={
            "train_videos": len(train_part),
            "test_videos": len(test_part),
            "classes": manifest.classes,
            "reversed_pairs": REVERSED_PAIRS,
        },
    )
    write_json(_summary(result, size), out / "quickstart.json")
    return result


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
    """Overall and reversed-pair accuracy of each model, with chance on the pairs marked."""
    figure = Figure(figsize=(5.5, 3.6))
    axes = figure.add_subplot()
    positions = np.arange(len(outcomes))
    width = 0.38
    overall = [100 * o.accuracy for o in outcomes]
    pairs = [100 * o.reversed_pair_accuracy for o in outcomes]
    axes.bar(positions - width / 2, overall, width, label="all classes")
    axes.bar(positions + width / 2, pairs, width, label="reversed-pair classes")
    axes.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance on a pair")
    axes.set_xticks(positions, labels=[o.model for o in outcomes])
    axes.set_ylim(0, 105)
    axes.set_ylabel("video top-1 on test (%)")
    axes.set_title("Frame order matters: temporal model vs TSN")
    axes.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def _summary(result: QuickstartResult, size: QuickstartSize) -> dict[str, Any]:
    return {
        "seconds": round(result.seconds, 1),
        "size": size.__dict__,
        **result.extra,
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
    table = Table(title="Quick start: test accuracy (video level)")
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
