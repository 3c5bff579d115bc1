"""An explanation as files: the heat map over the clip (MP4), temporal importance (PNG), JSON.

``explain.mp4`` shows the clip's own frames, the frames the model scored, at the source
resolution (at most ``MAX_SHORT_SIDE`` lines): the map is drawn where the model's crop lies in
the picture (outlined when the crop leaves part of it out), blended in through OpenCV's JET
colour map, with the target, its probability and the method in a banner. Each frame stays on
screen for the time to the next one, at least ``MIN_HOLD_S``: a model that samples eight frames
over ten seconds is shown over ten seconds, a dense 16-frame clip slowed down enough to read.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from resaction.explain.clip import Box
from resaction.explain.run import IMPORTANCE, Explanation
from resaction.inference.annotate import draw_label
from resaction.io import VideoReader
from resaction.io.writer import VideoWriter
from resaction.progress import progress_bar

OUTPUT_FPS = 10.0
MIN_HOLD_S = 0.3
MAX_SHORT_SIDE = 720
ALPHA = 0.45
_OUTLINE = (255, 255, 255)


def write_explanation(
    explanation: Explanation, out_dir: str | Path, *, progress: bool = False
) -> dict[str, Path]:
    """Write ``explain.mp4``, ``temporal.png`` and ``explain.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "video": render_video(explanation, out / "explain.mp4", progress=progress),
        "temporal": plot_importance(explanation, out / "temporal.png"),
    }
    record = {**explanation.to_record(), "files": {k: p.name for k, p in files.items()}}
    files["json"] = out / "explain.json"
    files["json"].write_text(json.dumps(record, indent=2) + "\n")
    return files


def overlay(frame: np.ndarray, heat: np.ndarray, box: Box, alpha: float = ALPHA) -> np.ndarray:
    """A copy of an RGB uint8 frame with ``heat`` ((h, w) in [0, 1]) blended in over ``box``
    (fractions of the frame, possibly reaching past its edges) through the JET colour map."""
    out = np.ascontiguousarray(frame).copy()
    height, width = out.shape[:2]
    y0, x0 = round(box[0] * height), round(box[1] * width)
    y1, x1 = round(box[2] * height), round(box[3] * width)
    if y1 <= y0 or x1 <= x0:
        return out
    scaled = cv2.resize(heat.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    top, left, bottom, right = max(y0, 0), max(x0, 0), min(y1, height), min(x1, width)
    if bottom <= top or right <= left:
        return out
    part = scaled[top - y0 : bottom - y0, left - x0 : right - x0]
    levels = np.clip(part * 255.0 + 0.5, 0, 255).astype(np.uint8)
    colour = cv2.applyColorMap(levels, cv2.COLORMAP_JET)[..., ::-1]
    region = out[top:bottom, left:right].astype(np.float32)
    out[top:bottom, left:right] = (region * (1 - alpha) + colour * alpha).astype(np.uint8)
    if (top, left, bottom, right) != (0, 0, height, width):
        cv2.rectangle(out, (left, top), (right - 1, bottom - 1), _OUTLINE, 1)
    return out


def render_video(explanation: Explanation, path: str | Path, *, progress: bool = False) -> Path:
    """The clip's frames with the map blended in (see the module docstring)."""
    clip = explanation.clip
    frames = _display_frames(clip.video, clip.indices)
    holds = _holds(clip.times, clip.fps)
    count = clip.num_frames
    with VideoWriter(path, fps=OUTPUT_FPS) as writer:
        steps = progress_bar(
            range(count), total=count, desc="render", unit="frame", disable=not progress
        )
        for k in steps:
            image = overlay(frames[k], explanation.saliency[k], clip.box)
            note = f"{explanation.method} | frame {k + 1}/{count} | t={clip.times[k]:.2f}s"
            image = draw_label(image, explanation.target, explanation.probability, note)
            for _ in range(holds[k]):
                writer.write(image)
    return Path(path)


def plot_importance(explanation: Explanation, path: str | Path) -> Path:
    """A PNG of each frame's temporal importance against its time in the video."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times, values = explanation.clip.times, explanation.importance
    figure, axes = plt.subplots(figsize=(9, 3.2), layout="constrained")
    axes.plot(times, values, marker="o", linewidth=1.4, color="tab:red")
    axes.axhline(0.0, color="black", linewidth=0.6)
    axes.set_xlim(explanation.clip.start, explanation.clip.end)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("importance")
    if explanation.method != "occlusion":
        axes.set_ylim(0.0, max(1e-6, float(values.max()) * 1.1))
    axes.set_title(
        f"{explanation.model_name}: {explanation.target} {explanation.probability:.0%} "
        f"({explanation.method}; {IMPORTANCE[explanation.method]})",
        fontsize=9,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _display_frames(video: str, indices: np.ndarray) -> np.ndarray:
    """The clip's source frames (T, H, W, 3) uint8, the short side at most ``MAX_SHORT_SIDE``."""
    with VideoReader(video) as reader:
        if min(reader.frame_size) <= MAX_SHORT_SIDE:
            return reader.get_frames(indices.tolist()).numpy()
    with VideoReader(video, short_side=MAX_SHORT_SIDE) as reader:
        return reader.get_frames(indices.tolist()).numpy()


def _holds(times: np.ndarray, fps: float) -> list[int]:
    """Output frames per clip frame: its time to the next clip frame, at least ``MIN_HOLD_S``."""
    gaps = np.diff(times) if len(times) > 1 else np.zeros(0)
    last = float(np.median(gaps)) if len(gaps) else (1.0 / fps if fps > 0 else MIN_HOLD_S)
    seconds = np.maximum(np.append(gaps, last), MIN_HOLD_S)
    return [max(1, round(s * OUTPUT_FPS)) for s in seconds]
