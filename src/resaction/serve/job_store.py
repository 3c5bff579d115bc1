"""The timeline jobs' table: one SQLite file, so jobs survive a restart (``jobs`` runs them).

Every job is a row before it is queued, so a server that stops (or crashes) loses nothing: the
next one over the same database puts unfinished jobs back in the queue and serves finished
results. A worker *claims* a job by writing its own runner id into the row, and a result is
recorded only by the runner that holds the claim; a worker of an old process that wakes up late
cannot overwrite what a newer one did, and a deleted job cannot be resurrected by its worker.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resaction.storage import immediate_transaction

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
