"""The service's endpoints, as two routers: the page, health and model, and prediction
(``service_routes``), and the timeline jobs with their explanations (``jobs``). Handlers get the
shared ``Service`` and the token check as dependencies and stay thin: refusals live in
``security``, job bookkeeping in ``jobs``, the work in ``tasks`` and ``explaining``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

import resaction
from resaction.errors import ResactionError
from resaction.serve import tasks
from resaction.serve.explaining import (
    EXPLAIN_DIR,
    ExplainParams,
    explain_kind,
    explain_params,
    explain_routes,
    explanation_response,
    job_video,
)
from resaction.serve.gate import busy
from resaction.serve.job_store import Job
from resaction.serve.jobs import QueueFullError, remove_job_files
from resaction.serve.openapi import UPLOAD_BODY, job_body
from resaction.serve.security import ApiError, check_token, resolve_media_path
from resaction.serve.service import Service, public_message

STATIC_DIR = Path(str(resources.files("resaction.serve") / "static"))
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
}
_bearer = HTTPBearer(auto_error=False, description="Needed when the server runs with --token.")


def get_service(request: Request) -> Service:
    return request.app.state.service


def authorised(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    service: Service = Depends(get_service),
) -> None:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    check_token(header, service.settings.token)


guarded = [Depends(authorised)]
service_routes = APIRouter()
jobs = APIRouter(tags=["jobs"], dependencies=guarded)


@service_routes.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


@service_routes.get(
    "/health", tags=["service"], summary="Liveness and queue state (no token needed)"
)
async def health(service: Service = Depends(get_service)) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": resaction.__version__,
        "model": service.predictor.model_name,
        "auth": service.settings.token is not None,
        "workers": service.settings.workers,
        "jobs": service.store.counts(),
    }


@service_routes.get("/model", tags=["service"], summary="The loaded model", dependencies=guarded)
async def model(service: Service = Depends(get_service)) -> dict[str, Any]:
    predictor = service.predictor
    facts = predictor.spec.facts()
    crop = facts["crop"]
    size = list(crop) if isinstance(crop, list | tuple) else [crop, crop]
    return {
        "name": predictor.model_name,
        "file": service.model_file,
        "backend": getattr(predictor.backend, "name", type(predictor.backend).__name__),
        "classes": predictor.classes,
        "num_classes": len(predictor.classes),
        "input": {
            "shape": [None, 3, facts["clip_len"], *size],
            "layout": "NCTHW",
            "dtype": "float32",
            **facts,
        },
        "protocol": predictor.protocol,
        "limits": {
            "max_upload_mb": service.settings.max_upload_mb,
            "max_duration_s": service.settings.max_duration_s,
            "retention_s": service.settings.retention_s,
            "media_root": service.settings.media_root is not None,
        },
    }


@service_routes.post(
    "/predict",
    tags=["predict"],
    summary="Top-k labels of one uploaded video",
    dependencies=guarded,
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def predict(
    request: Request,
    topk: int | None = Query(None, ge=1, le=1000, description="default: the server's --topk"),
    service: Service = Depends(get_service),
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
                topk or service.settings.topk,
                limiter=service.gate.limiter,
            )
        except ResactionError as error:
            message = public_message(error, {str(upload.path): upload.filename})
            raise ApiError(422, "cannot_process", message) from None
        finally:
            upload.path.unlink(missing_ok=True)
    return {**record, "video": facts.to_dict()}


@jobs.post(
    "/jobs",
    status_code=202,
    summary="Start a timeline job: an upload, or a path under --media-root",
    openapi_extra={"requestBody": job_body()},
)
async def create_job(request: Request, service: Service = Depends(get_service)) -> JSONResponse:
    try:
        slot = service.pool.reserve()
    except QueueFullError:
        settings = service.settings
        raise busy(
            f"{settings.workers} worker(s) busy and {settings.max_queued} job(s) queued"
        ) from None
    try:
        job = await _accept_job(service, request)
        slot.submit(job.id)
    finally:
        slot.release()
    return JSONResponse(job.to_public(), status_code=202, headers={"Location": f"/jobs/{job.id}"})


@jobs.get("/jobs/{job_id}", summary="Status and progress")
async def get_job(job_id: str, service: Service = Depends(get_service)) -> dict[str, Any]:
    return service.job(job_id).to_public()


@jobs.get(
    "/jobs/{job_id}/timeline",
    summary="The segments (JSON, or CSV with ?format=csv) and the chart data",
    response_model=None,
)
async def timeline(
    job_id: str,
    format: str = Query("json", pattern="^(json|csv)$"),
    service: Service = Depends(get_service),
) -> dict[str, Any] | FileResponse:
    job = service.finished_job(job_id)
    if format == "csv":
        return FileResponse(
            service.job_file(job, "segments.csv"),
            media_type="text/csv",
            filename=f"{Path(job.name).stem}_segments.csv",
        )
    chart = await anyio.to_thread.run_sync(service.job_file(job, "chart.json").read_text, "utf-8")
    assert job.result is not None
    return {
        "id": job.id,
        "name": job.name,
        "duration": job.result["duration"],
        "segments": job.result["segments"],
        "chart": json.loads(chart),
    }


@jobs.get(
    "/jobs/{job_id}/timeline.png",
    summary="The timeline plot",
    response_class=FileResponse,
)
async def timeline_png(job_id: str, service: Service = Depends(get_service)) -> FileResponse:
    job = service.finished_job(job_id)
    return FileResponse(service.job_file(job, "timeline.png"), media_type="image/png")


@jobs.get(
    "/jobs/{job_id}/annotated.mp4",
    summary="The video with labels drawn",
    response_class=FileResponse,
)
async def annotated(job_id: str, service: Service = Depends(get_service)) -> FileResponse:
    job = service.finished_job(job_id)
    if job.result is not None and not job.result.get("annotated", True):
        raise ApiError(404, "not_annotated", f"job {job_id} ran with annotate=false")
    return FileResponse(service.job_file(job, "annotated.mp4"), media_type="video/mp4")


@explain_routes(
    jobs,
    "/jobs/{job_id}",
    "Where and when the model looked: the video, or start..end, as a heat-map MP4",
)
async def explain(
    job_id: str,
    params: ExplainParams = Depends(explain_params),
    kind: str = Depends(explain_kind),
    service: Service = Depends(get_service),
) -> FileResponse:
    job = service.finished_job(job_id)
    assert job.result_dir is not None and job.result is not None
    video = job_video(job)
    return await explanation_response(
        service.explainer,
        service.gate,
        video,
        job.result_dir / EXPLAIN_DIR,
        params.snapped(float(job.result["duration"])),
        job.name,
        kind,
    )


@jobs.delete(
    "/jobs/{job_id}",
    summary="Delete a job and its files",
)
async def delete_job(job_id: str, service: Service = Depends(get_service)) -> dict[str, Any]:
    job = service.job(job_id)
    service.store.delete(job.id)
    service.pool.forget(job.id)
    await anyio.to_thread.run_sync(remove_job_files, job, service.results_dir)
    return {"id": job.id, "deleted": True, "status_was": job.status}


async def _accept_job(service: Service, request: Request) -> Job:
    """Read the job's video (an upload, or a file under the media root) and record the job."""
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
        options = tasks.JobOptions.parse(body.get("options") or {}, service.settings.topk)
        source = resolve_media_path(service.settings.media_root, body["path"])
        facts = await service.sniff(source, body["path"])
        return service.store.create(
            source, body["path"], is_upload=False, options=options.to_dict(), video=facts.to_dict()
        )
    upload = await service.receive(request)
    try:
        options = tasks.JobOptions.parse(upload.fields, service.settings.topk)
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
