"""Inference speed, memory and compute efficiency of every registered model on the CPU.

Each model runs at its default input (``model_info``: clip length and crop) in eval mode under
``torch.inference_mode``, at batch 1 and 8: milliseconds per clip (median of the timed runs after
one warm-up), clips per second, peak resident memory of building and running it, GFLOPs per clip
(``model_stats``), and the achieved GFLOP/s as a fraction of this machine's fp32 matmul peak,
measured in the same process just before and after each model (a large ``torch.mm``), so every
speed is a ratio to a baseline taken under the same load. Every measurement runs in a fresh
process, so its peak memory is its own. Each model has a time budget; a batch that would not fit
in what is left is skipped and marked so.

``--omp-wait-policy passive`` sets ``OMP_WAIT_POLICY`` for the measuring processes: on a machine
whose cores are shared with other work, OpenMP threads that spin at every barrier while their
partner is descheduled make many-small-kernel networks several times slower.

    python benchmarks/models.py [--quick] [--models PATTERN] [--budget SECONDS]
                                [--omp-wait-policy passive|active] [--show]

Writes benchmarks/results/models.json and models.png (GFLOPs against time per clip).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import track
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
MATMUL_SIZE = 2048
THREADS = 2


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def matmul_peak_gflops(size: int = MATMUL_SIZE, repeats: int = 3) -> float:
    """fp32 GFLOP/s of the fastest of a few square ``torch.mm``: the practical peak of this CPU
    and thread count under the load of the moment."""
    import torch

    torch.set_num_threads(THREADS)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9


def measure(name: str, batch: int, runs: int, seconds_left: float) -> dict[str, Any]:
    """Time one model at one batch size; meant to run in a fresh process."""
    import torch

    from resaction.models import create_model, model_info, model_stats

    torch.set_num_threads(THREADS)
    deadline = time.perf_counter() + seconds_left
    peak = matmul_peak_gflops()
    info = model_info(name)
    shape = (batch, 3, info.clip_len, info.input_size, info.input_size)
    rss_before = _status_kib("VmRSS")
    model = create_model(name).eval()
    clip = torch.randn(shape)
    times: list[float] = []
    with torch.inference_mode():
        for i in range(runs + 1):
            start = time.perf_counter()
            model(clip)
            elapsed = time.perf_counter() - start
            if i > 0:
                times.append(elapsed)
            if time.perf_counter() + elapsed > deadline:
                break
    rss_peak = _status_kib("VmHWM")
    peak = (peak + matmul_peak_gflops()) / 2
    seconds = statistics.median(times) if times else elapsed
    gflops = model_stats(name).gflops
    return {
        "name": name,
        "family": info.family,
        "batch": batch,
        "input_shape": list(shape),
        "timed_runs": len(times),
        "ms_per_clip": 1000 * seconds / batch,
        "clips_per_s": batch / seconds,
        "peak_rss_mb": (rss_peak - rss_before) / 1024 if rss_peak and rss_before else None,
        "gflops_per_clip": gflops,
        "achieved_gflops": gflops * batch / seconds,
        "matmul_gflops": peak,
        "fraction_of_peak": gflops * batch / seconds / peak,
    }


def _in_fresh_process(fn, *args):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def run(names: list[str], batches: tuple[int, ...], runs: int, budget: float) -> list[dict]:
    rows = []
    for name in track(names, description="models"):
        deadline = time.perf_counter() + budget
        per_clip_s = None
        for batch in batches:
            left = deadline - time.perf_counter()
            if per_clip_s is not None and 2 * batch * per_clip_s > left:
                rows.append({"name": name, "batch": batch, "skipped": "time budget"})
                continue
            row = _in_fresh_process(measure, name, batch, runs, left)
            per_clip_s = row["ms_per_clip"] / 1000
            rows.append(row)
    return rows


def table(rows: list[dict], peak: float, policy: str) -> Table:
    out = Table(
        title=f"CPU inference at the default input, {THREADS} threads, OMP_WAIT_POLICY={policy}; "
        f"fp32 matmul peak {peak:.1f} GFLOP/s over the run, per row around the model"
    )
    columns = ("model", "batch", "input", "ms/clip", "clips/s", "peak RSS MB", "GFLOPs/clip")
    for column in (*columns, "GFLOP/s", "matmul GFLOP/s", "of peak"):
        out.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        if "skipped" in row:
            out.add_row(row["name"], str(row["batch"]), *["-"] * 7, f"skipped: {row['skipped']}")
            continue
        _, _, t, h, _ = row["input_shape"]
        out.add_row(
            row["name"],
            str(row["batch"]),
            f"{t}x{h}²",
            f"{row['ms_per_clip']:.0f}",
            f"{row['clips_per_s']:.2f}",
            f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "?",
            f"{row['gflops_per_clip']:.1f}",
            f"{row['achieved_gflops']:.1f}",
            f"{row['matmul_gflops']:.1f}",
            f"{row['fraction_of_peak']:.0%}",
        )
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = [row for row in rows if row.get("batch") == 1 and "skipped" not in row]
    fig, ax = plt.subplots(figsize=(9, 6))
    for family in sorted({row["family"] for row in single}):
        mine = [row for row in single if row["family"] == family]
        ax.scatter(
            [r["gflops_per_clip"] for r in mine], [r["ms_per_clip"] for r in mine], label=family
        )
        for row in mine:
            ax.annotate(row["name"], (row["gflops_per_clip"], row["ms_per_clip"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GFLOPs per clip (default input)")
    ax.set_ylabel("ms per clip (batch 1, CPU)")
    ax.set_title("resaction models: cost against CPU latency")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 only, 2 timed runs")
    parser.add_argument("--models", default="*", help="shell-style pattern of model names")
    parser.add_argument("--budget", type=float, default=None, help="seconds per model")
    parser.add_argument("--omp-wait-policy", choices=("passive", "active"), default=None)
    parser.add_argument("--show", action="store_true", help="print the last results, run nothing")
    args = parser.parse_args()
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    if args.show:
        saved = json.loads((RESULTS / "models.json").read_text())
        machine = saved["machine"]
        peak = (machine["matmul_gflops_before"] + machine["matmul_gflops_after"]) / 2
        console.print(table(saved["results"], peak, machine["omp_wait_policy"]))
        return 0

    from resaction.models import list_models

    names = list_models(args.models)
    if not names:
        console.print(f"no model matches {args.models!r}")
        return 1
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    batches = (1,) if args.quick else (1, 8)
    runs = 2 if args.quick else 5
    budget = args.budget or (20.0 if args.quick else 120.0)

    peak_before = _in_fresh_process(matmul_peak_gflops)
    rows = run(names, batches, runs, budget)
    peak_after = _in_fresh_process(matmul_peak_gflops)
    peak = (peak_before + peak_after) / 2

    console.print(table(rows, peak, policy))
    console.print(
        f"matmul peak before {peak_before:.1f}, after {peak_after:.1f} GFLOP/s; "
        "GFLOPs count 2 per multiply-add."
    )
    import torch

    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0],
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "threads": THREADS,
            "omp_wait_policy": policy,
            "matmul_size": MATMUL_SIZE,
            "matmul_gflops_before": peak_before,
            "matmul_gflops_after": peak_after,
        },
        "quick": args.quick,
        "budget_s": budget,
        "results": rows,
    }
    (RESULTS / "models.json").write_text(json.dumps(payload, indent=2))
    plot(rows, RESULTS / "models.png")
    console.print(f"wrote {RESULTS / 'models.json'} and {RESULTS / 'models.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
