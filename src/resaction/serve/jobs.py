"""Timeline jobs that survive a restart: a SQLite store and a bounded pool of worker threads.

Every job is a row before it is queued, so a server that stops (or crashes) loses nothing: the
next one over the same database puts unfinished jobs back in the queue and serves finished
results. A worker *claims* a job by writing its own runner id into the row, and a result is
recorded only by the runner that holds the claim; a worker of an old process that wakes up late
cannot overwrite what a newer one did, and a deleted job cannot be resurrected by its worker.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resaction.storage import immediate_transaction

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINISHED = (DONE, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    is_upload INTEGER NOT NULL,
    options TEXT NOT NULL,
    video TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'queued',
    runner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    result_dir TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
"""


@dataclass
class Job:
    """One row of the job table, decoded."""

    id: str
    status: str
    source: Path
    name: str
    is_upload: bool
    options: dict[str, Any]
    video: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    progress: float
    stage: str
    runner: str | None
    attempts: int
    result: dict[str, Any] | None
    result_dir: Path | None
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            status=row["status"],
            source=Path(row["source"]),
            name=row["name"],
            is_upload=bool(row["is_upload"]),
            options=json.loads(row["options"]),
            video=json.loads(row["video"]),
            created=row["created"],
            started=row["started"],
            finished=row["finished"],
            progress=row["progress"],
            stage=row["stage"],
            runner=row["runner"],
            attempts=row["attempts"],
            result=json.loads(row["result"]) if row["result"] else None,
            result_dir=Path(row["result_dir"]) if row["result_dir"] else None,
            error=row["error"],
        )

    def to_public(self) -> dict[str, Any]:
        """What ``GET /jobs/{id}`` shows: status and progress, never server paths."""
        return {
            "id": self.id,
            "status": self.status,
            "stage": self.stage,
            "progress": round(self.progress, 4),
            "name": self.name,
            "video": self.video,
            "options": self.options,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "attempts": self.attempts,
            "error": self.error,
            "result": self.result,
        }


class JobStore:
    """The job table in one SQLite file, shared by the request handlers and the workers."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate_transaction(self._db) as db:
            yield db

    def create(
        self,
        source: Path,
        name: str,
        *,
        is_upload: bool,
        options: dict[str, Any],
        video: dict[str, Any],
    ) -> Job:
        job_id = uuid.uuid4().hex
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, status, source, name, is_upload, options, video, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    QUEUED,
                    str(source),
                    name,
                    int(is_upload),
                    json.dumps(options),
                    json.dumps(video),
                    time.time(),
                ),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def claim(self, job_id: str, runner: str) -> Job | None:
        """Mark a queued job as running under ``runner``; ``None`` if it is gone or not queued."""
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE jobs SET status = ?, runner = ?, started = ?, stage = 'starting', "
                "progress = 0, attempts = attempts + 1 WHERE id = ? AND status = ?",
                (RUNNING, runner, time.time(), job_id, QUEUED),
            ).rowcount
        return self.get(job_id) if updated else None

    def report(self, job_id: str, runner: str, progress: float, stage: str) -> bool:
        with self._transaction() as db:
            return bool(
                db.execute(
                    "UPDATE jobs SET progress = ?, stage = ? WHERE id = ? AND runner = ? "
                    "AND status = ?",
                    (progress, stage, job_id, runner, RUNNING),
                ).rowcount
            )

    def finish(
        self,
        job_id: str,
        runner: str,
        *,
        result: dict[str, Any] | None = None,
        result_dir: Path | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome if ``runner`` still holds the job; ``False`` means it was lost."""
        status = FAILED if error is not None else DONE
        with self._transaction() as db:
            return bool(
                db.execute(
                    "UPDATE jobs SET status = ?, finished = ?, progress = ?, stage = ?, "
                    "result = ?, result_dir = ?, error = ? "
                    "WHERE id = ? AND runner = ? AND status = ?",
                    (
                        status,
                        time.time(),
                        1.0 if status == DONE else 0.0,
                        status,
                        json.dumps(result) if result is not None else None,
                        str(result_dir) if result_dir else None,
                        error,
                        job_id,
                        runner,
                        RUNNING,
                    ),
                ).rowcount
            )

    def requeue_unfinished(self) -> list[str]:
        """Put every job that was queued or running back in the queue, oldest first."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, stage = 'queued', progress = 0, runner = NULL "
                "WHERE status = ?",
                (QUEUED, RUNNING),
            )
            rows = db.execute(
                "SELECT id FROM jobs WHERE status = ? ORDER BY created", (QUEUED,)
            ).fetchall()
        return [row["id"] for row in rows]

    def delete(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None:
            with self._transaction() as db:
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return job

    def finished_before(self, cutoff: float) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE status IN (?, ?) AND finished < ?", (*FINISHED, cutoff)
            ).fetchall()
        return [Job.from_row(row) for row in rows]

    def sources_in_use(self) -> set[str]:
        """Upload files that unfinished jobs still need."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source FROM jobs WHERE is_upload = 1 AND status IN (?, ?)",
                (QUEUED, RUNNING),
            ).fetchall()
        return {row["source"] for row in rows}

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            found = {row["status"]: row["n"] for row in rows}
        return {status: found.get(status, 0) for status in (QUEUED, RUNNING, DONE, FAILED)}

    def close(self) -> None:
        with self._lock:
            self._db.close()


class QueueFullError(Exception):
    """Every worker is busy and the queue holds as many jobs as it may."""


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
        """Ask the workers to stop after their current job, waiting at most ``timeout`` seconds
        (``stop_timeout`` by default); unfinished jobs stay in the store for the next start."""
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
            now = time.monotonic()
            if fraction - last[0] >= 0.01 or now - last[1] >= 0.5 or fraction >= 1.0:
                last[:] = [fraction, now]
                self.store.report(job.id, self.runner, min(max(fraction, 0.0), 1.0), stage)

        try:
            result = self.handler(job, out_dir, progress)
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
    """Delete finished jobs (row and files) older than ``retention_s``; how many went."""
    expired = store.finished_before(time.time() - retention_s)
    for job in expired:
        store.delete(job.id)
        remove_job_files(job, results_dir)
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
