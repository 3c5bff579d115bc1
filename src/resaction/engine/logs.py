"""What a run leaves for people to read: ``metrics.csv``, TensorBoard events and curve plots.

The CSV is rewritten from the whole history at every epoch, so after a resume it holds exactly
the epochs the resumed run knows about; TensorBoard events past the resume point are purged.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resaction.outputs import replaced_atomically

if TYPE_CHECKING:
    from resaction.engine.train_state import EpochTotals

TENSORBOARD_DIR = "tensorboard"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
SKIPPED_TXT = "skipped.txt"


def write_metrics_csv(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One row per epoch; columns are the union of the rows' keys in first-seen order."""
    path = Path(path)
    columns: list[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: _format(row.get(key)) for key in columns})
    with replaced_atomically(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Loss and accuracy per epoch, train beside validation, as one PNG (None if no epochs)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, keys, title in (
        (loss_axis, ("train_loss", "val_loss"), "loss"),
        (acc_axis, ("train_top1", "val_top1", "val_top5"), "accuracy"),
    ):
        for key in keys:
            values = [_number(row.get(key)) for row in history]
            if any(not math.isnan(v) for v in values):
                axis.plot(epochs, values, marker="o", label=key.replace("_", " "))
        axis.set_xlabel("epoch")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    acc_axis.set_ylim(0, 1.02)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class RunLogger:
    """Rank 0's writer of TensorBoard scalars; other ranks get an inert one (``enabled=False``)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, purge_step: int | None = None):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(
                str(self.run_dir / TENSORBOARD_DIR), purge_step=purge_step or None
            )

    def scalars(self, step: int, values: dict[str, Any]) -> None:
        if self._writer is None:
            return
        for key, value in values.items():
            number = _number(value)
            if not math.isnan(number):
                self._writer.add_scalar(key.replace("_", "/", 1), number, step)

    def epoch(self, history: Sequence[dict[str, Any]], step: int) -> None:
        """Log the latest epoch's row and rewrite ``metrics.csv`` and the curves."""
        if not self.enabled or not history:
            return
        row = {k: v for k, v in history[-1].items() if k != "epoch"}
        self.scalars(step, row)
        self._writer.flush()
        write_metrics_csv(history, self.run_dir / METRICS_CSV)

    def close(self, history: Sequence[dict[str, Any]]) -> Path | None:
        if not self.enabled:
            return None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return plot_curves(history, self.run_dir / CURVES_PNG)


def progress_numbers(totals: EpochTotals, world_size: int) -> dict[str, str]:
    """The progress bar's running loss, accuracy and clips per second (all ranks)."""
    count = max(totals.count, 1)
    return {
        "loss": f"{totals.loss_sum / count:.3f}",
        "acc": f"{totals.correct / count:.2f}",
        "clips/s": f"{totals.count * world_size / max(totals.busy_s, 1e-9):.1f}",
    }


def writability_problem(run_dir: Path) -> str | None:
    """Why ``run_dir`` cannot hold a run (made if missing), or None when it can."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or error
        return f"output folder {run_dir} is not writable ({reason}): choose another --out"
    if not os.access(run_dir, os.W_OK):
        return f"output folder {run_dir} is not writable: choose another --out"
    return None


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One line summing up an epoch's row of the history."""
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"loss {row['train_loss']:.4f}",
        f"acc {row['train_top1']:.3f}",
    ]
    if "val_top1" in row:
        parts += [f"val top1 {row['val_top1']:.3f}", f"val loss {row['val_loss']:.4f}"]
    parts += [
        f"{row['train_clips_per_s']:.1f} clips/s",
        f"data wait {100 * row['train_data_wait']:.0f}%",
    ]
    return "  ".join(parts)


def write_skipped(rows: Sequence[dict[str, str]], path: str | Path) -> Path:
    """The videos that could not be decoded, one ``path<TAB>reason`` line each."""
    path = Path(path)
    path.write_text("".join(f"{row['path']}\t{row['reason']}\n" for row in rows))
    return path


def merge_skipped(
    known: Sequence[dict[str, str]], rows: Sequence[dict[str, str]]
) -> list[dict[str, str]]:
    """``known`` followed by the rows of ``rows`` whose video it does not list yet."""
    merged, paths = list(known), {row["path"] for row in known}
    for row in rows:
        if row["path"] not in paths:
            merged.append(row)
            paths.add(row["path"])
    return merged


def report_skipped(
    rows: Sequence[dict[str, str]], path: str | Path, say: Callable[[str], None]
) -> Path:
    """Write ``skipped.txt`` and say which videos (the first 20) were skipped and why."""
    written = write_skipped(rows, path)
    say(f"{len(rows)} video(s) could not be decoded and were skipped:")
    for row in rows[:20]:
        say(f"  {row['path']}: {row['reason']}")
    say(f"(all listed in {written})")
    return written
