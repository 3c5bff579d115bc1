"""Load test of ``resaction serve`` on loopback: concurrent clients uploading real videos.

The server is the real command (``python -m resaction.cli serve``) in its own process. For each
client count, that many threads upload real videos from ``shared/data/videos`` for a bounded
time: most requests are ``POST /predict`` (answered while the client waits), every
``--job-every``-th one is a ``POST /jobs`` timeline job. Reported per run: requests per second,
p50/p95 latency of ``/predict``, errors (anything but 2xx and 429), refusals (429, the bounded
queue doing its job), and afterwards a check that every accepted job reached ``done`` with its
timeline (and annotated video) served.

Baseline, measured in the same run: ``Predictor.predict`` called directly in this process on
the same videos, one after another (in a worker thread, as the server calls it), before the
HTTP runs and again after them, so drift on a shared machine shows. ``vs direct`` is served
predictions per second over the mean of the two: above 1 with several clients means the service
overlaps decoding, inference and uploads; at one client it is the cost of HTTP, the upload and
the PyAV sniff.

    python benchmarks/serve.py [--quick] [--model CKPT_OR_ONNX] [--clients 1,4] [--seconds 20]

Without ``--model`` a randomly initialised tsn_resnet18 checkpoint is written to a temporary
folder (speed does not depend on the weights). Writes benchmarks/results/serve.json.

``OMP_WAIT_POLICY`` is set to ``PASSIVE`` for this process and the server (unless already set):
on a machine whose cores are shared with other work, OpenMP threads that spin while waiting
made the same ``predict`` up to three times slower in one process than in another, which would
make the ratio meaningless. Both sides run under the same policy.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import itertools
import json
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
VIDEO_DATASETS = ("hockey_fight", "surveillance_camera_fight", "ucf101_subset", "rlvs_subset")
console = Console(width=None if sys.stdout.isatty() else 130)


def pick_videos(count: int, max_mb: float = 3.0) -> list[Path]:
    """Short real videos from several datasets, the same ones on every run."""
    from resaction.paths import shared_videos_dir

    root = shared_videos_dir()
    per_set = max(1, count // len(VIDEO_DATASETS))
    chosen: list[Path] = []
    for dataset in VIDEO_DATASETS:
        files = sorted(
            p
            for p in (root / dataset).rglob("*")
            if p.suffix.lower() in {".mp4", ".avi"} and p.stat().st_size < max_mb * 2**20
        )
        chosen.extend(files[:per_set])
    if not chosen:
        raise SystemExit(f"no videos found under {root}")
    return chosen[:count]


def write_checkpoint(folder: Path, quick: bool) -> Path:
    import torch

    from resaction.models import create_model, default_preprocess
    from resaction.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    preprocess = default_preprocess("tsn_resnet18")
    preprocess.update(
        {"clip_len": 4, "resize": 72, "crop": 64}
        if quick
        else {"clip_len": 8, "resize": 128, "crop": 112}
    )
    return save_checkpoint(
        folder / "tsn_resnet18.pt",
        create_model("tsn_resnet18", num_classes=5),
        model_name="tsn_resnet18",
        classes=[f"class_{i}" for i in range(5)],
        preprocess=preprocess,
        protocol={"num_clips": 2, "num_crops": 1},
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def direct_baseline(model: Path, videos: list[Path], seconds: float) -> dict[str, Any]:
    """``Predictor.predict`` in this process, one video after another, for ``seconds``.

    It runs in a worker thread, as the server runs its predictions: on a busy machine torch in
    the main thread and torch in another thread can differ by a factor of three, and that is
    not what this ratio is meant to show.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_direct_baseline, model, videos, seconds).result()


def _direct_baseline(model: Path, videos: list[Path], seconds: float) -> dict[str, Any]:
    from resaction.inference import Predictor

    predictor = Predictor.from_checkpoint(model)
    predictor.predict(videos[0])
    latencies: list[float] = []
    started = time.perf_counter()
    for video in itertools.cycle(videos):
        begin = time.perf_counter()
        predictor.predict(video)
        latencies.append(time.perf_counter() - begin)
        if time.perf_counter() - started >= seconds and len(latencies) >= len(videos):
            break
    wall = time.perf_counter() - started
    return {
        "scenario": "direct predict()",
        "clients": 1,
        "requests": len(latencies),
        "seconds": wall,
        "rps": len(latencies) / wall,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "errors": 0,
        "refused": 0,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``resaction serve`` in a subprocess on a free loopback port."""

    def __init__(self, model: Path, state_dir: Path, workers: int, max_queued: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable,
            "-m",
            "resaction.cli",
            "serve",
            "--model",
            str(model),
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--max-queued",
            str(max_queued),
            "--state-dir",
            str(state_dir),
            "--log-level",
            "warning",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with code {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("the server did not start within 120 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    predicts: int = 0
    errors: int = 0
    refused: int = 0
    jobs: list[tuple[str, bool]] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_loop(
    url: str, videos: list[Path], offset: int, deadline: float, job_every: int, tally: Tally
) -> None:
    payloads = [(video.name, video.read_bytes()) for video in videos]
    with httpx.Client(base_url=url, timeout=120) as client:
        for number in itertools.count():
            if time.monotonic() >= deadline:
                return
            name, data = payloads[(offset + number) % len(payloads)]
            is_job = job_every > 0 and (offset + number) % job_every == job_every - 1
            begin = time.perf_counter()
            try:
                if is_job:
                    annotate = number % 2 == 0
                    reply = client.post(
                        "/jobs",
                        files={"file": (name, data)},
                        data={"annotate": str(annotate).lower()},
                    )
                else:
                    reply = client.post("/predict", files={"file": (name, data)})
                status, text = reply.status_code, reply.text[:200]
            except httpx.HTTPError as error:
                status, text = 0, f"{type(error).__name__}: {error}"
            elapsed = time.perf_counter() - begin
            with tally.lock:
                if status == 429:
                    tally.refused += 1
                elif not 200 <= status < 300:
                    tally.errors += 1
                    tally.error_samples.append(f"{status} {text}")
                elif is_job:
                    tally.jobs.append((reply.json()["id"], annotate))
                else:
                    tally.predicts += 1
                    tally.latencies.append(elapsed)
            if status == 429:
                time.sleep(0.2)


def check_jobs(url: str, jobs: list[tuple[str, bool]], timeout: float) -> dict[str, Any]:
    """Wait for every accepted job; count those done with their timeline (and video) served."""
    pending = dict(jobs)
    complete = failed = 0
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=60) as client:
        while pending and time.monotonic() < deadline:
            for job_id, annotate in list(pending.items()):
                status = client.get(f"/jobs/{job_id}").json()["status"]
                if status not in ("done", "failed"):
                    continue
                del pending[job_id]
                served = status == "done" and client.get(f"/jobs/{job_id}/timeline").is_success
                if served and annotate:
                    served = client.get(f"/jobs/{job_id}/annotated.mp4").is_success
                complete += served
                failed += not served
            time.sleep(0.25)
    return {
        "submitted": len(jobs),
        "with_result": complete,
        "failed": failed,
        "unfinished": len(pending),
    }


def load_run(
    url: str, videos: list[Path], clients: int, seconds: float, job_every: int
) -> dict[str, Any]:
    tally = Tally()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=client_loop, args=(url, videos, index * 3, deadline, job_every, tally)
        )
        for index in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    jobs = check_jobs(url, tally.jobs, timeout=max(120.0, 10 * seconds))
    requests = tally.predicts + len(tally.jobs) + tally.errors + tally.refused
    return {
        "scenario": "HTTP /predict+/jobs",
        "clients": clients,
        "requests": requests,
        "seconds": wall,
        "rps": requests / wall,
        "predict_rps": tally.predicts / wall,
        "p50_ms": 1000 * percentile(tally.latencies, 50),
        "p95_ms": 1000 * percentile(tally.latencies, 95),
        "errors": tally.errors,
        "refused": tally.refused,
        "jobs": jobs,
        "error_samples": tally.error_samples[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small model, 8 s per run.")
    parser.add_argument("--model", type=Path, help="Checkpoint or .onnx (default: a tiny one).")
    parser.add_argument("--clients", default="1,4", help="Client counts, comma-separated.")
    parser.add_argument("--seconds", type=float, help="Seconds per run (default 20, quick 8).")
    parser.add_argument("--videos", type=int, default=12, help="How many real videos to cycle.")
    parser.add_argument("--workers", type=int, default=2, help="Server worker threads.")
    parser.add_argument("--max-queued", type=int, default=4, help="Server job queue bound.")
    parser.add_argument("--job-every", type=int, default=5, help="Every n-th request is a job.")
    args = parser.parse_args()
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    client_counts = [int(n) for n in args.clients.split(",") if n.strip()]
    videos = pick_videos(args.videos)
    with tempfile.TemporaryDirectory(prefix="resaction-serve-bench-") as tmp:
        model = args.model or write_checkpoint(Path(tmp), args.quick)
        console.print(f"model {model.name}, {len(videos)} videos, {seconds:g} s per run")
        before = direct_baseline(model, videos, seconds)
        runs = [before]
        for clients in client_counts:
            state = Path(tmp) / f"state-{clients}"
            with Server(model, state, args.workers, args.max_queued) as server:
                runs.append(load_run(server.url, videos, clients, seconds, args.job_every))
        after = direct_baseline(model, videos, seconds)
        after["scenario"] = "direct, after HTTP"
        runs.append(after)
    baseline_rps = (before["rps"] + after["rps"]) / 2
    show(runs, baseline_rps)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "serve.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "serve",
                "quick": args.quick,
                "model": str(args.model or "tsn_resnet18 (random weights, written for this run)"),
                "videos": [str(v) for v in videos],
                "seconds_per_run": seconds,
                "workers": args.workers,
                "max_queued": args.max_queued,
                "job_every": args.job_every,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg(),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                },
                "baseline_rps": baseline_rps,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {out}")
    if any(
        run.get("errors")
        or (run.get("jobs") or {}).get("with_result") != (run.get("jobs") or {}).get("submitted")
        for run in runs[1:]
    ):
        sys.exit(1)


def show(runs: list[dict[str, Any]], baseline_rps: float) -> None:
    """The table; ``vs direct`` divides by the mean of the direct runs before and after."""
    table = Table(title="resaction serve on loopback")
    for column in (
        "scenario",
        "clients",
        "requests",
        "req/s",
        "predict/s",
        "vs direct",
        "p50 ms",
        "p95 ms",
        "errors",
        "429",
        "jobs with result",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right", no_wrap=True)
    for run in runs:
        predict_rps = run.get("predict_rps", run["rps"])
        jobs = run.get("jobs")
        table.add_row(
            run["scenario"],
            str(run["clients"]),
            str(run["requests"]),
            f"{run['rps']:.2f}",
            f"{predict_rps:.2f}",
            f"{predict_rps / baseline_rps:.2f}x",
            f"{run['p50_ms']:.0f}",
            f"{run['p95_ms']:.0f}",
            str(run["errors"]),
            str(run["refused"]),
            f"{jobs['with_result']}/{jobs['submitted']}" if jobs else "-",
        )
    console.print(table)
    for run in runs:
        for sample in run.get("error_samples", []):
            console.print(f"[red]error[/] ({run['clients']} clients): {sample}", highlight=False)


if __name__ == "__main__":
    main()
