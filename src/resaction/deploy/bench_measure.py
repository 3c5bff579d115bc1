"""Measurements behind ``bench``, each run in a fresh process so one backend's memory and
threads never colour another's: speed, peak memory, the machine's matmul peak, held-out top-1."""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resaction.models import compile as model_compile
from resaction.runtime.loading import load_model
from resaction.runtime.onnx_backend import OnnxBackend
from resaction.runtime.scores import videos_probabilities

MATMUL_SIZE = 2048


def measure_in_subprocess(function: Callable[[dict[str, Any]], dict[str, Any]], task: dict) -> dict:
    """Run ``function(task)`` in a fresh spawned process and return its result.

    A process that dies (out of memory, a crash in a native library) raises instead of hanging.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, task).result()


def set_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def measure_matmul_peak(task: dict[str, Any]) -> dict[str, float]:
    """fp32 GEMM GFLOP/s with the benchmark's threads: the best of a few square multiplies."""
    set_threads(int(task["threads"]))
    n = int(task.get("size", MATMUL_SIZE))
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(6):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return {"gflops": 2.0 * n**3 / best / 1e9}


def measure_backend(task: dict[str, Any]) -> dict[str, Any]:
    """Load one backend, time it on a fixed random batch, score the held-out clips."""
    set_threads(int(task["threads"]))
    started = time.perf_counter()
    run, describe = load_runner(task["backend"], Path(task["path"]), int(task["threads"]))
    clips = torch.from_numpy(
        np.random.default_rng(0).standard_normal(task["shape"], dtype=np.float32)
    )
    run(clips)
    setup = time.perf_counter() - started
    for _ in range(int(task["warmup"])):
        run(clips)
    seconds = []
    for _ in range(int(task["iterations"])):
        start = time.perf_counter()
        run(clips)
        seconds.append(time.perf_counter() - start)
    result: dict[str, Any] = {"seconds": seconds, "setup_s": setup}
    if task.get("eval_cache"):
        result["top1"] = heldout_top1(run, Path(task["eval_cache"]))
    result["note"] = describe()
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ``ru_maxrss`` it is not inherited
    from the parent across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_runner(
    backend: str, path: Path, threads: int
) -> tuple[Callable[[torch.Tensor], np.ndarray], Callable[[], str]]:
    """A function from a clip batch to logits, and one describing anything worth noting."""
    if path.suffix == ".onnx":
        return OnnxBackend(path, threads=threads), str
    loaded = load_model(path)
    if backend == "compiled":
        compiled = model_compile.compile_model(loaded.module)

        def describe() -> str:
            return "" if compiled.compiled else "torch.compile failed: eager fallback"

        return (lambda clips: compiled(clips).numpy()), describe

    return loaded.backend, str


def heldout_top1(run: Callable, cache: Path, batch: int = 8) -> float:
    views = np.load(cache / "views.npy", mmap_mode="r")
    owners = np.load(cache / "owners.npy")
    labels = np.load(cache / "labels.npy")
    logits = np.concatenate(
        [
            np.asarray(run(torch.from_numpy(np.array(views[i : i + batch]))))
            for i in range(0, len(views), batch)
        ]
    )
    _, video = videos_probabilities(logits, owners, len(labels))
    return float((video.argmax(axis=1) == labels).mean())


def machine_facts(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """What the numbers were measured on, and how busy the machine was before and after."""
    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "python": platform.python_version(),
        "load_avg_before": list(load_before),
        "load_avg_after": list(os.getloadavg()),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
