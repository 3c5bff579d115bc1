"""The live watcher's endpoints (``resaction serve --watch CAMERAS.yaml``): the page at
``/watch``, camera tiles and frames, events with their evidence and its explanation, the
server-sent-events stream and the Prometheus metrics. All but the page take the same token as
the rest of the API (``routes.guarded``); without ``--watch`` they answer 404 ``not_watching``."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from resaction.serve.explaining import (
    ExplainParams,
    explain_kind,
    explain_params,
    explain_routes,
    explanation_response,
)
from resaction.serve.routes import PAGE_HEADERS, STATIC_DIR, get_service, guarded
from resaction.serve.security import ApiError
from resaction.serve.service import Service
from resaction.serve.watching import MAX_FRAME_AGE_S, WatchHub, with_links

watch_page = APIRouter()
watch = APIRouter(tags=["watch"], dependencies=guarded)
NO_STORE = {"Cache-Control": "no-store"}
EXPLAIN_SUFFIX = "explain"  # an event's explanations: clips/<id>.explain/ beside clips/<id>.mp4


def get_hub(request: Request) -> WatchHub:
    hub = getattr(request.app.state, "watch", None)
    if hub is None:
        raise ApiError(
            404,
            "not_watching",
            "this server watches no cameras: start it with resaction serve --watch CAMERAS.yaml",
        )
    return hub


@watch_page.get("/watch", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "watch.html", headers=PAGE_HEADERS)


@watch.get("/cameras", summary="Every camera: state, current label and score, counters")
async def cameras(hub: WatchHub = Depends(get_hub)) -> dict[str, Any]:
    error = hub.worker_error()
    return {"cameras": hub.cameras(), "running": hub.running and error is None, "error": error}


@watch.get(
    "/cameras/{name}/frame.jpg",
    summary="The camera's latest frame (at the model's input size); 503 when older than 2 s",
    response_class=Response,
)
async def frame(
    name: str,
    max_age: float = Query(MAX_FRAME_AGE_S, gt=0, description="oldest frame served, seconds"),
    hub: WatchHub = Depends(get_hub),
) -> Response:
    data, seq, age = hub.frame_jpeg(name, max_age)
    headers = {**NO_STORE, "X-Frame-Seq": str(seq), "X-Frame-Age": f"{age:.3f}"}
    return Response(data, media_type="image/jpeg", headers=headers)


@watch.get("/events", summary="Events newest first, filtered by camera, label and time")
async def events(
    camera: str | None = None,
    label: str | None = None,
    since: str | None = Query(None, description="Unix seconds or ISO 8601; events not ended by"),
    until: str | None = Query(None, description="Unix seconds or ISO 8601; events started by"),
    limit: int = Query(100, ge=1, le=1000),
    hub: WatchHub = Depends(get_hub),
) -> dict[str, Any]:
    found = await anyio.to_thread.run_sync(
        lambda: hub.watcher.log.events(
            camera=camera,
            label=label,
            since=parse_time("since", since),
            until=parse_time("until", until),
            limit=limit,
        )
    )
    return {"events": [with_links(event.to_dict()) for event in found]}


@watch.get("/events/{event_id}", summary="One event")
async def event(event_id: str, hub: WatchHub = Depends(get_hub)) -> dict[str, Any]:
    found = await anyio.to_thread.run_sync(hub.event, event_id)
    return with_links(found.to_dict())


@watch.get(
    "/events/{event_id}/clip.mp4",
    summary="The event's evidence clip (from pre seconds before to post seconds after)",
    response_class=FileResponse,
)
async def clip(event_id: str, hub: WatchHub = Depends(get_hub)) -> FileResponse:
    path = await anyio.to_thread.run_sync(hub.evidence, event_id, "clip")
    return FileResponse(path, media_type="video/mp4", filename=f"{event_id}.mp4")


@watch.get(
    "/events/{event_id}/snapshot.jpg",
    summary="The frame the event opened on",
    response_class=FileResponse,
)
async def snapshot(event_id: str, hub: WatchHub = Depends(get_hub)) -> FileResponse:
    path = await anyio.to_thread.run_sync(hub.evidence, event_id, "snapshot")
    return FileResponse(path, media_type="image/jpeg")


@explain_routes(
    watch,
    "/events/{event_id}",
    "Where and when the model looked in the event's clip, for the event's class",
)
async def explain(
    event_id: str,
    params: ExplainParams = Depends(explain_params),
    kind: str = Depends(explain_kind),
    hub: WatchHub = Depends(get_hub),
    service: Service = Depends(get_service),
) -> FileResponse:
    # The event's clip explained by the service's model (the file the watcher runs) for the
    # event's class unless ``label`` names another; 409 while the clip is still to be cut.
    found = await anyio.to_thread.run_sync(hub.event, event_id)
    if found.clip is None and found.state == "open":
        raise ApiError(
            409,
            "clip_not_ready",
            f"event {event_id} is still open: its clip is cut once it has ended and its "
            "post-roll is recorded; try again then",
        )
    clip = await anyio.to_thread.run_sync(hub.evidence, event_id, "clip")
    return await explanation_response(
        service.explainer,
        service.gate,
        clip,
        clip.parent / f"{clip.stem}.{EXPLAIN_SUFFIX}",
        params if params.label is not None else replace(params, label=found.label),
        f"event {event_id}'s clip",
        kind,
    )


@watch.get(
    "/watch/stream",
    summary="Server-sent events: camera status twice a second, state changes, events",
    response_class=StreamingResponse,
)
async def stream(hub: WatchHub = Depends(get_hub)) -> StreamingResponse:
    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(hub.stream(), media_type="text/event-stream", headers=headers)


@watch.get("/metrics", summary="The watcher's Prometheus metrics", response_class=Response)
async def metrics(hub: WatchHub = Depends(get_hub)) -> Response:
    hub.cameras()  # refreshes the per-camera input-fps gauges
    return Response(generate_latest(hub.watcher.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def parse_time(name: str, value: str | None) -> float | None:
    """Unix seconds, or an ISO 8601 time (local time when it names no zone)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise ApiError(
            422,
            "invalid_request",
            f"{name}={value!r} is not a time: give Unix seconds or ISO 8601 (2024-05-01T12:00:00)",
        ) from None
