"""A sliding window's length as ``resaction timeline`` and ``resaction stream`` take it: either
``window`` frames at the model's sampling step, or the model's units spread over ``window_s``
seconds (by default the span its training clips covered), never both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resaction.data.sampling import window_seconds
from resaction.errors import ConfigError


def check_window(window: int | None, window_s: float | None) -> None:
    """Refuse a window of no frames, both lengths at once, or a window of no seconds."""
    if window is not None and window < 1:
        raise ConfigError(f"--window must be at least 1 frame, got {window}")
    if window is not None and window_s is not None:
        raise ConfigError("give --window (frames) or --window-seconds, not both")
    if window_s is not None and not window_s > 0:
        raise ConfigError(f"--window-seconds must be positive, got {window_s}")


def window_spread(
    preprocess: Mapping[str, Any], window: int | None, window_s: float | None
) -> float | None:
    """The seconds a window's units are spread over: none when ``window`` counts frames, else
    ``window_s`` or the span the model's training clips covered (``None`` if it records none)."""
    return None if window is not None else window_seconds(preprocess, window_s)
