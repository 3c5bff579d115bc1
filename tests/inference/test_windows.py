"""The window options timeline and stream share: checked once, spread the same way."""

from __future__ import annotations

import pytest

from resaction.errors import ConfigError
from resaction.inference.windows import check_window, window_spread


@pytest.mark.parametrize(
    ("window", "window_s", "message"),
    [
        (0, None, "--window must be at least 1 frame"),
        (8, 2.0, "not both"),
        (None, 0.0, "--window-seconds must be positive"),
    ],
)
def test_bad_window_options_are_refused_naming_the_flag(window, window_s, message):
    with pytest.raises(ConfigError, match=message):
        check_window(window, window_s)


def test_good_window_options_pass():
    check_window(None, None)
    check_window(16, None)
    check_window(None, 2.5)


def test_a_window_in_frames_is_not_spread_and_seconds_come_from_the_flag_or_the_model():
    trained = {"clip_len": 8, "window_s": 3.0}
    assert window_spread(trained, 8, None) is None
    assert window_spread(trained, None, 1.5) == 1.5
    assert window_spread(trained, None, None) == 3.0
    assert window_spread({"clip_len": 8}, None, None) is None
