"""The timeline figure: probability of each class over time, with the found segments shaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from resaction.inference.segments import Segment

MAX_CLASSES_PLOTTED = 10


def plot_timeline(
    times: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    segments: Sequence[Segment],
    path: str | Path,
    *,
    threshold: float | None = None,
    title: str | None = None,
    max_classes: int = MAX_CLASSES_PLOTTED,
) -> Path:
    """Write a PNG of ``probs`` (T, K) against ``times``.

    With many classes (Kinetics has 400) only the ``max_classes`` with the highest peak are drawn,
    always including every class that has a segment, so the figure stays readable.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = np.asarray(probs)
    times = np.asarray(times)
    shown = _classes_to_show(probs, segments, max_classes)
    colours = plt.get_cmap("tab10" if len(shown) <= 10 else "tab20")
    colour_of = {index: colours(i % colours.N) for i, index in enumerate(shown)}
    figure, axes = plt.subplots(figsize=(11, 4), layout="constrained")
    for index in shown:
        axes.plot(
            times, probs[:, index], color=colour_of[index], linewidth=1.4, label=classes[index]
        )
    for segment in segments:
        colour = colour_of.get(segment.label_index, "grey")
        axes.axvspan(segment.start, segment.end, color=colour, alpha=0.18, linewidth=0)
        axes.text(
            (segment.start + segment.end) / 2,
            1.02,
            segment.label,
            ha="center",
            va="bottom",
            fontsize=8,
            color=colour,
            clip_on=False,
        )
    if threshold is not None:
        axes.axhline(threshold, color="black", linestyle=":", linewidth=1, label="threshold")
    end = float(times[-1]) if len(times) else 1.0
    axes.set_xlim(0.0, max(end, max((s.end for s in segments), default=0.0)))
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("probability")
    if title:
        axes.set_title(title, pad=16)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _classes_to_show(probs: np.ndarray, segments: Sequence[Segment], limit: int) -> list[int]:
    if probs.size == 0:
        return []
    wanted = list(dict.fromkeys(segment.label_index for segment in segments))
    by_peak = np.argsort(-probs.max(axis=0), kind="stable").tolist()
    for index in by_peak:
        if len(wanted) >= limit:
            break
        if index not in wanted:
            wanted.append(index)
    return sorted(wanted)
