"""What the service's watch tests share: a camera whose events open and close on cue, a small
real model that sees them, and a cameras file.

The "door" camera is a real H.264 file played in a loop at its own rate: 3 s lit, 3 s dark, a
square moving across both. The model is an untrained tsn_resnet18 whose classifier is set from
its own features of a lit and a dark picture, so "fight" scores near 1 while the door is lit and
near 0 while it is dark: each loop opens one event and closes it, deterministically, in seconds.
The "hall" camera plays a real surveillance clip and never raises one (its threshold is 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint

CLASSES = ["fight", "noFight"]
FPS = 25
LIT, DARK = 200, 20
SIZE = (240, 320)
PREPROCESS = {"clip_len": 2, "resize": 64, "crop": 56, "mean": [0.45] * 3, "std": [0.225] * 3}
QUIET_CLIP = "surveillance_camera_fight/noFight/nofi001.mp4"


def write_lit_dark(path: Path, lit_s: float = 3.0, dark_s: float = 3.0) -> Path:
    """An H.264 MP4 (a keyframe every half second): ``lit_s`` lit, then ``dark_s`` dark."""
    height, width = SIZE
    lit_frames, total = round(lit_s * FPS), round((lit_s + dark_s) * FPS)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(FPS // 2), "bf": "0"}
        for index in range(total):
            lit = index < lit_frames
            image = np.full((height, width, 3), LIT if lit else DARK, np.uint8)
            x = (index * 7) % (width - 60)
            image[90:150, x : x + 60] = 60 if lit else 90
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def brightness_model(path: Path) -> Path:
    """A checkpoint whose "fight" logit is the projection of a frame's features on the line
    from a dark picture's features to a lit one's: about +6 when lit, -6 when dark."""
    torch.manual_seed(0)
    model = create_model("tsn_resnet18", num_classes=len(CLASSES), num_segments=2).eval()
    crop = PREPROCESS["crop"]
    levels = torch.tensor([LIT, DARK], dtype=torch.float32) / 255.0
    pictures = ((levels - 0.45) / 0.225).view(2, 1, 1, 1).expand(2, 3, crop, crop)
    with torch.no_grad():
        lit, dark = model.forward_features(pictures.contiguous())
        direction = lit - dark
        scale = 12.0 / float(direction @ direction)
        middle = (lit + dark) / 2
        fc = model.get_classifier()
        fc.weight.zero_()
        fc.bias.zero_()
        fc.weight[0] = direction * scale
        fc.bias[0] = -float(middle @ direction) * scale
    return save_checkpoint(
        path, model, model_name="tsn_resnet18", classes=CLASSES, preprocess=PREPROCESS
    )


def cameras_file(path: Path, door: Path, hall: Path) -> Path:
    path.write_text(
        "defaults:\n"
        "  classes: [fight]\n"
        "  window: 1\n"
        "  threshold: 0.6\n"
        "  exit_threshold: 0.4\n"
        "  smooth: 1\n"
        "  min_duration: 0\n"
        "  min_gap: 0.2\n"
        "  cooldown: 0\n"
        "  pre: 0.5\n"
        "  post: 0.5\n"
        "  loop: true\n"
        "cameras:\n"
        f"  - name: door\n    url: {door}\n"
        f"  - name: hall\n    url: {hall}\n    threshold: 1.0\n"
        "sinks: [jsonl]\n"
    )
    return path


def watch_files(folder: Path, videos_dir: Path) -> tuple[Path, Path]:
    """The checkpoint and the cameras file (door and hall) of a watching service, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    door = write_lit_dark(folder / "door.mp4")
    cameras = cameras_file(folder / "cameras.yaml", door, videos_dir / QUIET_CLIP)
    return brightness_model(folder / "brightness.pt"), cameras


def read_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, data) of each server-sent event in a stream of text lines."""
    kind, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
