"""Timeline jobs run by a bounded pool of worker threads, and the sweeps that delete old jobs'
files. The jobs themselves are rows of ``job_store.JobStore``: a worker claims a row before it
runs it and records the result only while it still holds the claim.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resaction.serve.job_store import Job, JobStore

log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """Every worker is busy and the queue holds as many jobs as it may."""


class JobStopped(Exception):
    """Raised by a job's progress callback once the pool is stopping: the job ends where it is
    and stays unfinished in the store, so the next start runs it again."""


class QueueSlot:
    """One reserved place in a ``JobPool``'s queue: ``submit`` fills it with a job,
    ``release`` gives it back if nothing was submitted (a no-op after ``submit``)."""

    def __init__(self, pool: JobPool) -> None:
        self._pool = pool
        self._open = True

    def submit(self, job_id: str) -> None:
        if not self._open:
            raise RuntimeError("this queue slot was already used or released")
        self._open = False
        self._pool._submit(job_id)

    def release(self) -> None:
        if self._open:
            self._open = False
            self._pool._slots.release()


Progress = Callable[[float, str], None]
Handler = Callable[[Job, Path, Progress], dict[str, Any]]


class JobPool:
    """``workers`` threads running jobs from a queue of at most ``max_queued`` waiting jobs.

    ``handler(job, out_dir, progress)`` does the work and returns the result summary; it writes
    its files into ``out_dir``. A handler exception fails the job with its message.
    """

    def __init__(
        self,
        store: JobStore,
        handler: Handler,
        results_dir: Path,
        *,
        workers: int = 1,
        max_queued: int = 8,
        describe_error: Callable[[BaseException], str] = str,
    ) -> None:
        self.store = store
        self.handler = handler
        self.results_dir = Path(results_dir)
        self.workers = workers
        self.max_queued = max_queued
        self.describe_error = describe_error
        self.stop_timeout = 5.0
        self.runner = uuid.uuid4().hex
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._slots = threading.BoundedSemaphore(max_queued)
        self._admitted: set[str] = set()
        self._admitted_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def reserve(self) -> QueueSlot:
        """A place in the queue, held while the caller reads an upload, so a full queue is
        refused before the bytes arrive; raises ``QueueFullError`` when there is none."""
        if not self._slots.acquire(blocking=False):
            raise QueueFullError
        return QueueSlot(self)

    def _submit(self, job_id: str) -> None:
        with self._admitted_lock:
            self._admitted.add(job_id)
        self._queue.put(job_id)

    def start(self) -> int:
        """Start the workers and queue the jobs a previous server left unfinished."""
        self._stopping.clear()
        resumed = self.store.requeue_unfinished()
        for job_id in resumed:
            self._queue.put(job_id)
        for number in range(self.workers):
            thread = threading.Thread(
                target=self._work, name=f"resaction-job-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if resumed:
            log.info("resumed %d unfinished jobs", len(resumed))
        return len(resumed)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the workers, each at its job's next progress report, waiting at most
        ``timeout`` seconds (``stop_timeout`` by default); unfinished jobs stay in the store for
        the next start. A worker still inside torch when the interpreter exits aborts it."""
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def forget(self, job_id: str) -> None:
        """Give back the queue slot of a job deleted before a worker took it."""
        self._take(job_id)

    def _take(self, job_id: str) -> None:
        with self._admitted_lock:
            admitted = job_id in self._admitted
            self._admitted.discard(job_id)
        if admitted:
            self._slots.release()

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            self._take(job_id)
            job = self.store.claim(job_id, self.runner)
            if job is None:
                continue
            try:
                self._run(job)
            except Exception:  # a worker must survive anything a job does
                log.exception("job %s crashed its worker", job_id)

    def _run(self, job: Job) -> None:
        out_dir = self.results_dir / job.id / f"attempt-{job.attempts}-{self.runner[:8]}"
        out_dir.mkdir(parents=True, exist_ok=True)
        last = [0.0, 0.0]

        def progress(fraction: float, stage: str) -> None:
            if self._stopping.is_set():
                raise JobStopped
            now = time.monotonic()
            if fraction - last[0] >= 0.01 or now - last[1] >= 0.5 or fraction >= 1.0:
                last[:] = [fraction, now]
                self.store.report(job.id, self.runner, min(max(fraction, 0.0), 1.0), stage)

        try:
            result = self.handler(job, out_dir, progress)
        except JobStopped:
            log.info("job %s stopped with the server; the next start runs it again", job.id)
            shutil.rmtree(out_dir, ignore_errors=True)
            return
        except Exception as error:
            log.info("job %s failed: %s", job.id, error)
            kept = self.store.finish(job.id, self.runner, error=self.describe_error(error))
        else:
            kept = self.store.finish(job.id, self.runner, result=result, result_dir=out_dir)
        if not kept:
            shutil.rmtree(out_dir, ignore_errors=True)
            if self.store.get(job.id) is None:
                shutil.rmtree(out_dir.parent, ignore_errors=True)
            return
        for earlier in out_dir.parent.iterdir():
            if earlier != out_dir:
                shutil.rmtree(earlier, ignore_errors=True)
        if job.is_upload:
            job.source.unlink(missing_ok=True)


def remove_job_files(job: Job, results_dir: Path) -> None:
    """Delete a job's results folder and, if it was uploaded, its video."""
    shutil.rmtree(Path(results_dir) / job.id, ignore_errors=True)
    if job.is_upload:
        job.source.unlink(missing_ok=True)


def sweep_expired(store: JobStore, results_dir: Path, retention_s: float) -> int:
    """Delete finished jobs (files, then row) older than ``retention_s``; how many went. Files
    first: once a job answers 404 its files are gone (the other order left a moment where they
    were not, and a crash between the two leaves a row that the next sweep removes)."""
    expired = store.finished_before(time.time() - retention_s)
    for job in expired:
        remove_job_files(job, results_dir)
        store.delete(job.id)
    return len(expired)


def sweep_orphan_uploads(store: JobStore, uploads_dir: Path) -> int:
    """Delete upload files no unfinished job needs (left by a crash mid-upload or mid-request)."""
    if not uploads_dir.is_dir():
        return 0
    keep = store.sources_in_use()
    removed = 0
    for path in uploads_dir.iterdir():
        if path.is_file() and str(path) not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
