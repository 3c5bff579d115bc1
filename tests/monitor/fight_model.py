"""A fight detector trained in the tests, and camera recordings made of real clips.

The detector is ``tsn_diff_resnet18`` (frame differences, the model that works on this data,
docs/real-data.md) trained for a few epochs at 56 px on twelve 480x360 CCTV clips of
``surveillance_camera_fight``; the recordings play quiet clips, then fight clips, then quiet
clips, re-encoded into one H.264 stream as a camera would send it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

FIGHT = ["fi131", "fi026", "fi029", "fi028", "fi060", "fi132"]
QUIET = ["nofi148", "nofi101", "nofi060", "nofi058", "nofi149", "nofi099"]
FPS = 30


def clip_path(videos_dir: Path, name: str) -> Path:
    folder = "fight" if name.startswith("fi") else "noFight"
    return videos_dir / "surveillance_camera_fight" / folder / f"{name}.mp4"


def train_fight_model(
    videos_dir: Path,
    out: Path,
    epochs: int = 12,
    repeats: int = 4,
    model: str = "tsn_diff_resnet18",
    size: int = 56,
) -> Path:
    """The checkpoint of a fight / noFight detector trained on FIGHT and QUIET (each clip listed
    ``repeats`` times an epoch: enough steps for batch norm's running statistics to settle)."""
    from resaction.engine.config import TrainConfig
    from resaction.engine.trainer import train

    out.mkdir(parents=True, exist_ok=True)
    diff = "diff" in model
    extra = {"segment_len": 2} if diff else {}
    manifest = out / "clips.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        for name in (FIGHT + QUIET) * repeats:
            writer.writerow([clip_path(videos_dir, name), "fight" if name in FIGHT else "noFight"])
    validation = out / "validation.csv"
    validation.write_text("".join(manifest.read_text().splitlines(True)[: 1 + len(FIGHT + QUIET)]))
    config = TrainConfig(
        data=str(manifest),
        val_data=str(validation),
        model=model,
        model_kwargs={"num_segments": 4, **({"segment_len": 2} if diff else {})},
        preprocess={"clip_len": 8 if diff else 4, "resize": size + 8, "crop": size, **extra},
        out=str(out / "run"),
        epochs=epochs,
        batch_size=8,
        lr=0.01,
        progress=False,
    )
    return Path(train(config).checkpoint)


def record(videos_dir: Path, names: Sequence[str], path: Path) -> list[tuple[str, float, float]]:
    """Re-encode ``names`` one after another into ``path`` (480x360 H.264, 30 fps, a keyframe a
    second); each clip's (name, start, end) in seconds of the recording. A name ending in
    ``"~"`` plays its clip backwards: a clip followed by itself backwards makes a longer scene
    without a cut (a cut is sudden motion to a frame-difference model)."""
    spans = []
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 480, 360, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(FPS), "bf": "0"}
        count = 0
        for name in names:
            start = count / FPS
            with av.open(str(clip_path(videos_dir, name.rstrip("~")))) as source:
                images = [frame.to_ndarray(format="rgb24") for frame in source.decode(video=0)]
                for image in images[::-1] if name.endswith("~") else images:
                    picture = av.VideoFrame.from_ndarray(
                        np.ascontiguousarray(image), format="rgb24"
                    )
                    picture = picture.reformat(width=480, height=360, format="yuv420p")
                    picture.pts = count
                    output.mux(stream.encode(picture))
                    count += 1
            spans.append((name, start, count / FPS))
        output.mux(stream.encode())
    return spans
