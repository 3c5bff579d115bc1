"""A timeline's alarms (or its segments) cut out of the video, each to its own MP4.

The cut is the watcher's evidence cutter (``io.clips``): packets remuxed from the keyframe at
or before the span's start, never re-encoded, so a clip is exact to the source's pixels and
costs no decoding. The alarms are the ones ``alarms.json`` lists, at the model file's calibrated
thresholds: the clips a live watcher would have kept. Segments of the background class are not
cut.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from resaction.errors import ConfigError
from resaction.io.clips import cut_clips

if TYPE_CHECKING:
    from resaction.inference.timeline import Timeline


CLIPS_OF = ("alarms", "segments")


def check_clips_of(of: str) -> None:
    if of not in CLIPS_OF:
        raise ConfigError(f"--clips-of {of!r}: use one of {', '.join(CLIPS_OF)}")


def cut_segments(
    timeline: Timeline, video: str | Path, out_dir: str | Path, of: str = "alarms"
) -> Path:
    """One MP4 per alarm (``of="alarms"``) or per detected segment but the background class's
    (``of="segments"``) in ``out_dir``, and ``clips.json`` listing them (``span``: the alarm's
    or segment's times; ``start``/``end``: the clip's, from the keyframe before); returns
    ``out_dir``."""
    check_clips_of(of)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if of == "alarms":
        spans = [(alarm.label, alarm.start, alarm.end) for alarm in timeline.alarms]
    else:
        background = timeline.extra.get("background")
        spans = [(s.label, s.start, s.end) for s in timeline.segments if s.label != background]
    cut = cut_clips(video, spans, out) if spans else []
    clips = [
        {**clip, "span": [round(start, 4), round(end, 4)]}
        for clip, (_, start, end) in zip(cut, spans, strict=True)
    ]
    index = {
        "video": str(video),
        "of": of,
        "alarm_source": timeline.extra.get("alarm_source") if of == "alarms" else None,
        "clips": clips,
    }
    (out / "clips.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return out
