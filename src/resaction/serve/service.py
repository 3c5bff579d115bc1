"""What the request handlers share: the settings, the model, the job store and pool, and the
gate that bounds how many predictions run or wait at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import Request

from resaction.errors import ResactionError
from resaction.inference import Predictor
from resaction.serve.explaining import Explainer
from resaction.serve.gate import PredictGate
from resaction.serve.job_store import DONE, FAILED, Job, JobStore
from resaction.serve.jobs import JobPool
from resaction.serve.security import (
    ApiError,
    Upload,
    VideoFacts,
    new_upload_path,
    receive_upload,
    sniff_video,
)
from resaction.serve.settings import ServeSettings


@dataclass
class Service:
    """Everything the handlers share: settings, the model, the job store and pool, and the
    explainer (``explaining``)."""

    settings: ServeSettings
    predictor: Predictor
    store: JobStore
    pool: JobPool
    gate: PredictGate
    uploads_dir: Path
    results_dir: Path
    model_file: str
    explainer: Explainer

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id) if job_id.isalnum() else None
        if job is None:
            raise ApiError(
                404,
                "job_not_found",
                f"no job {job_id!r}: it never existed, was deleted, or expired after "
                f"{self.settings.retention_s:g} s",
            )
        return job

    def finished_job(self, job_id: str) -> Job:
        job = self.job(job_id)
        if job.status == FAILED:
            raise ApiError(409, "job_failed", f"job {job_id} failed: {job.error}")
        if job.status != DONE or job.result_dir is None:
            raise ApiError(
                409,
                "job_not_finished",
                f"job {job_id} is {job.status} ({job.progress:.0%}); poll GET /jobs/{job_id} "
                "until its status is done",
            )
        return job

    def job_file(self, job: Job, name: str) -> Path:
        assert job.result_dir is not None
        path = job.result_dir / name
        if not path.is_file():
            raise ApiError(404, "file_not_found", f"job {job.id} has no {name}")
        return path

    async def sniff(self, path: Path, name: str) -> VideoFacts:
        return await anyio.to_thread.run_sync(sniff_video, path, name, self.settings.max_duration_s)

    async def receive(self, request: Request) -> Upload:
        return await receive_upload(
            request.headers.get("content-type", ""),
            request.headers.get("content-length"),
            request.stream(),
            new_upload_path(self.uploads_dir),
            self.settings.max_upload_bytes,
        )


def public_message(error: BaseException, replace: dict[str, str] | None = None) -> str:
    """One line for a job's ``error`` field: the user-facing message, server paths hidden."""
    if isinstance(error, ApiError):
        text = error.message
    elif isinstance(error, ResactionError):
        text = str(error)
    else:
        text = f"internal error ({type(error).__name__}: {error}); see the server log"
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    return " ".join(text.split())[:500]
