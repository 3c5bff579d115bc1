"""``resaction explain``: where and when the model looked, for one clip of a video."""

from __future__ import annotations

from pathlib import Path

import typer

from resaction.cli.app import app, console
from resaction.cli.options import (
    CHECKPOINT_OPTION,
    CLASSES_OPTION,
    MODEL_OPTION,
    PROGRESS_OPTION,
    WEIGHTS_OPTION,
)
from resaction.cli.predict import load_predictor


@app.command()
def explain(
    video: Path = typer.Argument(..., help="The video to explain."),
    checkpoint: Path | None = CHECKPOINT_OPTION,
    model: str | None = MODEL_OPTION,
    weights: str | None = WEIGHTS_OPTION,
    classes: Path | None = CLASSES_OPTION,
    target: str | None = typer.Option(
        None, "--class", help="The class to explain (default: the clip's top-1 class)."
    ),
    method: str = typer.Option(
        "gradcam",
        "--method",
        help="gradcam or gradcam++ (PyTorch checkpoints), or occlusion (any model, ONNX too).",
    ),
    start: float | None = typer.Option(None, "--start", help="First second of the clip."),
    end: float | None = typer.Option(None, "--end", help="Last second of the clip."),
    patch: int | None = typer.Option(
        None, "--patch", min=1, help="Occlusion: patch side in input pixels (default: 1/14 crop)."
    ),
    patch_frames: int = typer.Option(2, "--patch-frames", min=1, help="Occlusion: patch frames."),
    batch_size: int = typer.Option(
        16, "--batch-size", "-b", min=1, help="Occlusion: masked clips per pass."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (default: <video name>_explain/ here)."
    ),
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Where and when the model looked in one clip: a heat-map MP4, temporal importance, JSON."""
    from resaction.explain import explain_video, write_explanation
    from resaction.outputs import check_output_dir

    out_dir = check_output_dir(out or Path(f"{video.stem}_explain"))
    predictor = load_predictor(checkpoint, model, weights, classes=classes)
    explanation = explain_video(
        predictor,
        video,
        target=target,
        method=method,
        start=start,
        end=end,
        patch=patch,
        patch_frames=patch_frames,
        batch_size=batch_size,
        progress=progress,
    )
    files = write_explanation(explanation, out_dir, progress=progress)
    clip = explanation.clip
    console.print(
        f"{video.name}: {explanation.method} for {explanation.target} "
        f"({explanation.probability:.1%}; top-1 {explanation.top} "
        f"{explanation.top_probability:.1%}) over {clip.num_frames} frames, "
        f"{clip.times[0]:.2f}-{clip.times[-1]:.2f} s"
    )
    peak = int(explanation.importance.argmax())
    console.print(f"most important frame: {clip.indices[peak]} at {clip.times[peak]:.2f} s")
    for name, path in files.items():
        console.print(f"  {name}: {path}")
