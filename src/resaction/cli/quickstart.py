"""``resaction quickstart``: the whole road on generated videos, in a few minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from resaction.cli.app import app, console
from resaction.cli.options import DECODE_WORKERS_OPTION, PROGRESS_OPTION


@app.command()
def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="Output folder."),
    seed: int = typer.Option(0, "--seed", help="Seeds the videos, the split and the training."),
    workers: int | None = DECODE_WORKERS_OPTION,
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Generate videos, train a 3D CNN, and score it with and without the direction of time."""
    from resaction.engine.quickstart import quickstart_table, run_quickstart

    result = run_quickstart(out, seed=seed, progress=progress, num_workers=workers)
    console.print(quickstart_table(result))
    console.print(
        "Reversed pairs are one another played backwards (move_left is move_right in reverse). "
        f"With the direction hidden, {result.outcomes[0].model} sees each test clip forwards and "
        "backwards and averages the two scores: it still sees every motion, but a video and its "
        "reverse get the same label, so only the reversed pairs drop."
    )
    console.print(f"{len(result.predictions)} held-out videos, picked at random before predicting:")
    for prediction in result.predictions:
        best, confidence = prediction["top"][0]
        verdict = "right" if best == prediction["true"] else "wrong"
        console.print(
            f"  {Path(prediction['video']).name}: truly {prediction['true']}, "
            f"{result.outcomes[0].model} says {best} ({100 * confidence:.0f}%, {verdict})",
            soft_wrap=True,
        )
    console.print("plots: " + ", ".join(str(path) for path in result.plots))
    console.print(
        f"done in {result.seconds:.0f} s (training {result.train_seconds:.0f} s); "
        f"everything is in {result.out}"
    )
