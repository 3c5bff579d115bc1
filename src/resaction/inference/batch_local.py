"""``resaction batch --local``: the batch work in processes on this machine, without Ray.

Each process loads the model once and decodes and scores whole videos (``VideoScorer.score``).
Processes are started with ``spawn`` (a forked copy of a process that already ran torch or
PyAV threads can hang). If one dies, the pool is broken as a whole: it is replaced, and the
videos it held are tried again, up to the run's attempt limit, exactly as on Ray.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from resaction.inference.archive import VideoKey
from resaction.inference.batch_job import BatchJob, Outcomes
from resaction.inference.batch_work import VideoScorer, WorkSpec

_scorer: VideoScorer | None = None


def _start_worker(model_path: str, spec: str) -> None:
    global _scorer
    _scorer = VideoScorer(model_path, WorkSpec.from_json(spec), threads=1)


def _score(path: str) -> dict[str, Any]:
    assert _scorer is not None, "worker started without a model"
    return _scorer.score(path)


def default_local_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def run_local(todo: list[VideoKey], job: BatchJob, outcomes: Outcomes) -> None:
    """Score ``todo`` in ``job.num_workers`` processes (default: one per CPU), noted in
    ``outcomes.workers``."""
    workers = job.num_workers or default_local_workers()
    outcomes.workers = (workers, 0)
    waiting: deque[tuple[VideoKey, int]] = deque((key, 0) for key in todo)
    while waiting:
        pool = _new_pool(job, workers)
        try:
            _drain(pool, waiting, outcomes, workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _new_pool(job: BatchJob, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(str(job.model_path), job.spec.to_json()),
    )


def _drain(
    pool: ProcessPoolExecutor,
    waiting: deque[tuple[VideoKey, int]],
    outcomes: Outcomes,
    workers: int,
) -> None:
    """Run videos until none are left, or return when the pool breaks (a process died).

    A process death cannot be pinned on one of the videos in flight, so each of them counts it
    and then runs alone; only deaths while alone can use up a video's attempts.
    """
    running: dict[Future[dict[str, Any]], tuple[VideoKey, int]] = {}
    while waiting or running:
        while waiting and len(running) < 2 * workers and not _suspect_running(running):
            if waiting[0][1] and running:
                break
            key, deaths = waiting.popleft()
            running[pool.submit(_score, key.path)] = (key, deaths)
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        broken = False
        for future in done:
            try:
                row = future.result()
            except BrokenProcessPool:
                broken = True
                continue
            key, _ = running.pop(future)
            outcomes.result(key, row)
        if broken:
            alone = len(running) == 1
            for key, deaths in running.values():
                if not alone:
                    waiting.appendleft((key, max(deaths, 1)))
                elif outcomes.retry(key, deaths + 1, "its worker process died"):
                    waiting.appendleft((key, deaths + 1))
            return


def _suspect_running(running: dict[Future[dict[str, Any]], tuple[VideoKey, int]]) -> bool:
    return any(deaths for _, deaths in running.values())
