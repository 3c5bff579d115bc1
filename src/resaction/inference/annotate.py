"""Drawing the current label and its confidence onto RGB frames with OpenCV."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from resaction.inference.segments import window_cells
from resaction.io import VideoReader
from resaction.io.writer import VideoWriter
from resaction.progress import progress_bar

if TYPE_CHECKING:
    from resaction.inference.timeline import Timeline

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BOX = (0, 0, 0)
_TEXT = (255, 255, 255)
_BAR = (80, 200, 80)


def draw_label(
    frame: np.ndarray,
    label: str | None,
    confidence: float | None = None,
    note: str | None = None,
) -> np.ndarray:
    """A copy of an RGB uint8 frame with a banner: ``label 87%`` and a confidence bar.

    The text scales with the frame height, so it is readable on 120-line and 1080-line videos,
    and shrinks to the frame's width where the label would not fit (portrait video).
    ``note`` (a time stamp, a latency) goes on a second, smaller line. ``label=None`` draws
    "no label", for times no window has reached yet.
    """
    out = np.ascontiguousarray(frame).copy()
    height, width = out.shape[:2]
    scale = max(0.35, height / 480)
    thickness = max(1, round(scale * 1.5))
    text = "no label" if label is None else label
    if label is not None and confidence is not None:
        text = f"{label} {confidence:.0%}"
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    room = width - 2 * max(2, round(4 * scale))
    if text_w > room:  # a portrait or narrow frame: smaller text, not a cut-off label
        scale = max(0.3, scale * room / text_w)
        thickness = max(1, round(scale * 1.5))
        (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, round(4 * scale))
    bar_h = max(2, round(4 * scale))
    banner_h = text_h + baseline + 2 * pad + bar_h
    note_size = None
    if note:
        note_size = cv2.getTextSize(note, _FONT, scale * 0.6, max(1, thickness - 1))
        banner_h += note_size[0][1] + note_size[1] + pad
    banner_w = min(width, max(text_w, note_size[0][0] if note_size else 0) + 2 * pad)
    cv2.rectangle(out, (0, 0), (banner_w, banner_h), _BOX, thickness=-1)
    y = pad + text_h
    cv2.putText(out, text, (pad, y), _FONT, scale, _TEXT, thickness, cv2.LINE_AA)
    if confidence is not None:
        bar_w = round((banner_w - 2 * pad) * float(np.clip(confidence, 0.0, 1.0)))
        top = y + baseline
        cv2.rectangle(out, (pad, top), (pad + bar_w, top + bar_h), _BAR, thickness=-1)
    if note and note_size is not None:
        note_y = y + baseline + bar_h + pad + note_size[0][1]
        cv2.putText(
            out, note, (pad, note_y), _FONT, scale * 0.6, _TEXT, max(1, thickness - 1), cv2.LINE_AA
        )
    return out


def annotate_timeline(
    timeline: Timeline, video: str | Path, out: str | Path, *, progress: bool = False
) -> Path:
    """Write ``video`` again with each frame's label drawn: the segment it lies in, else
    "no label" with the best guess at that time as a note.

    This is a second decoding pass; the timeline itself decodes the video once.
    """

    cells = window_cells(timeline.times, timeline.duration)
    segments = sorted(timeline.segments, key=lambda segment: segment.start)
    row = 0
    current = 0
    with VideoReader(video) as reader, VideoWriter(out, fps=reader.fps) as writer:
        frames = progress_bar(
            reader.iter_frames(),
            total=reader.num_frames,
            desc="annotate",
            unit="frame",
            disable=not progress,
            leave=False,
        )
        for _, seconds, image in frames:
            while row < len(cells) - 1 and seconds >= cells[row, 1]:
                row += 1
            while current < len(segments) and seconds >= segments[current].end:
                current += 1
            best = int(timeline.smoothed[row].argmax())
            guess = f"{timeline.classes[best]} {timeline.smoothed[row, best]:.0%}"
            segment = segments[current] if current < len(segments) else None
            if segment is not None and segment.start <= seconds:
                label = segment.label
                confidence = float(timeline.smoothed[row, segment.label_index])
                writer.write(draw_label(image, label, confidence, f"t={seconds:.2f}s"))
            else:
                writer.write(draw_label(image, None, None, f"t={seconds:.2f}s  best: {guess}"))
    return Path(out)
