"""Batch inference over a video archive on Ray: ``run_batch(source, model, out)``.

The driver (this process) lists the videos, skips those already in the results folder, and is
the only writer of results: every outcome is appended to ``results.jsonl`` or
``failures.jsonl`` and synced before the next one is looked at (``archive.BatchStore``). Workers
never touch the results folder, so it only has to exist on the driver's machine.

On Ray, clips are decoded, sampled and transformed by CPU tasks (``decode_views``) and scored by
a pool of actors that load the model once each (GPU actors when the cluster has GPUs). The
driver keeps a bounded number of decodes in flight and one video per actor, and waits on all of
them with ``ray.wait``. A decode task whose process dies is retried by Ray; a video whose actor
dies is given to the restarted actor (or another) up to ``max_attempts`` times, then listed as a
failure. A corrupt file is one failure row; the rest of the archive goes on. ``docs/scale.md``
says why this is tasks and actors rather than Ray Data.

Without Ray (``local=True``) the same work runs in local processes (``batch_local``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from resaction.data.video_lists import list_videos
from resaction.errors import CheckpointError, ConfigError
from resaction.inference.archive import BatchStore, VideoKey
from resaction.inference.batch_job import BatchJob, BatchOptions, BatchSummary, Outcomes
from resaction.inference.batch_local import run_local
from resaction.inference.batch_ray import (
    RAY_MISSING,
    check_reachable,
    run_on_ray,
    start_local_ray,
)
from resaction.inference.batch_work import WorkSpec, pipeline_json
from resaction.inference.predictor import Predictor

__all__ = ["BatchOptions", "BatchSummary", "run_batch", "start_local_ray"]


def run_batch(
    source: str | Path,
    model: str | Path,
    out: str | Path,
    options: BatchOptions | None = None,
    *,
    on_commit: Callable[[dict[str, Any]], None] | None = None,
) -> BatchSummary:
    """Score every video of ``source`` not already done in ``out``; see the module docstring.

    ``model`` is a checkpoint or an ``.onnx`` file. ``on_commit`` is called with each result
    row once it is on disk. Joins the Ray session of this process if there is one, else starts
    a local one on loopback (or joins ``options.address``).
    """
    options = options or BatchOptions()
    options.check()
    if not options.local and importlib.util.find_spec("ray") is None:
        raise ConfigError(RAY_MISSING)
    if options.address is not None:
        check_reachable(options.address)
    model_path = Path(model).expanduser()
    if not model_path.is_file():
        raise CheckpointError(f"model {model_path} not found: pass a checkpoint or .onnx file")
    videos = list_videos(source)
    predictor = Predictor.from_checkpoint(model_path)
    spec = WorkSpec(options.mode, options.topk, dict(options.timeline))
    settings = {
        "model_sha256": file_digest(model_path),
        "mode": spec.mode,
        **({"topk": spec.topk} if spec.mode == "predict" else {"timeline": spec.timeline}),
        "preprocess": predictor.preprocess,
        "protocol": predictor.protocol,
    }
    job = BatchJob(
        model_path=model_path,
        spec=spec,
        pipeline=pipeline_json(predictor),
        num_workers=options.num_workers,
        num_cpus=options.num_cpus,
        address=options.address,
    )
    started = time.perf_counter()
    with BatchStore(out, settings) as store:
        todo, missing = _plan(videos, store, options.retry_failures)
        summary = BatchSummary(
            out_dir=store.out_dir,
            total=len(videos),
            already_done=len(videos) - len(todo) - len(missing),
            scored=0,
            failed=0,
            seconds=0.0,
            engine="local" if options.local else "ray",
            workers=0,
        )
        outcomes = Outcomes(
            store,
            total=summary.total,
            already_done=summary.already_done,
            max_attempts=options.max_attempts,
            progress=options.progress,
            on_commit=on_commit,
        )
        status = "interrupted"
        try:
            for path in missing:
                outcomes.failure({"path": path, "size": None, "mtime_ns": None}, "file not found")
            if todo:
                (run_local if options.local else run_on_ray)(todo, job, outcomes)
            status = "complete"
        finally:
            outcomes.close()
            summary.scored, summary.failed = outcomes.scored, outcomes.failed
            summary.workers, summary.gpus = outcomes.workers
            summary.seconds = time.perf_counter() - started
            store.close(_run_record(summary, model_path, source, status))
            summary.failures = store.open_failures()
    return summary


def _plan(
    videos: list[Path], store: BatchStore, retry_failures: bool
) -> tuple[list[VideoKey], list[str]]:
    todo, missing = [], []
    for video in videos:
        try:
            key = VideoKey.of(video)
        except OSError:
            missing.append(str(video.expanduser().resolve()))
            continue
        if not store.is_done(key, retry_failures=retry_failures):
            todo.append(key)
    return todo, missing


def _run_record(
    summary: BatchSummary, model_path: Path, source: str | Path, status: str
) -> dict[str, Any]:
    record = asdict(summary)
    record.pop("failures")
    record.update(
        out_dir=str(summary.out_dir),
        seconds=round(summary.seconds, 3),
        videos_per_s=round(summary.videos_per_s, 3),
        model=str(model_path.resolve()),
        source=str(Path(source).expanduser().resolve()),
        status=status,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    return record


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
