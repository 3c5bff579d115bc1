"""``resaction synth``: write a synthetic action dataset (motion-defined classes) as MP4s.

Beside each video it writes the actor's box on every frame, ``<name>.boxes.json`` (format and
reader: ``resaction.data.synthetic_actor``), so explanations can be scored against it.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from resaction.cli.app import app, console
from resaction.cli.options import PROGRESS_OPTION


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (new or empty)."),
    videos_per_class: int = typer.Option(20, "--videos-per-class", "-n", help="Videos per class."),
    clutter: float = typer.Option(
        0.0, "--clutter", help="0-1: textured background and moving distractors."
    ),
    camera_motion: float = typer.Option(
        0.0, "--camera-motion", help="0-1: camera pan, zoom and shake."
    ),
    occlusion: float = typer.Option(0.0, "--occlusion", help="0-1: occluders crossing the actor."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same videos (byte for byte)."),
    size: int = typer.Option(112, "--size", help="Frame height and width in pixels."),
    frames: int = typer.Option(32, "--frames", help="Frames per video."),
    fps: float = typer.Option(15.0, "--fps", help="Frame rate written into the videos."),
    classes: str | None = typer.Option(
        None, "--classes", help="Comma-separated subset of the classes (default: all ten)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a synthetic dataset already in --out."
    ),
    progress: bool = PROGRESS_OPTION,
) -> None:
    """Generate labelled videos whose class is a motion: move left/right/up/down, rotate
    clockwise/anticlockwise, grow/shrink, bounce, still. Each pair is the same frames reversed.
    Each knob is both the chance a video gets that difficulty and its strength. Beside each
    video, NAME.boxes.json holds the actor's box on every frame (x0, y0, x1, y1 in pixels, ends
    exclusive) and the share of it an occluder hides."""
    from resaction.data.manifests import read_manifest
    from resaction.data.synthetic import REVERSED_PAIRS, generate_dataset

    names = [name.strip() for name in classes.split(",") if name.strip()] if classes else None
    manifest_path = generate_dataset(
        out,
        videos_per_class,
        clutter=clutter,
        camera_motion=camera_motion,
        occlusion=occlusion,
        seed=seed,
        size=size,
        num_frames=frames,
        fps=fps,
        classes=names,
        overwrite=overwrite,
        progress=progress,
    )
    counts = read_manifest(manifest_path).class_counts()
    partner = {a: b for pair in REVERSED_PAIRS for a, b in (pair, pair[::-1])}
    table = Table(title=f"synthetic dataset in {out}")
    table.add_column("class")
    table.add_column("videos", justify="right")
    table.add_column("reverse of")
    for name, count in counts.items():
        table.add_row(name, str(count), partner.get(name, "-"))
    table.add_section()
    table.add_row("total", str(sum(counts.values())), "")
    console.print(table)
    console.print(
        f"{frames} frames of {size}x{size} at {fps:g} fps; clutter {clutter:g}, "
        f"camera motion {camera_motion:g}, occlusion {occlusion:g}, seed {seed}",
        highlight=False,
    )
    console.print(f"manifest: {manifest_path}", highlight=False, soft_wrap=True)
    console.print(
        "actor boxes: <video name>.boxes.json beside each video "
        "(resaction.data.synthetic.read_boxes)",
        highlight=False,
    )
