"""Explanations through the service: ``GET /jobs/{id}/explain.mp4`` (a finished job's video,
whole or a stretch) and ``GET /events/{id}/explain.mp4`` (a live event's evidence clip).

The work is ``explain.explain_video`` and ``explain.write_explanation``, run while the client
waits and kept on disk: a job's explanations live in its results folder under ``explain/``, an
event's beside its clip, one folder per set of parameters (method, label, start, end, and the
model file), so asking again is answered from the file at once. Grad-CAM on the models the
service runs takes well under a second of compute, so a job in the queue and a status to poll
would cost the client more than the wait; occlusion can take minutes on a CPU for the bigger
models, and the request then waits that long (the page says so while it loads).

Grad-CAM hangs a forward hook on the network's last stage for one pass. The job workers and the
live watcher run their own passes through their own model at the same time, and a hook on a
shared module would record theirs too, so explanations run on a private copy of the PyTorch
network (made at the first explanation) one at a time under a lock. An ONNX Runtime session has
no hooks and is safe to call from several threads, so it is shared.

An uploaded video is deleted once its job has run; for explanations, a finished job keeps a
hard link (or a copy) of it in its results folder (``keep_video``), which goes with the job when
it is deleted or expires. A job under ``--media-root`` reads its file there.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from resaction.errors import ResactionError
from resaction.explain import METHODS, explain_video, write_explanation
from resaction.explain.run import CLASSES_LISTED
from resaction.inference import Predictor
from resaction.runtime.backends import TorchBackend
from resaction.serve.job_store import Job
from resaction.serve.security import ApiError

if TYPE_CHECKING:
    from resaction.serve.gate import PredictGate

KEPT_VIDEO = "kept-upload"
EXPLAIN_DIR = "explain"
END_SLACK_S = 1e-3
FILES = {"mp4": ("explain.mp4", "video/mp4"), "json": ("explain.json", "application/json")}
# explain's messages name the CLI's flags: "--start 2 s" becomes "start=2 s", "--class" "label"
_FLAG_VALUE = re.compile(r"--(?:(start|end) (?=-?\d)|(method) (?=\w))")
_FLAG = re.compile(r"--(start|end|method|class)\b")
JSON_SUMMARY = "The same explanation as JSON: per-frame importance, target, method, frames"
Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True)
class ExplainParams:
    """What to explain: ``method`` (None: Grad-CAM, or occlusion for a model without
    gradients), the class ``label`` (None: the clip's top-1) and the stretch in seconds."""

    method: str | None = None
    label: str | None = None
    start: float | None = None
    end: float | None = None

    def snapped(self, duration: float) -> ExplainParams:
        """An ``end`` within a millisecond of the video's end means the end itself: segment
        times are rounded, and the rounding may fall just past the last frame."""
        if self.end is None or abs(self.end - duration) > END_SLACK_S:
            return self
        return replace(self, start=0.0 if self.start is None else self.start, end=None)


def explain_params(
    method: str | None = Query(
        None, description="gradcam, gradcam++ or occlusion; default gradcam (occlusion for ONNX)"
    ),
    label: str | None = Query(None, description="the class to explain; default the top-1"),
    start: float | None = Query(None, description="seconds; default the start of the video"),
    end: float | None = Query(None, description="seconds; default the end of the video"),
) -> ExplainParams:
    """The query parameters every explanation endpoint takes."""
    return ExplainParams(method, label, start, end)


def explain_kind(request: Request) -> str:
    """Which of the explanation's files a request asks for: ``mp4`` or ``json``, the suffix of
    the route it came by (``explain_routes``)."""
    return request.url.path.rsplit(".", 1)[-1]


def explain_routes(router: APIRouter, prefix: str, summary: str) -> Callable[[Handler], Handler]:
    """Register one handler as ``GET {prefix}/explain.mp4`` (``summary``) and as
    ``{prefix}/explain.json``; it learns which of the two it answers from ``explain_kind``."""

    def register(handler: Handler) -> Handler:
        for kind, text in (("mp4", summary), ("json", JSON_SUMMARY)):
            path = f"{prefix}/explain.{kind}"
            router.get(path, name=f"explain_{kind}", summary=text, response_class=FileResponse)(
                handler
            )
        return handler

    return register


class Explainer:
    """Explanations by the service's model, computed one at a time and kept on disk."""

    def __init__(self, predictor: Predictor, model_file: Path) -> None:
        self.predictor = predictor
        self.model_id = _file_identity(Path(model_file))
        self._lock = threading.Lock()
        self._private: Predictor | None = None

    def resolve(self, params: ExplainParams) -> ExplainParams:
        """``params`` with the method filled in, or a one-line refusal of a method the model
        cannot take or a class it does not have."""
        gradients = isinstance(self.predictor.backend, TorchBackend)
        method = params.method or ("gradcam" if gradients else "occlusion")
        if method not in METHODS:
            raise ApiError(
                422, "bad_method", f"unknown method={method!r}; use one of {', '.join(METHODS)}"
            )
        if method != "occlusion" and not gradients:
            backend = getattr(self.predictor.backend, "name", "this backend")
            raise ApiError(
                422,
                "no_gradients",
                f"method={method} needs gradients; {self.predictor.model_name or 'the model'} "
                f"runs on {backend}, which gives none: use method=occlusion",
            )
        classes = self.predictor.classes
        if params.label is not None and params.label not in classes:
            shown = ", ".join(classes[:CLASSES_LISTED])
            more = len(classes) - CLASSES_LISTED
            raise ApiError(
                422,
                "unknown_label",
                f"the model has no class {params.label!r}; pass one of its classes as label: "
                f"{shown}{f' and {more} more' if more > 0 else ''}",
            )
        return replace(params, method=method)

    def folder(self, root: Path, params: ExplainParams) -> Path:
        """Where the explanation for ``params`` (resolved) lives under ``root``."""
        facts = {"model": self.model_id, **params.__dict__}
        key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]
        return root / key

    def explain(self, video: Path, root: Path, params: ExplainParams, name: str) -> Path:
        """The folder holding the explanation of ``video`` for ``params`` (resolved), computed
        into a temporary folder and renamed into place unless it was there already. ``root``'s
        parent must exist: a deleted job's folder is never made again."""
        final = self.folder(root, params)
        with self._lock:
            if (final / FILES["mp4"][0]).is_file():
                return final
            try:
                root.mkdir(exist_ok=True)
                work = Path(tempfile.mkdtemp(prefix=".work-", dir=root))
            except FileNotFoundError:
                raise ApiError(404, "gone", f"{name} was deleted while it was explained") from None
            try:
                found = explain_video(
                    self._model(),
                    video,
                    target=params.label,
                    method=params.method or "gradcam",
                    start=params.start,
                    end=params.end,
                )
                _publish(write_explanation(found, work)["json"], name)
                os.replace(work, final)
            except ResactionError as error:
                raise ApiError(422, "cannot_explain", _api_message(error, video, name)) from None
            except OSError:
                if not root.is_dir():  # the job was deleted meanwhile, its folder with it
                    raise ApiError(
                        404, "gone", f"{name} was deleted while it was explained"
                    ) from None
                raise
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return final

    def _model(self) -> Predictor:
        """The predictor explanations run on: the service's, with a private copy of a PyTorch
        network (see the module docstring)."""
        backend = self.predictor.backend
        if not isinstance(backend, TorchBackend):
            return self.predictor
        if self._private is None:
            private = copy.copy(self.predictor)
            private.backend = TorchBackend(copy.deepcopy(backend.model), backend.device)
            self._private = private
        return self._private


async def explanation_response(
    explainer: Explainer,
    gate: PredictGate,
    video: Path,
    root: Path,
    params: ExplainParams,
    name: str,
    kind: str,
) -> FileResponse:
    """The explanation's MP4 (``kind="mp4"``) or JSON, from the cache or computed through the
    service's prediction gate (429 when it is full); ``X-Explain-Cache`` says which."""
    params = explainer.resolve(params)
    folder = explainer.folder(root, params)
    hit = (folder / FILES["mp4"][0]).is_file()
    if not hit:
        with gate.admit():
            folder = await anyio.to_thread.run_sync(
                explainer.explain,
                video,
                root,
                params,
                name,
                limiter=gate.limiter,
            )
    filename, media_type = FILES[kind]
    return FileResponse(
        folder / filename,
        media_type=media_type,
        headers={"X-Explain-Cache": "hit" if hit else "miss"},
    )


def keep_video(source: Path, out_dir: Path) -> Path:
    """Keep an uploaded video with its job's results (a hard link where the file system allows,
    else a copy), so the job can be explained after the upload itself is deleted."""
    kept = out_dir / KEPT_VIDEO
    try:
        os.link(source, kept)
    except OSError:
        shutil.copyfile(source, kept)
    return kept


def job_video(job: Job) -> Path:
    """The video a finished job ran on, or a 404 saying why it is not there."""
    assert job.result_dir is not None
    video = job.result_dir / KEPT_VIDEO if job.is_upload else job.source
    if video.is_file():
        return video
    why = (
        "it kept no copy of its upload (it ran on an older server); submit the video again"
        if job.is_upload
        else f"{job.name} is no longer under the media root"
    )
    raise ApiError(404, "no_video", f"job {job.id} cannot be explained: {why}")


def _publish(record_file: Path, name: str) -> None:
    """The JSON names the video as the client knows it, never by its path on the server."""
    record = json.loads(record_file.read_text())
    record["video"] = name
    record_file.write_text(json.dumps(record, indent=2) + "\n")


def _api_message(error: BaseException, video: Path, name: str) -> str:
    text = str(error).replace(str(video), name).replace(video.name, name)
    text = _FLAG_VALUE.sub(lambda found: f"{found[1] or found[2]}=", text)
    text = _FLAG.sub(lambda found: "label" if found[1] == "class" else found[1], text)
    return " ".join(text.split())[:500]


def _file_identity(path: Path) -> str:
    """The model file's name, size and modification time: a server restarted on another model
    over the same state folder never serves the old model's explanations."""
    try:
        stat = path.stat()
    except OSError:
        return path.name
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
