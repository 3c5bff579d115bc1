"""What a batch worker does with one video; the same code runs in a Ray actor and a local process.

Two steps can run apart: ``decode_views`` (CPU: decode, sample and transform the protocol's
views, exactly as ``Predictor.predict`` does) and ``VideoScorer.score_views`` (the network and
the averaging). ``VideoScorer.score`` does both in one place, and is the only form of the
timeline mode, which decodes a video once in order and must not ship its frames anywhere.
Every outcome is a plain dict: the result row (without the file's key, which the driver adds),
or ``{"error": reason}`` for a video that cannot be scored, so nothing a video does can raise
out of a worker.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resaction.errors import ResactionError
from resaction.inference.predictor import Prediction, Predictor, softmax

MODES = ("predict", "timeline")
VIEWS_PER_FORWARD = 8


@dataclass(frozen=True)
class WorkSpec:
    """What to compute per video: ``mode``, labels per video, and the timeline options."""

    mode: str = "predict"
    topk: int = 5
    timeline: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkSpec:
        return cls(**json.loads(text))


def describe_error(error: BaseException) -> str:
    """One line saying why a video failed: a user error's own message, else type and message."""
    if isinstance(error, ResactionError):
        return str(error)
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:200]}".rstrip(": ")


def pipeline_json(predictor: Predictor) -> str:
    """The part of a predictor a decoding process needs, as a hashable string."""
    return json.dumps(
        {
            "classes": predictor.classes,
            "preprocess": predictor.preprocess,
            "protocol": predictor.protocol,
        },
        sort_keys=True,
    )


class _NoNetwork:
    """Decoding processes hold a predictor for its sampler and transform, never for a model."""

    name = "none"

    def __call__(self, batch: Any) -> np.ndarray:
        raise RuntimeError("a decoding-only predictor has no network")


@functools.lru_cache(maxsize=4)
def _decoder(pipeline: str) -> Predictor:
    spec = json.loads(pipeline)
    return Predictor(_NoNetwork(), spec["classes"], spec["preprocess"], spec["protocol"])


def decode_views(path: str, pipeline: str) -> tuple[dict[str, Any], np.ndarray | None]:
    """A video's protocol views (V, C, T, H, W) float32, and a small status dict beside them.

    The status is what the driver looks at (so it never has to fetch the views themselves):
    ``{"ok": True, "seconds": ...}`` or ``{"ok": False, "error": reason}``.
    """
    started = time.perf_counter()
    try:
        views = _decoder(pipeline).load_views(path).numpy()
    except Exception as error:  # any undecodable file becomes a failure row
        return {"ok": False, "error": describe_error(error)}, None
    return {"ok": True, "seconds": time.perf_counter() - started}, views


def load_predictor(model_path: str | Path, device: str = "cpu") -> Predictor:
    """The predictor of a checkpoint, or of an ``.onnx`` file from ``resaction export``.

    ONNX models run on ONNX Runtime's CUDA provider when ``device`` is a GPU (that needs the
    ``onnxruntime-gpu`` package), else on its CPU provider.
    """
    if Path(model_path).suffix.lower() != ".onnx":
        return Predictor.from_checkpoint(model_path, device=device)
    from resaction.inference.onnx_backend import OnnxBackend
    from resaction.models.registry import default_preprocess, list_models

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        providers.insert(0, "CUDAExecutionProvider")
    backend = OnnxBackend(model_path, providers=providers)
    name = backend.model_name
    defaults = default_preprocess(name) if name and name in list_models() else {}
    return Predictor(
        backend,
        backend.classes,
        {**defaults, **backend.preprocess},
        backend.protocol,
        model_name=name,
    )


def prediction_row(prediction: Prediction) -> dict[str, Any]:
    """``Prediction.to_record`` without the path (the driver writes the file's key instead)."""
    row = prediction.to_record()
    row.pop("path", None)
    return row


class VideoScorer:
    """A loaded model and what to compute with it; one per worker process."""

    def __init__(
        self, model_path: str | Path, spec: WorkSpec, *, device: str = "cpu", threads: int = 1
    ) -> None:
        if threads > 0 and device == "cpu":
            torch.set_num_threads(threads)
        self.spec = spec
        self.predictor = load_predictor(model_path, device)

    def score(self, path: str) -> dict[str, Any]:
        """Decode and score one video (the whole timeline in timeline mode)."""
        try:
            if self.spec.mode == "timeline":
                return self._timeline(path)
            return prediction_row(self.predictor.predict(path, topk=self.spec.topk))
        except Exception as error:  # one bad video must not take the worker down
            return {"error": describe_error(error)}

    def score_views(self, views: np.ndarray, decode_seconds: float = 0.0) -> dict[str, Any]:
        """Score views that ``decode_views`` made: forward passes of 8, softmax averaged."""
        started = time.perf_counter()
        try:
            batch = torch.from_numpy(np.array(views, dtype=np.float32))
            logits = np.concatenate(
                [
                    self.predictor.logits(batch[i : i + VIEWS_PER_FORWARD])
                    for i in range(0, len(batch), VIEWS_PER_FORWARD)
                ]
            )
        except Exception as error:
            return {"error": describe_error(error)}
        seconds = decode_seconds + time.perf_counter() - started
        return prediction_row(self._prediction(logits, seconds))

    def _prediction(self, logits: np.ndarray, seconds: float) -> Prediction:
        classes = self.predictor.classes
        probs = softmax(logits.astype(np.float64)).mean(axis=0)
        top = np.argsort(-probs, kind="stable")[: max(1, min(self.spec.topk, len(classes)))]
        return Prediction(
            path="",
            labels=[classes[i] for i in top],
            probs=[float(probs[i]) for i in top],
            indices=[int(i) for i in top],
            probabilities=probs,
            num_views=len(logits),
            seconds=seconds,
        )

    def _timeline(self, path: str) -> dict[str, Any]:
        from resaction.inference.timeline import TimelineConfig, run_timeline

        timeline = run_timeline(self.predictor, path, TimelineConfig(**self.spec.timeline))
        return {
            "duration": round(timeline.duration, 4),
            "fps": round(timeline.fps, 4),
            "num_frames": timeline.num_frames,
            "num_windows": len(timeline.starts),
            "segments": [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in s.to_dict().items()}
                for s in timeline.segments
            ],
            "seconds": round(timeline.seconds, 3),
        }
