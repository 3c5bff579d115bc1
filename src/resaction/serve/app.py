"""The REST service: ``create_app(settings)`` builds a FastAPI app around one loaded model.

``POST /predict`` answers while the client waits (top-k of a short video); ``POST /jobs`` hands a
long video to the worker pool and returns at once, and the client polls ``GET /jobs/{id}``.
Request handlers stay thin: the refusals live in ``security``, the job bookkeeping in ``jobs``
and the work itself in ``tasks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import resaction
from resaction.errors import ResactionError
from resaction.inference import Predictor
from resaction.serve import tasks
from resaction.serve.docs import add_offline_docs
from resaction.serve.jobs import (
    DONE,
    FAILED,
    Job,
    JobPool,
    JobStore,
    QueueFullError,
    remove_job_files,
    sweep_expired,
    sweep_orphan_uploads,
)
from resaction.serve.security import (
    ApiError,
    Upload,
    VideoFacts,
    check_token,
    new_upload_path,
    receive_upload,
    resolve_media_path,
    sniff_video,
)
from resaction.serve.settings import ServeSettings

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("resaction.serve") / "static"))
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
}
JANITOR_INTERVAL_S = 60.0
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}


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


class PredictGate:
    """Runs at most ``running`` predictions at once and lets at most ``waiting`` more wait; a
    request beyond that is refused (429) before its upload is read."""

    def __init__(self, running: int, waiting: int) -> None:
        self.limiter = anyio.CapacityLimiter(running)
        self.capacity = running + waiting
        self.active = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        if self.active >= self.capacity:
            raise _busy(f"{self.active} predictions are running or waiting")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def _busy(what: str) -> ApiError:
    return ApiError(
        429,
        "busy",
        f"the server is at capacity ({what}); try again in a few seconds",
        {"Retry-After": "5"},
    )


@dataclass
class Service:
    """Everything the handlers share: settings, the model, the job store and pool."""

    settings: ServeSettings
    predictor: Predictor
    store: JobStore
    pool: JobPool
    gate: PredictGate
    uploads_dir: Path
    results_dir: Path
    model_file: str

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


def create_app(settings: ServeSettings, predictor: Predictor | None = None) -> FastAPI:
    """The service for ``settings``; the model is loaded here, once, unless ``predictor`` is
    given (tests pass one in). Workers start and unfinished jobs resume with the app's lifespan.
    """
    settings.check()
    predictor = predictor if predictor is not None else Predictor.from_checkpoint(settings.model)
    state_dir = Path(settings.state_dir)
    store = JobStore(state_dir / "jobs.sqlite3")
    results_dir = state_dir / "results"
    service = Service(
        settings=settings,
        predictor=predictor,
        store=store,
        pool=JobPool(
            store,
            functools.partial(_run_job, predictor),
            results_dir,
            workers=settings.workers,
            max_queued=settings.max_queued,
            describe_error=public_message,
        ),
        gate=PredictGate(settings.workers, settings.max_queued),
        uploads_dir=state_dir / "uploads",
        results_dir=results_dir,
        model_file=Path(settings.model).name,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweep_orphan_uploads(store, service.uploads_dir)
        sweep_expired(store, results_dir, settings.retention_s)
        service.pool.start()
        janitor = asyncio.create_task(_janitor(service))
        try:
            yield
        finally:
            janitor.cancel()
            service.pool.stop()

    app = FastAPI(
        title="resaction",
        version=resaction.__version__,
        summary="Human action recognition in video: top-k labels and timelines over HTTP.",
        lifespan=lifespan,
        docs_url=None,  # served from local files by serve/docs.py, not from a CDN
        responses={
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            }
        },
    )
    app.state.service = service
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    _add_error_handlers(app)
    _add_routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_offline_docs(app)
    return app


def _run_job(predictor: Predictor, job: Job, out_dir: Path, progress: Any) -> dict[str, Any]:
    try:
        return tasks.run_job(predictor, job, out_dir, progress)
    except ResactionError as error:
        raise ResactionError(public_message(error, {f"{job.source}": job.name})) from None


async def _janitor(service: Service) -> None:
    interval = min(JANITOR_INTERVAL_S, max(0.5, service.settings.retention_s / 4))
    while True:
        await asyncio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(
                sweep_expired, service.store, service.results_dir, service.settings.retention_s
            )
        except Exception:  # the sweep is retried at the next tick
            log.exception("retention sweep failed")


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error(error.status, error.code, error.message, error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; see /docs"
        code = _HTTP_CODES.get(error.status_code, "http_error")
        return _error(error.status_code, code, message, getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return _error(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(ResactionError)
    async def resaction_error(request: Request, error: ResactionError) -> JSONResponse:
        return _error(422, "cannot_process", str(error))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(
            500,
            "internal_error",
            f"the server failed ({type(error).__name__}); the server log has the details",
        )


_bearer = HTTPBearer(auto_error=False, description="Needed when the server runs with --token.")

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    },
}
_JOB_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    **{
                        name: {"type": kind}
                        for name, kind in (
                            ("topk", "integer"),
                            ("stride", "integer"),
                            ("threshold", "number"),
                            ("min_duration", "number"),
                            ("smooth_window", "integer"),
                            ("annotate", "boolean"),
                        )
                    },
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["path"],
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "A video file under the server's --media-root.",
                    },
                    "options": {"type": "object"},
                },
            }
        },
    },
}


def _add_routes(app: FastAPI, service: Service) -> None:
    settings = service.settings

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
        check_token(header, settings.token)

    guarded = [Depends(authorised)]

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    @app.get("/health", tags=["service"], summary="Liveness and queue state (no token needed)")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": resaction.__version__,
            "model": service.predictor.model_name,
            "auth": settings.token is not None,
            "workers": settings.workers,
            "jobs": service.store.counts(),
        }

    @app.get("/model", tags=["service"], summary="The loaded model", dependencies=guarded)
    async def model() -> dict[str, Any]:
        predictor = service.predictor
        pre = predictor.preprocess
        crop = pre.get("crop")
        size = list(crop) if isinstance(crop, list | tuple) else [crop, crop]
        return {
            "name": predictor.model_name,
            "file": service.model_file,
            "backend": getattr(predictor.backend, "name", type(predictor.backend).__name__),
            "classes": predictor.classes,
            "num_classes": len(predictor.classes),
            "input": {
                "shape": [None, 3, pre.get("clip_len"), *size],
                "layout": "NCTHW",
                "dtype": "float32",
                **{
                    key: pre.get(key)
                    for key in (
                        "clip_len",
                        "sampling",
                        "frame_interval",
                        "target_fps",
                        "resize",
                        "crop",
                        "mean",
                        "std",
                    )
                },
            },
            "protocol": predictor.protocol,
            "limits": {
                "max_upload_mb": settings.max_upload_mb,
                "max_duration_s": settings.max_duration_s,
                "retention_s": settings.retention_s,
                "media_root": settings.media_root is not None,
            },
        }

    @app.post(
        "/predict",
        tags=["predict"],
        summary="Top-k labels of one uploaded video",
        dependencies=guarded,
        openapi_extra={"requestBody": _UPLOAD_BODY},
    )
    async def predict(
        request: Request, topk: int = Query(settings.topk, ge=1, le=1000)
    ) -> dict[str, Any]:
        with service.gate.admit():
            upload = await service.receive(request)
            try:
                facts = await service.sniff(upload.path, upload.filename)
                record = await anyio.to_thread.run_sync(
                    tasks.predict_record,
                    service.predictor,
                    upload.path,
                    upload.filename,
                    topk,
                    limiter=service.gate.limiter,
                )
            except ResactionError as error:
                message = public_message(error, {str(upload.path): upload.filename})
                raise ApiError(422, "cannot_process", message) from None
            finally:
                upload.path.unlink(missing_ok=True)
        return {**record, "video": facts.to_dict()}

    @app.post(
        "/jobs",
        tags=["jobs"],
        status_code=202,
        summary="Start a timeline job: an upload, or a path under --media-root",
        dependencies=guarded,
        openapi_extra={"requestBody": _JOB_BODY},
    )
    async def create_job(request: Request) -> JSONResponse:
        try:
            slot = service.pool.reserve()
        except QueueFullError:
            raise _busy(
                f"{settings.workers} worker(s) busy and {settings.max_queued} job(s) queued"
            ) from None
        try:
            job = await _accept_job(service, request)
            slot.submit(job.id)
        finally:
            slot.release()
        return JSONResponse(
            job.to_public(), status_code=202, headers={"Location": f"/jobs/{job.id}"}
        )

    @app.get("/jobs/{job_id}", tags=["jobs"], summary="Status and progress", dependencies=guarded)
    async def get_job(job_id: str) -> dict[str, Any]:
        return service.job(job_id).to_public()

    @app.get(
        "/jobs/{job_id}/timeline",
        tags=["jobs"],
        summary="The segments (JSON, or CSV with ?format=csv) and the chart data",
        dependencies=guarded,
        response_model=None,
    )
    async def timeline(
        job_id: str, format: str = Query("json", pattern="^(json|csv)$")
    ) -> dict[str, Any] | FileResponse:
        job = service.finished_job(job_id)
        if format == "csv":
            return FileResponse(
                service.job_file(job, "segments.csv"),
                media_type="text/csv",
                filename=f"{Path(job.name).stem}_segments.csv",
            )
        chart = await anyio.to_thread.run_sync(
            service.job_file(job, "chart.json").read_text, "utf-8"
        )
        assert job.result is not None
        return {
            "id": job.id,
            "name": job.name,
            "duration": job.result["duration"],
            "segments": job.result["segments"],
            "chart": json.loads(chart),
        }

    @app.get(
        "/jobs/{job_id}/timeline.png",
        tags=["jobs"],
        summary="The timeline plot",
        dependencies=guarded,
        response_class=FileResponse,
    )
    async def timeline_png(job_id: str) -> FileResponse:
        job = service.finished_job(job_id)
        return FileResponse(service.job_file(job, "timeline.png"), media_type="image/png")

    @app.get(
        "/jobs/{job_id}/annotated.mp4",
        tags=["jobs"],
        summary="The video with labels drawn",
        dependencies=guarded,
        response_class=FileResponse,
    )
    async def annotated(job_id: str) -> FileResponse:
        job = service.finished_job(job_id)
        if job.result is not None and not job.result.get("annotated", True):
            raise ApiError(404, "not_annotated", f"job {job_id} ran with annotate=false")
        return FileResponse(service.job_file(job, "annotated.mp4"), media_type="video/mp4")

    @app.delete(
        "/jobs/{job_id}",
        tags=["jobs"],
        summary="Delete a job and its files",
        dependencies=guarded,
    )
    async def delete_job(job_id: str) -> dict[str, Any]:
        job = service.job(job_id)
        service.store.delete(job.id)
        service.pool.forget(job.id)
        await anyio.to_thread.run_sync(remove_job_files, job, service.results_dir)
        return {"id": job.id, "deleted": True, "status_was": job.status}


async def _accept_job(service: Service, request: Request) -> Job:
    """Read the job's video (an upload, or a file under the media root) and record the job."""
    settings = service.settings
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "bad_json", "the request body is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("path"), str):
            raise ApiError(
                422, "invalid_request", 'send {"path": "<file under --media-root>"} as JSON'
            )
        options = tasks.JobOptions.parse(body.get("options") or {}, settings.topk)
        source = resolve_media_path(settings.media_root, body["path"])
        facts = await service.sniff(source, body["path"])
        return service.store.create(
            source, body["path"], is_upload=False, options=options.to_dict(), video=facts.to_dict()
        )
    upload = await service.receive(request)
    try:
        options = tasks.JobOptions.parse(upload.fields, settings.topk)
        facts = await service.sniff(upload.path, upload.filename)
        return service.store.create(
            upload.path,
            upload.filename,
            is_upload=True,
            options=options.to_dict(),
            video=facts.to_dict(),
        )
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
