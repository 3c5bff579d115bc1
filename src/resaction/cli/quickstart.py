"""``resaction quickstart``: the whole road on generated videos, in a few minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from resaction.cli.app import app, console


@app.command()
def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="Output folder."),
    quick: bool = typer.Option(
        False, "--quick", help="A smaller run (fewer, smaller videos; fewer epochs) for tests."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the videos, the split and the training."),
    workers: int | None = typer.Option(None, "--workers", min=0, help="Decoding processes."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Generate videos, train a 3D CNN and TSN, and compare them on reversed-pair classes."""
    from resaction.engine.quickstart import quickstart_table, run_quickstart

    result = run_quickstart(out, quick=quick, seed=seed, progress=progress, num_workers=workers)
    console.print(quickstart_table(result))
    console.print(
        "Reversed-pair classes are one another played backwards (move_left is move_right in "
        "reverse), so only a model that sees frame order can tell them apart."
    )
    prediction = result.prediction
    best, confidence = prediction["top"][0]
    console.print(
        f"held-out video {prediction['video']} (truly {prediction['true']}): "
        f"{result.outcomes[0].model} says {best} ({100 * confidence:.0f}%)"
    )
    console.print("plots: " + ", ".join(str(path) for path in result.plots))
    console.print(f"done in {result.seconds:.0f} s; everything is in {result.out}")
