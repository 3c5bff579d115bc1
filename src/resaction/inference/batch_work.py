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

from resaction.data.spec import ClipSpec, ViewProtocol
from resaction.errors import describe_error
from resaction.inference.predictor import Prediction, Predictor
from resaction.inference.timeline import TimelineConfig, run_timeline

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


@functools.lru_cache(maxsize=4)
def _pipeline(pipeline: str) -> tuple[ClipSpec, ViewProtocol]:
    spec = json.loads(pipeline)
    return ClipSpec.from_dict(spec["preprocess"]), ViewProtocol.from_dict(spec["protocol"])


def decode_views(path: str, pipeline: str) -> tuple[dict[str, Any], np.ndarray | None]:
    """A video's protocol views (V, C, T, H, W) float32, and a small status dict beside them.

    The status is what the driver looks at (so it never has to fetch the views themselves):
    ``{"ok": True, "seconds": ...}`` or ``{"ok": False, "error": reason}``.
    """
    started = time.perf_counter()
    try:
        spec, protocol = _pipeline(pipeline)
        views = spec.read_views(path, protocol).numpy()
    except Exception as error:  # any undecodable file becomes a failure row
        return {"ok": False, "error": describe_error(error)}, None
    return {"ok": True, "seconds": time.perf_counter() - started}, views


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
        self.predictor = Predictor.from_checkpoint(model_path, device=device)

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
        return Prediction.from_logits("", logits, self.predictor.classes, self.spec.topk, seconds)

    def _timeline(self, path: str) -> dict[str, Any]:

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
