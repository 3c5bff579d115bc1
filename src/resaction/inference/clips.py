"""A timeline's detected segments cut out of the video, each to its own MP4.

The cut is the watcher's evidence cutter (``io.clips``): packets remuxed from the keyframe at
or before the segment's start, never re-encoded, so a clip is exact to the source's pixels and
costs no decoding. Segments of the background class are not cut.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from resaction.io.clips import cut_clips

if TYPE_CHECKING:
    from resaction.inference.timeline import Timeline


def cut_segments(timeline: Timeline, video: str | Path, out_dir: str | Path) -> Path:
    """One MP4 per detected segment (all but the background class's) in ``out_dir``, and
    ``clips.json`` listing them; returns ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    background = timeline.extra.get("background")
    spans = [(s.label, s.start, s.end) for s in timeline.segments if s.label != background]
    clips = cut_clips(video, spans, out) if spans else []
    index = {"video": str(video), "clips": clips}
    (out / "clips.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return out
