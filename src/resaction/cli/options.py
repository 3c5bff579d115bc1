"""Options several commands share, declared once so their flags and help read the same."""

from __future__ import annotations

import typer

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
