"""How a benchmark is shown: a rich table, a JSON file and a PNG of speed against accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from resaction.deploy.bench import BenchReport, BenchRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def bench_table(report: BenchReport) -> Table:
    """One row per model and backend; speed-ups against eager PyTorch of the same run."""
    table = Table(
        title=(
            f"resaction bench: {report.threads} threads, batch {report.batch_size}, "
            f"fp32 matmul peak {report.peak_gflops:.0f} GFLOP/s"
        )
    )
    for column in (
        "model",
        "backend",
        "ms/clip p50",
        "p95",
        "clips/s",
        "x eager",
        "peak RSS MB",
        "file MB",
        "GFLOPs",
        "GFLOP/s",
        "% peak",
        "top-1",
        "note",
    ):
        table.add_column(
            column, justify="left" if column in {"model", "backend", "note"} else "right"
        )
    for row in report.rows:
        table.add_row(
            row.model,
            row.backend,
            _number(row.ms_p50),
            _number(row.ms_p95),
            _number(row.clips_per_s, 2),
            _number(row.speedup, 2, "x"),
            _number(row.peak_rss_mb, 0),
            _number(row.file_mb, 1),
            _number(row.gflops, 2),
            _number(row.gflops_per_s, 1),
            _number(None if row.peak_fraction is None else 100 * row.peak_fraction, 1),
            _number(None if row.top1 is None else 100 * row.top1, 1, "%"),
            row.note,
        )
    return table


def write_bench_report(report: BenchReport, out_dir: str | Path) -> dict[str, Path]:
    """``bench.json`` and ``bench.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "bench.json"
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return {"json": json_path, "png": plot_bench(report, out_dir / "bench.png")}


def plot_bench(report: BenchReport, path: Path) -> Path:
    """Accuracy against ms/clip when accuracy was measured, else ms/clip per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [row for row in report.rows if row.ms_p50 is not None]
    scored = [row for row in measured if row.top1 is not None]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    if scored:
        _scatter(ax, scored)
    else:
        _bars(ax, measured)
    ax.set_title(
        f"{report.threads} threads, batch {report.batch_size} "
        f"(fp32 matmul peak {report.peak_gflops:.0f} GFLOP/s)"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _scatter(ax: Axes, rows: list[BenchRow]) -> None:
    models = sorted({row.model for row in rows})
    markers = "osD^v<>p*h"
    for index, model in enumerate(models):
        mine = [row for row in rows if row.model == model]
        ax.scatter(
            [row.ms_p50 for row in mine],
            [100 * (row.top1 or 0.0) for row in mine],
            marker=markers[index % len(markers)],
            s=60,
            label=model,
        )
        for row in mine:
            ax.annotate(
                row.backend,
                (row.ms_p50, 100 * (row.top1 or 0.0)),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=8,
            )
    ax.set_xscale("log")
    ax.set_xlabel("ms per clip (p50, log scale; left is faster)")
    ax.set_ylabel("top-1 on held-out videos (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def _bars(ax: Axes, rows: list[BenchRow]) -> None:
    labels = [f"{row.model} / {row.backend}" for row in rows]
    p50 = [row.ms_p50 for row in rows]
    spread = [(row.ms_p95 or 0) - (row.ms_p50 or 0) for row in rows]
    ax.barh(labels, p50, xerr=[[0] * len(rows), spread], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("ms per clip (bar p50, whisker to p95)")
    ax.grid(True, axis="x", alpha=0.3)
