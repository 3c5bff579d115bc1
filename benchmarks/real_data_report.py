"""The tables and the plot of ``benchmarks/real_data.py``, from its saved results."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def is_baseline(row: dict) -> bool:
    """A classic baseline kept as a row (the motion-energy one), drawn as a line, not a bar."""
    return row["model"].endswith("(baseline)")


def folds_won(row: dict, baselines: dict[str, dict]) -> str:
    """Folds on which the row beats the baseline (the folds are the same, so they pair up)."""
    base = baselines.get(row["dataset"], {}).get("top1_folds", [])
    if len(base) != len(row["top1_folds"]):
        return "-"
    won = sum(a > b for a, b in zip(row["top1_folds"], base, strict=True))
    return f"{won}/{len(base)}"


def markdown_table(rows: list[dict], baselines: dict[str, dict]) -> str:
    lines = [
        "| dataset | model | start | videos | top-1 mean ± std | folds | vs baseline | folds won |",
        "| --- | --- | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for dataset, base in sorted(baselines.items()):
        folds = ", ".join(f"{100 * value:.1f}" for value in base["top1_folds"])
        lines.append(
            f"| {dataset} | MHI + Hu moments, 1-NN (baseline) | - | {base['videos']} | "
            f"{100 * base['top1_mean']:.1f} ± {100 * base['top1_std']:.1f}% | {folds} | - | - |"
        )
    for row in sorted(rows, key=lambda r: (r["dataset"], r["model"], r["start"])):
        folds = ", ".join(f"{100 * value:.1f}" for value in row["top1_folds"])
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['start']} | {row['videos']} | "
            f"{100 * row['top1_mean']:.1f} ± {100 * row['top1_std']:.1f}% | {folds} | "
            f"{row['vs_baseline_points']:+.1f} pts | {folds_won(row, baselines)} |"
        )
    return "\n".join(lines)


def plot(
    rows: list[dict], baselines: dict[str, dict], path: Path, datasets_spec: dict[str, dict]
) -> Path:
    """Mean top-1 per model with its folds as dots, the baseline as a line, one panel a dataset."""
    from matplotlib.figure import Figure

    datasets = [d for d in datasets_spec if d in baselines or any(r["dataset"] == d for r in rows)]
    figure = Figure(figsize=(9, 1.4 + 2.2 * len(datasets)), layout="constrained")
    axes = figure.subplots(len(datasets), 1, squeeze=False)[:, 0]
    colours = {"scratch": "tab:blue", "synthetic": "tab:orange", "selfsup": "tab:green",
               "scratch adamw": "tab:cyan", "selfsup adamw": "tab:olive",
               "contrastive adamw": "tab:purple"}  # fmt: skip
    for ax, dataset in zip(axes, datasets, strict=True):
        mine = sorted(
            (r for r in rows if r["dataset"] == dataset and not is_baseline(r)),
            key=lambda r: (r["model"], r["start"]),
        )
        for row in rows:
            if row["dataset"] == dataset and is_baseline(row):
                ax.axvline(100 * row["top1_mean"], color="tab:purple", ls=":",
                           label=row["model"].replace(" (baseline)", ""))  # fmt: skip
        for y, row in enumerate(mine):
            colour = colours.get(row["start"], "tab:gray")
            ax.barh(y, 100 * row["top1_mean"], xerr=100 * row["top1_std"], color=colour,
                    alpha=0.6, capsize=3)  # fmt: skip
            ax.plot([100 * v for v in row["top1_folds"]], [y] * len(row["top1_folds"]), "k.", ms=4)
        if dataset in baselines:
            ax.axvline(100 * baselines[dataset]["top1_mean"], color="tab:red", ls="--",
                       label="MHI baseline")  # fmt: skip
        ax.set_yticks(range(len(mine)), [f"{r['model']} ({r['start']})" for r in mine])
        ax.set_xlim(0, 100)
        ax.set_title(f"{dataset}: {datasets_spec[dataset]['split']}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("video top-1 % (bar: mean ± std over folds; dots: folds)")
    lines = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        lines.update(zip(labels, handles, strict=True))
    figure.legend(lines.values(), lines.keys(), loc="outside lower center", ncols=2, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def print_table(rows: list[dict], baselines: dict[str, dict]) -> None:
    table = Table(title="Video-level top-1 over folds (mean ± sample std) against the MHI baseline")
    for column in ("dataset", "split", "model", "start", "videos", "top-1 %", "vs baseline"):
        table.add_column(column)
    for dataset, base in sorted(baselines.items()):
        table.add_row(
            dataset,
            base["split"],
            "MHI baseline",
            "-",
            str(base["videos"]),
            f"{100 * base['top1_mean']:.1f} ± {100 * base['top1_std']:.1f}",
            "",
        )
    for row in sorted(rows, key=lambda r: (r["dataset"], r["start"], r["model"])):
        table.add_row(
            row["dataset"],
            row["split"],
            row["model"],
            row["start"],
            str(row["videos"]),
            f"{100 * row['top1_mean']:.1f} ± {100 * row['top1_std']:.1f}",
            f"{row['vs_baseline_points']:+.1f} pts",
        )
    Console().print(table)
