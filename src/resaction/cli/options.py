"""Options several commands share, declared once so their flags and help read the same, and
the checks they need."""

from __future__ import annotations

import typer

from resaction.errors import ConfigError

CHECKPOINT_OPTION = typer.Option(
    None, "--checkpoint", "-c", help="A resaction checkpoint (.pt) or an exported .onnx file."
)
MODEL_OPTION = typer.Option(
    None,
    "--model",
    "-m",
    help="With --weights: a registered model; with --checkpoint: "
    "refuse a checkpoint of another model.",
)
WEIGHTS_OPTION = typer.Option(
    None, "--weights", help="Named weights for --model, e.g. kinetics400."
)
CLASSES_OPTION = typer.Option(
    None, "--classes", help="Class names, one per line, for an .onnx file without metadata."
)
COMPILE_OPTION = typer.Option(
    False,
    "--compile",
    help="torch.compile the PyTorch model with freezing (the first batch pays the compilation; "
    "eager with a warning if it fails).",
)
PROGRESS_OPTION = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")
DATA_BACKGROUND_OPTION = typer.Option(
    None,
    "--background",
    help="Segment annotations: a class NAME for the stretches between labelled segments.",
)
SKIP_BAD_ROWS_OPTION = typer.Option(
    False,
    "--skip-bad-rows",
    help="Segment annotations: skip (and list) bad rows instead of stopping.",
)
ALARM_BACKGROUND_OPTION = typer.Option(
    None, "--background", help="The class that raises no alarms (default: the model's, if any)."
)
WINDOW_OPTION = typer.Option(
    None, "--window", min=1, help="Frames per window (default: the model's clip length)."
)
WINDOW_SECONDS_OPTION = typer.Option(
    None,
    "--window-seconds",
    help="Seconds per window, the model's units spread over it (default: the span the model's "
    "training clips covered, when its checkpoint records one).",
)
CLIPS_OPTION = typer.Option(
    None, "--clips", min=1, help="Clips per video (default: the checkpoint's protocol)."
)
CROPS_OPTION = typer.Option(
    None, "--crops", help="Crops per clip: 1 (centre) or 3 (default: the checkpoint's)."
)
CLIP_BATCH_OPTION = typer.Option(8, "--batch-size", "-b", min=1, help="Clips per forward pass.")
DECODE_WORKERS_OPTION = typer.Option(None, "--workers", min=0, help="Decoding processes.")
PREPROCESS_OPTION = typer.Option(
    None, "--preprocess", "-p", help="Preprocessing override KEY=VALUE, e.g. clip_len=8."
)


def check_crops(crops: int | None) -> None:
    """``--crops`` takes 1 (the centre) or 3 (three crops along the long side)."""
    if crops is not None and crops not in (1, 3):
        raise ConfigError(f"--crops {crops} is not supported: use 1 (centre) or 3 (three-crop)")


def view_protocol(clips: int | None, crops: int | None) -> dict[str, int]:
    """``--clips`` and ``--crops`` as overrides of the test protocol: only the flags given."""
    given = {"num_clips": clips, "num_crops": crops}
    return {key: value for key, value in given.items() if value is not None}
