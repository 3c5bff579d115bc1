"""The work behind the endpoints: top-k for one video, and a timeline job with its files.

A job writes into its own folder: the timeline's ``segments.json``, ``segments.csv``,
``windows.csv`` and ``timeline.png`` (``inference.timeline.write_timeline``), ``chart.json``
(what the web page draws), ``annotated.mp4`` and, for an upload, the video itself
(``explaining.keep_video``, for explanations). The summary it returns is stored with the job.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resaction.inference.alarms import alarm_rows
from resaction.inference.annotate import annotate_timeline
from resaction.inference.timeline import TimelineConfig, run_timeline, write_timeline
from resaction.serve.explaining import keep_video
from resaction.serve.security import ApiError

if TYPE_CHECKING:
    from resaction.inference import Predictor
    from resaction.inference.timeline import Timeline
    from resaction.serve.job_store import Job
    from resaction.serve.jobs import Progress

CHART_CLASSES = 5


@dataclass
class JobOptions:
    """The timeline options a client may set per job (the rest are the model's)."""

    topk: int = 5
    stride: int = 8
    threshold: float = 0.5
    min_duration: float = 1.0
    smooth_window: int = 5
    annotate: bool = True

    @classmethod
    def parse(cls, raw: dict[str, Any], default_topk: int) -> JobOptions:
        """Options from form fields or JSON, checked; unknown names are refused with a list."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ApiError(
                422,
                "bad_option",
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}",
            )
        values: dict[str, Any] = {"topk": default_topk}
        for name, value in raw.items():
            kind = known[name].type
            try:
                values[name] = _coerce(value, kind)
            except ValueError:
                raise ApiError(
                    422, "bad_option", f"option {name}={value!r} is not a {kind}"
                ) from None
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        limits = (
            ("topk", self.topk >= 1, "at least 1"),
            ("stride", self.stride >= 1, "at least 1"),
            ("threshold", 0.0 <= self.threshold <= 1.0, "between 0 and 1"),
            ("min_duration", self.min_duration >= 0.0, "0 or more"),
            ("smooth_window", self.smooth_window >= 1, "at least 1"),
        )
        for name, ok, rule in limits:
            if not ok:
                raise ApiError(422, "bad_option", f"option {name} must be {rule}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(value: Any, kind: str) -> Any:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if isinstance(value, bool):
        raise ValueError(value)
    if kind == "int":
        number = float(value)
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    return float(value)


def predict_record(predictor: Predictor, video: Path, name: str, topk: int) -> dict[str, Any]:
    """``Predictor.predict`` as the JSON the API returns, named by the client's file name."""
    record = predictor.predict(video, topk=topk).to_record()
    record["path"] = name
    return record


def run_job(predictor: Predictor, job: Job, out_dir: Path, progress: Progress) -> dict[str, Any]:
    """Top-k of the whole video, its timeline and (unless turned off) the annotated copy."""

    options = JobOptions(**job.options)
    progress(0.0, "predicting")
    prediction = predict_record(predictor, job.source, job.name, options.topk)
    share = 0.75 if options.annotate else 0.95
    progress(0.05, "timeline")
    config = TimelineConfig(
        stride=options.stride,
        threshold=options.threshold,
        min_duration=options.min_duration,
        smooth_window=options.smooth_window,
    )
    timeline = run_timeline(
        predictor,
        job.source,
        config,
        on_window=lambda done, total: progress(0.05 + share * done / max(total, 1), "timeline"),
    )
    write_timeline(timeline, out_dir)
    (out_dir / "chart.json").write_text(json.dumps(chart_data(timeline)), encoding="utf-8")
    if options.annotate:
        progress(0.05 + share, "annotating")
        annotate_timeline(timeline, job.source, out_dir / "annotated.mp4")
    if job.is_upload:
        keep_video(job.source, out_dir)
    segments = [
        {k: round(v, 4) if isinstance(v, float) else v for k, v in s.to_dict().items()}
        for s in timeline.segments
    ]
    return {
        "prediction": prediction,
        "segments": segments,
        "duration": round(timeline.duration, 4),
        "num_windows": len(timeline.starts),
        "seconds": round(timeline.seconds, 3),
        "annotated": options.annotate,
        "alarms": alarm_rows(timeline.alarms),
        "alarm_source": timeline.extra.get("alarm_source"),
    }


def chart_data(timeline: Timeline) -> dict[str, Any]:
    """Window times and the smoothed probabilities of the classes worth drawing: those with a
    segment first, then the highest peaks, at most ``CHART_CLASSES``."""
    smoothed = np.asarray(timeline.smoothed)
    shown = list(dict.fromkeys(segment.label_index for segment in timeline.segments))
    for index in np.argsort(-smoothed.max(axis=0), kind="stable").tolist():
        if len(shown) >= CHART_CLASSES:
            break
        if index not in shown:
            shown.append(index)
    return {
        "duration": round(float(timeline.duration), 4),
        "threshold": timeline.config.threshold,
        "times": [round(float(t), 4) for t in timeline.times],
        "series": [
            {"label": timeline.classes[i], "probs": [round(float(p), 4) for p in smoothed[:, i]]}
            for i in shown[:CHART_CLASSES]
        ],
    }
