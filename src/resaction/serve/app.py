"""The REST service: ``create_app(settings)`` builds a FastAPI app around one loaded model.

``POST /predict`` answers while the client waits (top-k of a short video); ``POST /jobs`` hands a
long video to the worker pool and returns at once, and the client polls ``GET /jobs/{id}``.
The endpoints are routers in ``routes``; handlers stay thin: the refusals live in ``security``,
the job bookkeeping in ``jobs`` and the work itself in ``tasks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import resaction
from resaction.errors import ResactionError
from resaction.folder_lock import FolderLock
from resaction.inference import Predictor
from resaction.runtime.loading import load_model
from resaction.serve import tasks
from resaction.serve.docs import add_offline_docs
from resaction.serve.explaining import Explainer
from resaction.serve.gate import PredictGate
from resaction.serve.job_store import Job, JobStore
from resaction.serve.jobs import JobPool, sweep_expired, sweep_orphan_uploads
from resaction.serve.openapi import ERROR_SCHEMA
from resaction.serve.routes import STATIC_DIR, jobs, service_routes
from resaction.serve.security import ApiError
from resaction.serve.service import Service, public_message
from resaction.serve.settings import ServeSettings
from resaction.serve.watch_routes import watch, watch_page
from resaction.serve.watching import WatchHub

log = logging.getLogger(__name__)

JANITOR_INTERVAL_S = 60.0


def create_app(settings: ServeSettings, predictor: Predictor | None = None) -> FastAPI:
    """The service for ``settings``; the model is loaded here, once, unless ``predictor`` is
    given (tests pass one in). Workers start and unfinished jobs resume with the app's lifespan;
    with ``settings.watch`` the live watcher starts and stops with it too. The state folder is
    locked from here to the lifespan's end: a second server on it would run this one's jobs
    again.
    """
    settings.check()
    predictor = predictor if predictor is not None else Predictor.from_checkpoint(settings.model)
    state_dir = Path(settings.state_dir)
    lock = FolderLock(
        state_dir,
        "another resaction serve is using",
        "stop it or choose another --state-dir",
        flag="--state-dir",
    )
    hub = None
    if settings.watch is not None:  # its own copy: live scoring may switch a TSM's shift mode
        hub = WatchHub.create(settings.watch, load_model(settings.model), state_dir / "watch")
    service = _service(settings, predictor, state_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweep_orphan_uploads(service.store, service.uploads_dir)
        sweep_expired(service.store, service.results_dir, settings.retention_s)
        service.pool.start()
        janitor = asyncio.create_task(_janitor(service))
        if hub is not None:
            hub.start()
        try:
            yield
        finally:
            janitor.cancel()
            if hub is not None:
                await _stop_watching(hub)
            service.pool.stop()
            lock.close()

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
    app.state.watch = hub
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    _add_error_handlers(app)
    app.include_router(service_routes)
    app.include_router(jobs)
    app.include_router(watch_page)
    app.include_router(watch)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_offline_docs(app)
    return app


def _service(settings: ServeSettings, predictor: Predictor, state_dir: Path) -> Service:
    """What the handlers share, over ``state_dir``: the job store and its worker pool, the
    prediction gate and the explainer."""
    store = JobStore(state_dir / "jobs.sqlite3")
    results_dir = state_dir / "results"
    return Service(
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
        explainer=Explainer(predictor, Path(settings.model)),
    )


GRACEFUL_SHUTDOWN_S = 5


class _Server(uvicorn.Server):
    """uvicorn that ends the live event streams as soon as it starts shutting down."""

    async def shutdown(self, sockets: Any = None) -> None:
        hub = getattr(self.config.app.state, "watch", None)
        if hub is not None:
            hub.end_streams()
        await super().shutdown(sockets)


def run_server(app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM; a stream still open after ``GRACEFUL_SHUTDOWN_S``
    is cut so the shutdown never hangs.

    Stopping is a server's normal end, so a stop that shut down cleanly returns (exit 0) rather
    than re-raising the signal as uvicorn does after its shutdown (130 for Ctrl-C, killed by
    SIGTERM under systemd or docker)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = _Server(config)
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.run()
    except KeyboardInterrupt:
        if not server.should_exit:
            raise
    finally:
        signal.signal(signal.SIGTERM, before)


def _run_job(predictor: Predictor, job: Job, out_dir: Path, progress: Any) -> dict[str, Any]:
    try:
        return tasks.run_job(predictor, job, out_dir, progress)
    except ResactionError as error:
        raise ResactionError(public_message(error, {f"{job.source}": job.name})) from None


async def _stop_watching(hub: WatchHub) -> None:
    try:
        await anyio.to_thread.run_sync(hub.stop)
    except Exception:  # the worker's failure was logged when it happened
        log.exception("the watcher stopped with an error")


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
